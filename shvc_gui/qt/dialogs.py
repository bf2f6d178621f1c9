"""Message boxes that never block the event loop: errors are shown window-modal with ``open()``
(tests find them among the top-level widgets); questions that need an answer use ``exec``."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QMessageBox, QWidget

REPLACE, SKIP, KEEP_BOTH = "replace", "skip", "keep-both"


def show_error(parent: QWidget | None, title: str, text: str, details: str = "") -> QMessageBox:
    box = QMessageBox(QMessageBox.Critical, title, text, QMessageBox.Ok, parent)
    if details:
        box.setDetailedText(details)
    box.setAttribute(Qt.WA_DeleteOnClose)
    box.open()
    return box


def ask_overwrite(parent: QWidget | None, path: Path, count: int = 1) -> tuple[str, bool]:
    """Ask what to do with an existing output file -> (REPLACE | SKIP | KEEP_BOTH, apply to all)."""
    box = QMessageBox(QMessageBox.Warning, "File exists",
                      f"{path.name} already exists in {path.parent}.", QMessageBox.NoButton, parent)
    box.setInformativeText("Replace it with the new file, keep both (the new one gets a new name), or skip "
                           "this image?")
    replace = box.addButton("Replace", QMessageBox.DestructiveRole)
    keep = box.addButton("Keep both", QMessageBox.AcceptRole)
    skip = box.addButton("Skip", QMessageBox.RejectRole)
    box.setDefaultButton(skip)
    all_box = QCheckBox(f"Do this for the other {count - 1} existing files too") if count > 1 else None
    if all_box is not None:
        box.setCheckBox(all_box)
    box.exec()
    clicked = box.clickedButton()
    choice = REPLACE if clicked is replace else KEEP_BOTH if clicked is keep else SKIP
    return choice, bool(all_box and all_box.isChecked())


def free_name(path: Path, taken: set[Path] = frozenset()) -> Path:
    """``path`` or the first ``name (2).shvc``-style sibling that neither exists nor is in ``taken``."""
    n = 2
    candidate = path
    while candidate.exists() or candidate in taken:
        candidate = path.with_name(f"{path.stem} ({n}){path.suffix}")
        n += 1
    return candidate
