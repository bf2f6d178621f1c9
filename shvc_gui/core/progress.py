"""Progress events and cancellation for long jobs.

Core code takes a ``progress`` callback (receiving :class:`ProgressEvent`) and a ``cancel``
``threading.Event``; the GUI adapts them to Qt signals in one place (shvc_gui/qt/workers.py), the
CLI to a tqdm bar. :func:`check_cancel` raises :class:`Cancelled` when the Event is set.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

from .errors import Cancelled

@dataclass(frozen=True)
class ProgressEvent:
    stage: str            # "read", "compress", "decompress", "write", ... (free text)
    done: int
    total: int
    message: str = ""

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total > 0 else 0.0


ProgressCallback = Callable[[ProgressEvent], None]


def check_cancel(cancel: threading.Event | None, what: str = "The job") -> None:
    """Raise :class:`Cancelled` ("<what> was cancelled.") when ``cancel`` is set."""
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"{what} was cancelled.")


def emit(progress: ProgressCallback | None, stage: str, done: int, total: int, message: str = "") -> None:
    if progress is not None:
        progress(ProgressEvent(stage, done, total, message))
