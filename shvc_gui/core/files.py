"""Turning what a user names (files and folders) into the list of files to work on."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable


def walk(inputs: Iterable, suffixes: set[str]) -> list[Path]:
    """Files named directly are kept as given; folders are walked recursively (sorted) for files
    whose suffix (lower case) is in ``suffixes``. Hidden files inside folders are skipped."""
    out = []
    for name in inputs:
        p = Path(name)
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in suffixes
                          and not any(part.startswith(".") for part in f.relative_to(p).parts))
        else:
            out.append(p)
    return out
