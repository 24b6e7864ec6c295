"""An optional module that is missing and one that is installed but cannot load get different
one-line messages: the extra to install, or the system library to install."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import LOADER_ERROR, needs_realsense, unloadable_realsense
from socket_edge.errors import MissingDependencyError, require

LIBUSB = Path("/lib/x86_64-linux-gnu/libusb-1.0.so.0")


def test_a_module_that_is_not_installed_names_the_extra():
    with pytest.raises(MissingDependencyError) as caught:
        require("socket_edge_no_such_module", "realsense")
    assert str(caught.value) == ("socket_edge_no_such_module is not installed; install it with: "
                                 "pip install 'socket-edge[realsense]'")
    assert caught.value.fix == "install it with: pip install 'socket-edge[realsense]'"


def test_tensorrt_names_the_extras_of_each_platform_and_every_one_exists():
    """TensorRT has no one extra: the fix names the CUDA 12/13 and Jetson extras, each declared in pyproject.toml."""
    with pytest.raises(MissingDependencyError) as caught:
        require("socket_edge_no_such_module", "tensorrt")
    named = re.findall(r"\[([a-z0-9-]+)\]", caught.value.fix)
    assert named == ["tensorrt-cu12", "tensorrt-cu13", "jetpack6", "jetpack7"]
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11's tomllib reads pyproject.toml")
    declared = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    extras = declared["project"]["optional-dependencies"]
    assert set(named) <= extras.keys() and "tensorrt" not in extras
    assert [r for r in extras["tensorrt-cu12"] if r.startswith("cuda-bindings")] == ["cuda-bindings>=12.8,<13"]
    assert [r for r in extras["tensorrt-cu13"] if r.startswith("cuda-bindings")] == ["cuda-bindings>=13,<14"]

def test_an_installed_module_without_its_system_library_names_the_package(monkeypatch, tmp_path):
    unloadable_realsense(monkeypatch, tmp_path)
    with pytest.raises(MissingDependencyError) as caught:
        require("pyrealsense2", "realsense")
    message = str(caught.value)
    assert message == (f"pyrealsense2 is installed but cannot load the system library libusb-1.0.so.0 ({LOADER_ERROR}); "
                       "sudo apt-get install libusb-1.0-0 (or run `make install` / tools/system_deps.sh as root)")
    assert "\n" not in message and "pip install" not in message


def test_a_module_that_fails_to_import_otherwise_is_not_called_missing(monkeypatch, tmp_path):
    (tmp_path / "half_installed.py").write_text("import socket_edge_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MissingDependencyError, match=r"^half_installed is installed but cannot load \(No module named "
                                                     r"'socket_edge_no_such_dependency'\); reinstall it"):
        require("half_installed", "cpu")


@needs_realsense
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None or not LIBUSB.is_file(),
                    reason="needs root, unshare and Debian's libusb to hide the library in a private mount namespace")
def test_the_real_pyrealsense2_without_libusb():
    """The real wheel in a mount namespace where libusb-1.0.so.0 is an empty file (nobody else sees it)."""
    code = "from socket_edge.errors import require\nrequire('pyrealsense2', 'realsense')"
    script = f"mount --bind /dev/null {LIBUSB} && exec {sys.executable} -c \"{code}\""
    done = subprocess.run(["unshare", "-m", "bash", "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("socket_edge.errors.MissingDependencyError: pyrealsense2 is installed but cannot load the "
                           "system library libusb-1.0.so.0 ("), last
    assert last.endswith("); sudo apt-get install libusb-1.0-0 (or run `make install` / tools/system_deps.sh as root)")
