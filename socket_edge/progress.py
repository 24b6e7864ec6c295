"""Progress bars (tqdm when installed and wanted, else a plain iterator). Standard library only."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def bar(items: Iterable[T], desc: str = "", enabled: bool = True, total: int | None = None,
        leave: bool = True) -> Iterator[T] | Iterable[T]:
    """Wrap an iterable in a tqdm bar on stderr; no bar when disabled or tqdm is missing."""
    if not enabled:
        return items
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return items
    return tqdm(items, desc=desc, total=total, leave=leave, file=sys.stderr, dynamic_ncols=True)
