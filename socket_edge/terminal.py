"""Untrusted strings on a terminal: a model's class names, file names, messages of other
libraries. Control characters (ESC, BEL, carriage return, the C1 controls, bidirectional
overrides…) are written as Python escapes (`\\x1b`), so a crafted model can neither clear the
screen, retitle the window, nor fake output lines. Every printer of the command goes through here.

Standard library only."""

from __future__ import annotations

from typing import Any


def _escaped(char: str) -> str:
    return repr(char)[1:-1] if char not in "'\"" else char


def printable(text: object, keep_newlines: bool = False) -> str:
    """`text` with every non-printable character escaped (newlines kept where `keep_newlines`:
    text of several lines that socket-edge composed)."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or (keep_newlines and c == "\n") else _escaped(c) for c in text)


def printable_data(value: Any) -> Any:
    """`value` (a result or summary: dicts, lists, strings, numbers) with every string, keys
    included, made `printable`: escape untrusted fields before lines are composed from them."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable_data(k): printable_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(printable_data(v) for v in value)
    return value
