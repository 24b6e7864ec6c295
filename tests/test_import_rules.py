"""The design's import rules: the runtime (and the CLI's entry) work where torch cannot be
imported, as on a Jetson runtime image; contract and errors use the standard library only."""

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
            raise ImportError(f"{name} is blocked for this test")
sys.meta_path.insert(0, _NoTorch())
"""


def run_without_torch(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + code], capture_output=True, text=True, timeout=120)


def test_torch_is_really_blocked():
    result = run_without_torch("import torch")
    assert result.returncode != 0 and "blocked for this test" in result.stderr


def test_runtime_and_host_preprocessing_import_without_torch():
    code = """
import socket_edge.runtime, socket_edge.contract, socket_edge.errors, socket_edge.cli
import socket_edge.data.preprocess, socket_edge.data.images, socket_edge.data.folders, socket_edge.data.loading
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


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_runtime_never_imports_torch_anywhere():
    for path in (PACKAGE / "runtime").rglob("*.py"):
        assert not imported_modules(path) & {"torch", "torchvision"}, path


def test_contract_and_errors_use_the_standard_library_only():
    allowed = set(sys.stdlib_module_names) | {"socket_edge", "__future__"}
    for name in ("contract.py", "errors.py", "progress.py", "modelfile.py", "export/formats.py"):
        assert imported_modules(PACKAGE / name) <= allowed | {"tqdm"}, name
