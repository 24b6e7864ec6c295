"""Typed errors. Every user-facing failure is a SocketEdgeError: the CLI prints its
message on one line and exits with its exit code, without a traceback."""

from __future__ import annotations


class SocketEdgeError(Exception):
    """A failure the user can fix; the message says what, what was received, and how."""

    exit_code = 1


class DataError(SocketEdgeError):
    """Input data is missing, unreadable, or not in the expected layout."""


class ContractError(SocketEdgeError):
    """A model and its input disagree (modality, channels, class names)."""


class ArtifactError(SocketEdgeError):
    """A model file is missing, corrupt or of an unknown format."""


class UsageError(SocketEdgeError):
    """Conflicting or invalid command-line options."""

    exit_code = 2


class MissingDependencyError(SocketEdgeError):
    """An optional dependency is not installed; the message names the extra."""


def require(module: str, extra: str, needed_by: str | None = None):
    """Import an optional module, or fail with one line naming the extra to install (and, where
    given, what needs it: a command, a file)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        what = f"{needed_by} needs {module}, which is not installed here" if needed_by else f"{module} is not installed"
        raise MissingDependencyError(f"{what} ({exc}); install it with: pip install 'socket-edge[{extra}]'") from None
