"""Ask pip to resolve every install command of docs/install.md for its platform, without installing.

For each documented platform (x86_64 with CUDA 12 or 13, JetPack 6 and 7, the CPU-only edge on x86_64
and aarch64) this runs, in parallel,

    pip install --dry-run --report R.json --ignore-installed --only-binary=:all: \
        --platform manylinux_2_17_ARCH … --platform manylinux_2_GLIBC_ARCH --python-version X.Y \
        --implementation cp --abi cpXY 'socket_edge-….whl[EXTRAS]'

against PyPI alone (this machine's pip configuration is ignored), and prints a table of what pip picked.
It fails (exit 1) where a command does not resolve, or where an install pulls in the training stack
(torch, torchvision, onnx, matplotlib: every documented install is an edge install).

TensorRT from pip is NVIDIA's meta package `tensorrt-cuXX`: an sdist on PyPI whose install fetches
`tensorrt-cuXX-libs` from NVIDIA's own index (pypi.nvidia.com, through `wheel-stub`) and takes
`tensorrt-cuXX-bindings` from PyPI. pip cannot resolve an sdist for another platform, and this check
does not ask NVIDIA's index, so it resolves the rest: the meta package is replaced by its PyPI part,
the bindings wheel with the same version range, and the table names the libs as not resolved here.

    python tools/check_install_resolution.py                 # builds the wheel of this checkout
    python tools/check_install_resolution.py --wheel dist/socket_edge-0.1.0-py3-none-any.whl
    python tools/check_install_resolution.py --update docs/install.md   # rewrite the table there

Needs network access to PyPI (PIP_INDEX_URL, if set, names a mirror of it); about a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.parser import Parser
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TRAINING_STACK = ("torch", "torchvision", "onnx", "matplotlib")
# what the table shows of a resolution (every other pick is counted, not named)
SHOWN = ("onnxruntime", "onnxruntime-gpu", "pyrealsense2", "tensorrt-cu12-bindings", "tensorrt-cu13-bindings",
         "cuda-bindings", "numpy", "opencv-python-headless")
# NVIDIA's meta packages on PyPI (sdists): the part on PyPI that stands in for them here, and the part
# only NVIDIA's index holds
NVIDIA_META = {
    "tensorrt-cu12": ("tensorrt-cu12-bindings", "tensorrt-cu12-libs"),
    "tensorrt-cu13": ("tensorrt-cu13-bindings", "tensorrt-cu13-libs"),
}
TABLE_START = "<!-- resolution table: tools/check_install_resolution.py --update docs/install.md -->"
TABLE_END = "<!-- end of resolution table -->"


@dataclass(frozen=True)
class Platform:
    """One documented install: where it runs and which extras it names."""

    name: str
    arch: str  # x86_64 | aarch64
    python: str  # "3.10"
    glibc: int  # the minor of glibc 2.N on that system (manylinux tags up to it)
    extras: tuple[str, ...]
    note: str = ""

    def tags(self) -> list[str]:
        return [f"manylinux2014_{self.arch}"] + [f"manylinux_2_{m}_{self.arch}" for m in range(17, self.glibc + 1)]

    def command(self, dist: str = "DIST") -> str:
        return f"pip install '{dist}[{','.join(self.extras)}]'"


PLATFORMS = (
    Platform("x86_64, CUDA 12 (Ubuntu 22.04)", "x86_64", "3.10", 35, ("gpu-cu12", "tensorrt-cu12", "realsense")),
    Platform("x86_64, CUDA 13 (Ubuntu 24.04)", "x86_64", "3.12", 39, ("gpu-cu13", "tensorrt-cu13", "realsense")),
    Platform("JetPack 6 (aarch64, Ubuntu 22.04)", "aarch64", "3.10", 35, ("cpu", "jetpack6", "realsense"),
             note="TensorRT 10.3 from apt (python3-libnvinfer), seen through --system-site-packages"),
    Platform("JetPack 7 (aarch64, Ubuntu 24.04)", "aarch64", "3.12", 39, ("cpu", "jetpack7", "realsense")),
    Platform("CPU only, x86_64", "x86_64", "3.11", 28, ("cpu", "realsense")),
    # pyrealsense2's aarch64 wheels are cp310 and cp312 only (Jetson's Ubuntu 22.04 and 24.04)
    Platform("CPU only, aarch64 (Ubuntu 24.04)", "aarch64", "3.12", 39, ("cpu", "realsense")),
)


@dataclass
class Resolution:
    platform: Platform
    picked: dict[str, str] = field(default_factory=dict)  # name → version
    from_nvidia: list[str] = field(default_factory=list)  # parts only NVIDIA's index holds
    error: str = ""

    @property
    def problems(self) -> list[str]:
        found = [name for name in TRAINING_STACK if name in self.picked]
        return ([f"does not resolve: {self.error}"] if self.error else []) + (
            [f"pulls the training stack into an edge install: {', '.join(found)}"] if found else [])


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def extra_requirements(wheel: Path) -> dict[str, list[str]]:
    """Each extra's requirement strings (markers dropped), from the wheel's METADATA."""
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        message = Parser().parsestr(archive.read(metadata).decode())
    extras: dict[str, list[str]] = {normalise(e): [] for e in message.get_all("Provides-Extra") or []}
    for line in message.get_all("Requires-Dist") or []:
        requirement, _, marker = line.partition(";")
        found = re.search(r"""extra\s*==\s*["']([^"']+)["']""", marker)
        if found:
            extras[normalise(found.group(1))].append(requirement.strip())
    return extras


def requirement_name(requirement: str) -> str:
    return normalise(re.match(r"[A-Za-z0-9._-]+", requirement).group(0))


def split_nvidia(platform: Platform, extras: dict[str, list[str]]) -> tuple[list[str], list[str], list[str]]:
    """(extras pip resolves as they are, requirements standing in for the extras that name an NVIDIA
    meta package, the parts only NVIDIA's index holds)."""
    plain, stand_ins, nvidia = [], [], []
    for extra in platform.extras:
        if extra not in extras:
            raise SystemExit(f"check_install_resolution: the wheel has no extra {extra!r} (has: {', '.join(extras)})")
        names = {requirement_name(r) for r in extras[extra]}
        if not names & NVIDIA_META.keys():
            plain.append(extra)
            continue
        for requirement in extras[extra]:
            name = requirement_name(requirement)
            if name in NVIDIA_META:
                on_pypi, on_nvidia = NVIDIA_META[name]
                stand_ins.append(on_pypi + requirement[len(re.match(r"[A-Za-z0-9._-]+", requirement).group(0)):])
                nvidia.append(on_nvidia)
            else:
                stand_ins.append(requirement)
    return plain, stand_ins, nvidia


def pip_environment() -> dict[str, str]:
    """The environment for pip: no configuration files, find-links or extra indexes of this machine
    (PyPI alone, or the mirror PIP_INDEX_URL names)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT", "PIP_NO_INDEX", "PIP_REQUIRE_VIRTUALENV")}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def resolve(platform: Platform, wheel: Path, extras: dict[str, list[str]], work: Path) -> Resolution:
    """What pip picks for `platform`'s command (without installing), or why it picks nothing."""
    result = Resolution(platform)
    plain, stand_ins, result.from_nvidia = split_nvidia(platform, extras)
    target = f"{wheel}[{','.join(plain)}]" if plain else str(wheel)
    report = work / (re.sub(r"\W+", "_", platform.name) + ".json")
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
               "--disable-pip-version-check", "--report", str(report), "--only-binary=:all:",
               *[arg for tag in platform.tags() for arg in ("--platform", tag)],
               "--python-version", platform.python, "--implementation", "cp",
               "--abi", "cp" + platform.python.replace(".", ""), target, *stand_ins]
    done = subprocess.run(command, capture_output=True, text=True, env=pip_environment(), timeout=300)
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip().startswith("ERROR")]
        result.error = lines[-1] if lines else (done.stderr.strip().splitlines() or ["pip failed"])[-1]
        return result
    for item in json.loads(report.read_text())["install"]:
        result.picked[normalise(item["metadata"]["name"])] = item["metadata"]["version"]
    return result


def build_wheel(work: Path) -> Path:
    out = work / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(REPO)],
                   check=True, env=pip_environment())
    return next(out.glob("socket_edge-*.whl"))


def table(results: list[Resolution]) -> str:
    """The Markdown table: platform × command → what pip picked, or why not."""
    rows = ["| platform | install command (Python) | pip picked | from NVIDIA's index (not resolved here) |",
            "|---|---|---|---|"]
    for r in results:
        p = r.platform
        if r.error:
            picked = f"**does not resolve**: {r.error}"
        else:
            shown = [f"{name} {r.picked[name]}" for name in SHOWN if name in r.picked]
            others = len(r.picked) - len(shown) - 1  # socket-edge itself
            stack = [name for name in TRAINING_STACK if name in r.picked]
            picked = ", ".join(shown) + f" (+{others} more)" + (f"; **training stack: {', '.join(stack)}**" if stack
                                                                  else "; no torch")
        nvidia = ", ".join(r.from_nvidia) or "—"
        if p.note:
            nvidia = f"{nvidia}; {p.note}" if r.from_nvidia else p.note
        rows.append(f"| {p.name} | `{p.command()}` (cp{p.python.replace('.', '')}) | {picked} | {nvidia} |")
    return "\n".join(rows)


def update(doc: Path, text: str) -> None:
    """Replace the table between the markers in `doc` (written to a temporary file, then renamed)."""
    old = doc.read_text()
    start, end = old.find(TABLE_START), old.find(TABLE_END)
    if start < 0 or end < start:
        raise SystemExit(f"check_install_resolution: {doc} has no table markers ({TABLE_START} … {TABLE_END})")
    new = old[:start + len(TABLE_START)] + "\n" + text + "\n" + old[end:]
    tmp = doc.with_name(doc.name + ".tmp")
    tmp.write_text(new)
    tmp.replace(doc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="a built socket-edge wheel (default: build one of this checkout)")
    parser.add_argument("--update", type=Path, metavar="DOC", help="also rewrite the table in DOC (docs/install.md)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        wheel = args.wheel.resolve() if args.wheel else build_wheel(work)
        extras = extra_requirements(wheel)
        with ThreadPoolExecutor(len(PLATFORMS)) as pool:
            results = list(pool.map(lambda p: resolve(p, wheel, extras, work), PLATFORMS))
    text = table(results)
    print(f"pip's resolution of each documented install of {wheel.name} (DIST), against PyPI, without installing:")
    print(text)
    if args.update:
        update(args.update, text)
    failed = [(r.platform.name, problem) for r in results for problem in r.problems]
    for name, problem in failed:
        print(f"check_install_resolution: FAILED: {name}: {problem}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
