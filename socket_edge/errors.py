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


class OutputError(SocketEdgeError):
    """An output cannot be written: the disk is full, the folder is not writable, or another
    process is writing the same output."""


class MissingDependencyError(SocketEdgeError):
    """An optional dependency is not installed; the message names the extra."""


def require(module: str, extra: str):
    """Import an optional module, or fail with one line naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module} is not installed ({exc}); install it with: pip install 'socket-edge[{extra}]'"
        ) from None
