"""Progress events of long jobs. Core code takes a callback and a cancel Event; the GUI adapts
them to Qt signals in one place (shvc_gui/qt/workers.py), the CLI to a tqdm bar."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

from .errors import Cancelled


@dataclass(frozen=True)
class ProgressEvent:
    stage: str            # "read", "compress", "decompress", "write", "baselines"
    done: int
    total: int
    message: str = ""

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


ProgressCallback = Callable[[ProgressEvent], None]


def check_cancel(cancel: threading.Event | None, what: str = "The job") -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"{what} was cancelled.")


def emit(progress: ProgressCallback | None, stage: str, done: int, total: int, message: str = "") -> None:
    if progress is not None:
        progress(ProgressEvent(stage, done, total, message))
