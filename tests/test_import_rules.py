"""The design's import rules: the runtime, the backends layer and the CLI's entry work where torch
cannot be imported, as on a Jetson runtime image; stages never import a command or each other;
contract and errors use the standard library only. Imports are read from the source, including
the module names given as strings to importlib.import_module and __import__."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "socket_edge"

BLOCK_TORCH = """
import sys
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith(("torch.", "torchvision")):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked for this test)", name=name)
sys.meta_path.insert(0, _NoTorch())
"""

COMMANDS = ("cli", "__main__", "evaluation", "inspection", "demo", "demo_summary")  # the commands' modules
STAGES = ("adapt", "distill", "export", "runtime", "capture")
TORCH = {"torch", "torchvision"}


def run_without_torch(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + code], capture_output=True, text=True, timeout=120)


def test_torch_is_really_blocked():
    result = run_without_torch("import torch")
    assert result.returncode != 0 and "blocked for this test" in result.stderr


def test_runtime_backends_and_host_preprocessing_import_without_torch():
    code = """
import socket_edge.runtime, socket_edge.contract, socket_edge.errors, socket_edge.cli
import socket_edge.runtime.bench, socket_edge.runtime.pipeline, socket_edge.evaluation, socket_edge.inspection
import socket_edge.backends, socket_edge.backends.onnx, socket_edge.backends.engine, socket_edge.metrics
import socket_edge.data.preprocess, socket_edge.data.images, socket_edge.data.folders, socket_edge.data.loading
import socket_edge.capture.collect, socket_edge.capture.layout, socket_edge.capture.realsense, socket_edge.capture.selection
import numpy as np
from socket_edge.contract import InputContract
from socket_edge.data.preprocess import prepare
out = prepare(np.full((48, 64), 1500, np.uint16), InputContract.for_modality("depth", ["a", "b"], 32))
assert out.shape == (1, 32, 32) and float(out.max()) == 1500.0
assert "torch" not in sys.modules
print("ok")
"""
    result = run_without_torch(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_cli_help_works_without_torch():
    result = run_without_torch("from socket_edge.cli import main; main(['--help'])")
    assert "train-source" in result.stdout


def test_training_commands_and_pt_models_without_torch_name_the_train_extra(tmp_path):
    """Every command that needs the training stack says so in one line; nothing is read first."""
    pt, data = tmp_path / "m.pt", tmp_path / "data"
    cases = {
        "eval": ["eval", pt, "--data", data], "inspect": ["inspect", pt], "run": ["run", pt, "--source", data],
        "bench": ["bench", pt], "export": ["export", pt], "train-source": ["train-source", "--data", data, "--out", pt],
        "adapt": ["adapt", "--source", pt, "--target", data, "--modality", "depth", "--out", pt],
        "distill": ["distill", pt, "--target", data, "--out", pt], "demo": ["demo", "--out", data],
    }
    data.mkdir()
    (data / "0.png").write_bytes(b"")  # run checks its source before opening the model
    code = f"""
from socket_edge.cli import main
for name, argv in {[(name, [str(a) for a in argv]) for name, argv in cases.items()]!r}:
    assert main(argv) == 1, name
assert "torch" not in sys.modules
"""
    result = run_without_torch(code)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == len(cases), result.stderr
    for line, name in zip(lines, cases):
        assert line.startswith("socket-edge: error: ") and "install it with: pip install 'socket-edge[train]'" in line
        assert "needs torch, which is not installed here" in line and ("m.pt" in line or f"socket-edge {name}" in line)


def imports(path: Path, module_level: bool = False) -> set[str]:
    """Every module a file imports, dotted (`from a.b import c` gives a.b and a.b.c, since c may be a
    module), anywhere in the file (or at module level only), plus string constants passed to
    importlib.import_module or __import__."""
    tree = ast.parse(path.read_text())
    names = set()
    for node in tree.body if module_level else ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Call) and _string_import(node):
            names.add(node.args[0].value)
    return names


def _string_import(call: ast.Call) -> bool:
    func = call.func
    named = (isinstance(func, ast.Name) and func.id in ("__import__", "import_module")) or \
        (isinstance(func, ast.Attribute) and func.attr == "import_module")
    return named and bool(call.args) and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str)


def top_level(path: Path, module_level: bool = False) -> set[str]:
    return {name.split(".")[0] for name in imports(path, module_level)}


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")


def test_the_import_reader_sees_string_imports(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("import importlib\nfrom importlib import import_module\n"
                      "def f():\n    importlib.import_module('socket_edge.export.tensorrt')\n"
                      "    import_module('socket_edge.evaluation')\n    return __import__('torch')\n")
    assert {"socket_edge.export.tensorrt", "socket_edge.evaluation", "torch"} <= imports(source)


def test_no_module_hides_a_socket_edge_import_in_a_string():
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        hidden = [n.args[0].value for n in ast.walk(tree) if isinstance(n, ast.Call) and _string_import(n)]
        assert not [name for name in hidden if name.startswith("socket_edge")], path


def test_stages_never_import_a_command():
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0].removesuffix(".py") in COMMANDS:
            continue
        commands = {name for name in imports(path) if name.split(".")[:2] in [["socket_edge", c] for c in COMMANDS]}
        assert not commands, f"{module_name(path)} imports the command module(s) {sorted(commands)}"


def test_stages_never_import_each_other():
    for stage in STAGES:
        for path in (PACKAGE / stage).rglob("*.py"):
            others = {name.split(".")[1] for name in imports(path) if name.startswith("socket_edge.")} & set(STAGES)
            assert not {o for o in others if o != stage}, module_name(path)


def test_runtime_capture_and_backends_never_import_torch_except_the_pt_backend():
    no_torch = [*(PACKAGE / "runtime").rglob("*.py"), *(PACKAGE / "backends").rglob("*.py"),
                *(PACKAGE / "capture").rglob("*.py"), PACKAGE / "cli.py",
                PACKAGE / "evaluation.py", PACKAGE / "inspection.py", PACKAGE / "metrics.py", PACKAGE / "plotting.py"]
    for path in no_torch:
        if path.name == "pt.py":
            continue
        assert not top_level(path) & TORCH, path  # anywhere in the file: engine.py's buffers are cuda-python's


def test_contract_and_errors_use_the_standard_library_only():
    allowed = set(sys.stdlib_module_names) | {"socket_edge", "__future__"}
    for name in ("contract.py", "errors.py", "progress.py", "modelfile.py", "export/formats.py"):
        assert top_level(PACKAGE / name) <= allowed | {"tqdm"}, name
