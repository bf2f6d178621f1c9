"""Progress events and cancellation for long jobs.

Core code takes a ``progress`` callback (receiving :class:`ProgressEvent`) and a ``cancel``
``threading.Event``; the GUI adapts them to Qt signals in one place (shvc_gui/qt/workers.py), the
CLI to a tqdm bar. :class:`Reporter` bundles the two: every report first checks the Event and
raises :class:`Cancelled` when it is set, so a job that reports often is also quick to cancel.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

from .errors import Cancelled

STAGES = ("read", "compress", "decompress", "write", "baselines")


@dataclass(frozen=True)
class ProgressEvent:
    stage: str            # one of STAGES (free text is allowed)
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


class Reporter:
    """A progress callback and a cancel Event together.

    >>> r = Reporter(print, cancel=None, what="Compression")
    >>> r("compress", 1, 4, "patch 1/4")           # checks cancel, then emits
    ProgressEvent(stage='compress', done=1, total=4, message='patch 1/4')
    >>> step = r.stage("compress")                  # a (done, total) callback, e.g. for the patch coder
    """

    def __init__(self, progress: ProgressCallback | None = None, cancel: threading.Event | None = None,
                 what: str = "The job"):
        self.progress, self.cancel, self.what = progress, cancel, what

    def check(self) -> None:
        check_cancel(self.cancel, self.what)

    def __call__(self, stage: str, done: int, total: int, message: str = "") -> None:
        self.check()
        emit(self.progress, stage, done, total, message)

    def stage(self, stage: str, label: str = "") -> Callable[[int, int], None]:
        """A ``(done, total)`` callback for one stage; ``label`` e.g. "patch" gives "patch 3/10"."""
        def step(done: int, total: int) -> None:
            self(stage, done, total, f"{label} {done}/{total}" if label else "")
        return step
