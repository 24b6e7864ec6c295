"""tools/check_install_resolution.py without the network: which extras it hands to pip as they are,
what stands in for NVIDIA's meta packages, and what it fails (the resolution itself runs in CI)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("check_install_resolution", ROOT / "tools/check_install_resolution.py")
check = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = check  # its dataclasses look their module up
spec.loader.exec_module(check)


@pytest.fixture(scope="module")
def extras() -> dict[str, list[str]]:
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11's tomllib reads pyproject.toml")
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    return {check.normalise(name): requirements for name, requirements in declared.items()}


def platform(name: str):
    return next(p for p in check.PLATFORMS if p.name.startswith(name))


def test_nvidia_meta_packages_are_replaced_by_their_pypi_bindings_and_the_libs_named(extras):
    plain, stand_ins, nvidia = check.split_nvidia(platform("JetPack 7"), extras)
    assert plain == ["cpu", "realsense"]
    assert stand_ins == ["tensorrt-cu13-bindings>=10.13,<11", "cuda-bindings>=13,<14"] and nvidia == ["tensorrt-cu13-libs"]
    plain, stand_ins, nvidia = check.split_nvidia(platform("x86_64, CUDA 12"), extras)
    assert plain == ["gpu-cu12", "realsense"] and nvidia == ["tensorrt-cu12-libs"]
    assert stand_ins == ["tensorrt-cu12-bindings>=10,<12", "cuda-bindings>=12.8,<13"]
    assert check.split_nvidia(platform("JetPack 6"), extras) == (["cpu", "jetpack6", "realsense"], [], [])


def test_every_documented_extra_exists_and_the_platform_tags_reach_its_glibc(extras):
    for p in check.PLATFORMS:
        assert set(p.extras) <= extras.keys(), p.name
        assert p.tags()[0] == f"manylinux2014_{p.arch}" and p.tags()[-1] == f"manylinux_2_{p.glibc}_{p.arch}"


def test_torch_in_an_edge_install_or_no_resolution_is_a_failure_and_the_table_says_so():
    ok = check.Resolution(platform("CPU only, x86_64"), {"socket-edge": "0.1.0", "onnxruntime": "1.32.0"})
    torch = check.Resolution(platform("CPU only, x86_64"), {"socket-edge": "0.1.0", "torch": "2.14.1"})
    unresolved = check.Resolution(platform("JetPack 6"), error="ERROR: No matching distribution found for x")
    assert ok.problems == [] and unresolved.problems == ["does not resolve: ERROR: No matching distribution found for x"]
    assert torch.problems == ["pulls the training stack into an edge install: torch"]
    rows = check.table([ok, torch, unresolved]).splitlines()
    assert "onnxruntime 1.32.0 (+0 more); no torch" in rows[2] and "**training stack: torch**" in rows[3]
    assert "**does not resolve**" in rows[4] and "python3-libnvinfer" in rows[4]
