"""Check that every TensorRT name socket-edge uses exists in a given TensorRT Python bindings build.

TensorRT cannot be imported without libnvinfer (and a GPU), but the `tensorrt-cu12-bindings` /
`tensorrt-cu13-bindings` wheels on PyPI carry the bindings' extension module, whose string table
holds every class, enum value, method and keyword name pybind11 registers. This script collects
the names from the source with `ast` and looks each up there:

- `trt.X`, `trt.X.Y`, … chains (classes, enums, their values);
- methods, properties and keywords used on TensorRT objects, i.e. on the variables in
  TRT_OBJECTS (`builder.create_network`, `self.context.execute_async_v3`, `ignore_mismatch=`) and on
  what their methods return (`config.get_timing_cache().serialize`).

A name is found when a string of the module equals it, or ends with it (the linker merges a string
into the tail of a longer one: `serialize` lives in `deserialize`); names the Python package
defines (`__version__`) are looked up in its `__init__.py`.

    pip download --no-deps tensorrt-cu12-bindings==10.0.1 -d /tmp/trtw
    python tools/check_tensorrt_api.py /tmp/trtw/tensorrt_cu12_bindings-10.0.1-*.whl

Exit status 1 when a name is missing from any wheel given.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("socket_edge/export/tensorrt.py", "socket_edge/backends/engine.py")
TRT_MODULE = "trt"  # the name the source gives `import tensorrt`
TRT_OBJECTS = {"builder", "network", "parser", "config", "profile", "engine", "context", "logger"}
PRINTABLE = re.compile(rb"[\x20-\x7e]{2,}")


def _chain(node: ast.AST) -> list[str] | None:
    """`a.b.c` as ["a", "b", "c"]; None for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id, *reversed(parts)]
    return None


def _on_trt_object(node: ast.AST) -> bool:
    """Whether `node` is a TensorRT object: a variable (or self attribute) in TRT_OBJECTS, or what
    a method of one returns."""
    if isinstance(node, ast.Call):
        return isinstance(node.func, ast.Attribute) and _on_trt_object(node.func.value)
    chain = _chain(node)
    return chain is not None and chain[-1] in TRT_OBJECTS and (len(chain) == 1 or chain[:-1] == ["self"])


def used_names(paths: list[Path]) -> set[str]:
    """Every TensorRT name the files use (see the module docstring)."""
    names: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute):
                chain = _chain(node)
                if chain and chain[0] == TRT_MODULE and len(chain) > 1:
                    names.update(chain[1:])
                elif _on_trt_object(node.value):
                    names.add(node.attr)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and _on_trt_object(node.func.value):
                names.update(k.arg for k in node.keywords if k.arg)
    return names


def wheel_strings(wheel: Path) -> tuple[set[str], str, str]:
    """(the strings of the wheel's extension module, its __init__.py, the module's file name)."""
    with zipfile.ZipFile(wheel) as archive:
        modules = [n for n in archive.namelist() if re.search(r"/tensorrt[^/]*\.so$", n)]
        if not modules:
            raise SystemExit(f"{wheel} holds no tensorrt*.so extension module")
        inits = [n for n in archive.namelist() if n.endswith("/__init__.py") and n.count("/") == 1]
        strings = {s.decode() for chunk in archive.read(modules[0]).split(b"\0") for s in PRINTABLE.findall(chunk)}
        return strings, "".join(archive.read(n).decode() for n in inits), modules[0]


def check(wheel: Path, names: set[str]) -> list[str]:
    """Print how each name was found in `wheel`; return the missing ones."""
    strings, init, module = wheel_strings(wheel)
    tails = {s[-n:] for s in strings for n in range(1, len(s) + 1)}  # every suffix of every string
    missing = []
    print(f"{wheel.name} ({module}, {len(strings)} strings)")
    for name in sorted(names):
        if name in strings:
            how = "found"
        elif name in tails:
            how = "found (tail of a merged string)"
        elif re.search(rf"^\s*{re.escape(name)}\s*=", init, re.M):
            how = "found (package __init__.py)"
        else:
            how = "MISSING"
            missing.append(name)
        print(f"  {name:32s} {how}")
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheels", nargs="+", type=Path, help="tensorrt-cuXX-bindings wheels (.whl)")
    args = parser.parse_args(argv)
    names = used_names([ROOT / s for s in SOURCES])
    print(f"{len(names)} TensorRT names used in {', '.join(SOURCES)}")
    failed = {str(w.name): check(w, names) for w in args.wheels}
    for wheel, missing in failed.items():
        print(f"{wheel}: " + (f"MISSING {', '.join(missing)}" if missing else f"all {len(names)} names found"))
    return 1 if any(failed.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
