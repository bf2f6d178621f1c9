"""Background work for the GUI: compression, comparison codecs, decoding and thumbnails.

Nothing here runs in the UI thread. Jobs are plain Python callables submitted to single-worker
executors (one for the codec, so a GPU is never shared by two jobs; one for decoding opened files;
one for thumbnails and previews); they report through the Qt signals of :class:`Bridge`, which Qt
delivers to the UI thread as queued calls. Cancel and pause are ``threading.Event`` objects that the
core codec checks at every patch batch (see core/progress.py).
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal

from ..core import baselines, codec, image_io, sizing
from ..core.errors import Cancelled, ShvcError
from ..core.progress import ProgressEvent

THUMB_SIZE = 96


@dataclass
class JobControl:
    """Cancel and pause flags of one job, set from the UI thread."""
    cancel: threading.Event = field(default_factory=threading.Event)
    running: threading.Event = field(default_factory=lambda: _set(threading.Event()))

    def pause(self) -> None:
        self.running.clear()

    def resume(self) -> None:
        self.running.set()

    def stop(self) -> None:
        self.cancel.set()
        self.running.set()

    def wait_if_paused(self) -> None:
        while not self.running.wait(0.1):
            if self.cancel.is_set():
                break

    def is_set(self) -> bool:
        """The core checks ``cancel.is_set()`` before every network call; given a JobControl as
        ``cancel``, that check also holds the job while it is paused."""
        self.wait_if_paused()
        return self.cancel.is_set()


def _set(ev: threading.Event) -> threading.Event:
    ev.set()
    return ev


@dataclass
class CompressRequest:
    item_id: int
    src: Path
    dst: Path
    force: bool
    variant: str | None
    device: str
    codecs: tuple[str, ...]
    control: JobControl
    skip_larger: bool = False          # write nothing when the .shvc file would not be smaller


class Bridge(QObject):
    """Signals that carry results from worker threads to the UI thread (queued connections)."""
    started = Signal(int)                       # item id
    progress = Signal(int, str, float, str)     # item id, stage, fraction, message
    compressed = Signal(int, object)            # item id, codec.CompressResult (dst None: kept the original)
    baseline = Signal(int, object)              # item id, baselines.BaselineResult
    finished = Signal(int)                      # item id: nothing more will come for it
    failed = Signal(int, str)                   # item id, one-sentence message
    cancelled = Signal(int)
    thumbnail = Signal(int, object, object)     # item id, (h, w, 3|4) uint8 thumbnail, (width, height)
    preview = Signal(int, object)               # item id, full-size display array
    decoded = Signal(int, object, object)       # request id, LoadedImage, container.Header
    decode_failed = Signal(int, str)


def cpu_threads() -> int:
    """Threads for the networks on the CPU: SHVC_THREADS, else the cores minus one (the UI's)."""
    n = os.environ.get("SHVC_THREADS", "")
    return int(n) if n.isdigit() and int(n) > 0 else max(1, (os.cpu_count() or 2) - 1)


class ModelCache:
    """Loads the shipped model for a variant once; used from the codec worker thread only."""

    def __init__(self, model=None):
        self.fixed = model            # a model object given by the caller (tests, --weights)
        self.models: dict[str | None, object] = {}

    def get(self, variant: str | None):
        if self.fixed is not None:
            return self.fixed
        if variant not in self.models:
            from ..core.weights import load_model
            self.models[variant] = load_model(variant=variant)
        return self.models[variant]


class Workers:
    """The executors and the bridge. ``shutdown`` cancels what is queued and waits briefly."""

    def __init__(self, model=None):
        self.bridge = Bridge()
        self.models = ModelCache(model)
        self._codec = ThreadPoolExecutor(1, thread_name_prefix="shvc-codec")
        self._decode = ThreadPoolExecutor(1, thread_name_prefix="shvc-decode")
        self._light = ThreadPoolExecutor(1, thread_name_prefix="shvc-thumbs")
        self.controls: dict[int, JobControl] = {}
        if not os.environ.get("SHVC_THREADS"):
            import torch
            torch.set_num_threads(cpu_threads())

    # -- compression ------------------------------------------------------------------------------
    def compress(self, req: CompressRequest) -> Future:
        self.controls[req.item_id] = req.control
        return self._codec.submit(self._compress, req)

    def _compress(self, req: CompressRequest) -> None:
        b, ctl = self.bridge, req.control
        try:
            if ctl.cancel.is_set():
                raise Cancelled("Compression was cancelled.")
            b.started.emit(req.item_id)

            def progress(ev: ProgressEvent) -> None:
                ctl.wait_if_paused()
                b.progress.emit(req.item_id, ev.stage, ev.fraction, ev.message)

            img = image_io.load_image(req.src)
            model = self.models.get(req.variant) if image_io.coding_method(img.mode) != image_io.METHOD_FALLBACK \
                else None
            result, _ = sizing.compress_unless_larger(
                req.src, req.dst, skip_larger=req.skip_larger, model=model, variant=req.variant,
                device=req.device, force=req.force, progress=progress, cancel=ctl, img=img)
            b.compressed.emit(req.item_id, result)
            pixels = baselines.comparable_pixels(img)
            for i, name in enumerate(req.codecs):
                if ctl.cancel.is_set():
                    break
                ctl.wait_if_paused()
                b.progress.emit(req.item_id, "baselines", i / len(req.codecs), baselines.LABELS.get(name, name))
                r = baselines.measure(name, pixels) if pixels is not None else \
                    baselines.BaselineResult(name, None, None, note="n/a for this pixel format")
                b.baseline.emit(req.item_id, r)
            b.finished.emit(req.item_id)
        except Cancelled:
            b.cancelled.emit(req.item_id)
        except ShvcError as exc:
            b.failed.emit(req.item_id, str(exc))
        except MemoryError:
            b.failed.emit(req.item_id, "Not enough memory to compress this image.")
        except Exception as exc:  # noqa: BLE001 - a worker must report, never die silently
            b.failed.emit(req.item_id, f"Unexpected error: {type(exc).__name__}: {exc}")
        finally:
            self.controls.pop(req.item_id, None)

    def cancel_all(self) -> None:
        for ctl in list(self.controls.values()):
            ctl.stop()

    def set_paused(self, paused: bool) -> None:
        for ctl in list(self.controls.values()):
            ctl.pause() if paused else ctl.resume()

    # -- opening .shvc files ----------------------------------------------------------------------
    def decode(self, request_id: int, path: Path, cancel: threading.Event | None = None) -> Future:
        return self._decode.submit(self._decode_job, request_id, Path(path), cancel)

    def _decode_job(self, request_id: int, path: Path, cancel) -> None:
        try:
            with open(path, "rb") as f:
                data = f.read()
            img, header = codec.decompress_bytes(data, model=self.models.fixed, cancel=cancel)
            self.bridge.decoded.emit(request_id, img, header)
        except OSError as exc:
            self.bridge.decode_failed.emit(request_id, f"{path.name} cannot be read ({exc.strerror or exc}).")
        except ShvcError as exc:
            self.bridge.decode_failed.emit(request_id, str(exc))
        except Exception as exc:  # noqa: BLE001
            self.bridge.decode_failed.emit(request_id, f"Unexpected error: {type(exc).__name__}: {exc}")

    # -- thumbnails and previews ------------------------------------------------------------------
    def thumbnail(self, item_id: int, path: Path) -> Future:
        return self._light.submit(self._thumbnail, item_id, Path(path))

    def _thumbnail(self, item_id: int, path: Path) -> None:
        try:
            img = image_io.load_image(path)
        except Exception as exc:  # noqa: BLE001 - the compress job reports it properly
            self.bridge.failed.emit(item_id, str(exc) if isinstance(exc, ShvcError) else f"{path.name}: {exc}")
            return
        disp = image_io.to_display(img)
        self.bridge.thumbnail.emit(item_id, make_thumbnail(disp), (img.width, img.height))

    def preview(self, item_id: int, path: Path) -> Future:
        return self._light.submit(self._preview, item_id, Path(path))

    def _preview(self, item_id: int, path: Path) -> None:
        try:
            self.bridge.preview.emit(item_id, np.ascontiguousarray(image_io.to_display(image_io.load_image(path))))
        except Exception:  # noqa: BLE001 - the detail view simply stays empty
            pass

    def shutdown(self, timeout: float = 5.0) -> None:
        self.cancel_all()
        for ex in (self._codec, self._decode, self._light):
            ex.shutdown(wait=False, cancel_futures=True)
        t0 = time.monotonic()
        for ex in (self._codec, self._decode, self._light):
            for t in list(getattr(ex, "_threads", ())):
                t.join(max(0.0, timeout - (time.monotonic() - t0)))


def make_thumbnail(disp: np.ndarray, size: int = THUMB_SIZE) -> np.ndarray:
    """A box-filtered thumbnail that fits in ``size`` x ``size`` (Pillow's reduce/thumbnail)."""
    from PIL import Image
    im = Image.fromarray(disp)
    im.thumbnail((size, size), Image.Resampling.BOX if max(im.size) > 4 * size else Image.Resampling.LANCZOS)
    return np.ascontiguousarray(np.asarray(im))
