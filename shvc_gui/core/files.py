"""Turning what a user names (files and folders) into the list of files to work on."""

from __future__ import annotations

import os
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


def walk_relative(inputs: Iterable, suffixes: set[str]) -> list[tuple[Path, Path]]:
    """:func:`walk`, each file with the path it keeps under an output folder: its name for a file
    named directly, its path below the folder for a file found in a folder. The same file named
    twice is listed once."""
    out, seen = [], set()
    for name in inputs:
        p = Path(name)
        found = [(f, f.relative_to(p)) for f in walk([p], suffixes)] if p.is_dir() else [(p, Path(p.name))]
        for f, rel in found:
            key = os.path.abspath(f)
            if key not in seen:
                seen.add(key)
                out.append((f, rel))
    return out


def clashes(pairs: Iterable[tuple[Path, Path]]) -> dict[Path, list[Path]]:
    """Outputs that more than one source would be written to: {output: [sources]}."""
    by_dst: dict[str, list] = {}
    for src, dst in pairs:
        by_dst.setdefault(os.path.normcase(os.path.abspath(dst)), []).append((src, dst))
    return {v[0][1]: [s for s, _ in v] for v in by_dst.values() if len(v) > 1}
