"""Typed errors. Every user-facing failure is a SocketEdgeError: the CLI prints its
message on one line and exits with its exit code, without a traceback."""

from __future__ import annotations

import importlib
import re


class SocketEdgeError(Exception):
    """A failure the user can fix; the message says what, what was received, and how.
    `everywhere`: every process of a torchrun job meets it alike (a loss all ranks share), so
    rank 0 alone reports it."""

    exit_code = 1

    def __init__(self, message: str = "", *, everywhere: bool = False) -> None:
        super().__init__(message)
        self.everywhere = everywhere


class DataError(SocketEdgeError):
    """Input data is missing, unreadable, or not in the expected layout."""


class ContractError(SocketEdgeError):
    """A model and its input disagree (modality, channels, class names)."""


class ArtifactError(SocketEdgeError):
    """A model file is missing, corrupt or of an unknown format."""


class UsageError(SocketEdgeError):
    """Conflicting or invalid command-line options."""

    exit_code = 2


class OutputError(SocketEdgeError):
    """An output cannot be written: the disk is full, the folder is not writable, or another
    process is writing the same output."""


class MissingDependencyError(SocketEdgeError):
    """An optional dependency is missing or cannot load; the message names the fix (`fix`: the fix alone)."""

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.fix = fix


# Debian packages of the shared libraries that the extras' wheels load (tools/system_deps.sh installs them)
SYSTEM_PACKAGES = {"libusb-1.0.so.0": "libusb-1.0-0", "libudev.so.1": "libudev1"}
# extras whose name depends on the platform (pyproject.toml, docs/install.md): the install line for each
PLATFORM_EXTRAS = {
    "tensorrt": "pip install 'socket-edge[tensorrt-cu12]' or 'socket-edge[tensorrt-cu13]' (the CUDA major of "
                "the driver; on a Jetson [jetpack6] or [jetpack7]: docs/install.md)",
}


def install_line(extra: str) -> str:
    """The `pip install` line that adds an extra (for TensorRT: the choice by platform)."""
    return PLATFORM_EXTRAS.get(extra, f"pip install 'socket-edge[{extra}]'")
# how the dynamic loader names a library it cannot open: "libusb-1.0.so.0: cannot open shared object file…"
_MISSING_LIBRARY = re.compile(r"([\w.+-]+\.so[.\d]*): (?:cannot open shared object file|file too short)")


def require(module: str, extra: str, needed_by: str | None = None):
    """Import an optional module, or fail with one line saying how to fix it (and, where given,
    what needs it: a command, a file)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        problem, fix = import_failure(module, extra, exc, needed_by)
        raise MissingDependencyError(f"{problem}; {fix}", fix) from None


def import_failure(module: str, extra: str, exc: ImportError, needed_by: str | None = None) -> tuple[str, str]:
    """(what went wrong, the fix) for an import of `module` that raised `exc`: the extra to install
    when the module is not installed; the system library when it is installed but cannot load it
    (pyrealsense2 without libusb)."""
    missing = isinstance(exc, ModuleNotFoundError) and exc.name is not None
    if missing and (module == exc.name or module.startswith(exc.name + ".")):
        what = f"{needed_by} needs {module}, which is not installed here" if needed_by else f"{module} is not installed"
        return what, f"install it with: {install_line(extra)}"
    found = _MISSING_LIBRARY.search(str(exc))
    if found is None:
        return (f"{module} is installed but cannot load ({exc})",
                f"reinstall it: pip install --force-reinstall --no-deps {module}")
    library = found.group(1)
    package = SYSTEM_PACKAGES.get(library)
    fix = (f"sudo apt-get install {package} (or run `make install` / tools/system_deps.sh as root)" if package
           else f"install the system package that provides {library}")
    return f"{module} is installed but cannot load the system library {library} ({exc})", fix
