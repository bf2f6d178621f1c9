"""The size of a result against its original, for people: "saved 12.3 %" or "grew by 38.0 %"
(never a negative saving), which codec would have been smallest, and compression that keeps the
original instead of writing a file that would be larger (Caesium's "keep original if larger").
Used by the GUI and the CLI; no Qt here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import codec, image_io
from .baselines import LABELS
from .errors import ExistsError
from .progress import check_cancel, emit

NAMES = {"shvc": ".shvc", "original": "the original file", **LABELS}


@dataclass(frozen=True)
class SizeChange:
    original: int
    new: int

    @property
    def ratio(self) -> float:
        """new / original (1.0 when the original is empty)."""
        return self.new / self.original if self.original > 0 else 1.0

    @property
    def grew(self) -> bool:
        return self.new > self.original

    @property
    def percent(self) -> float:
        """How much smaller (or, when it grew, larger) than the original, in per cent, >= 0."""
        return abs(100.0 * (self.ratio - 1.0))

    def text(self) -> str:
        if self.new == self.original:
            return "same size"
        p = f"{self.percent:.1f}" if self.percent < 100 else f"{self.percent:.0f}"
        return f"grew by {p} %" if self.grew else f"saved {p} %"

    def describe(self) -> str:
        """One sentence: the new size as a percentage of the original."""
        return (f"{human_bytes(self.new)} is {100 * self.ratio:.1f} % of the original "
                f"{human_bytes(self.original)} ({self.text()}).")


def human_bytes(n: float | None) -> str:
    """1234 -> "1.2 KB" (decimal units); sizes are never negative."""
    if n is None:
        return ""
    n = abs(n)
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def smallest(sizes: dict[str, int | None]) -> tuple[str, int] | None:
    """The (name, bytes) of the smallest of ``sizes`` (None values are skipped; ties keep the order
    given, so put the original first to prefer keeping it)."""
    known = [(name, n) for name, n in sizes.items() if n is not None]
    return min(known, key=lambda kv: kv[1]) if known else None


def smallest_sentence(sizes: dict[str, int | None]) -> str:
    best = smallest(sizes)
    if best is None:
        return ""
    name, n = best
    return f"Smallest: {NAMES.get(name, name)} ({human_bytes(n)})."


def compress_unless_larger(src, dst=None, *, skip_larger: bool = False, force: bool = False, progress=None,
                           cancel=None, img: image_io.LoadedImage | None = None, **kw):
    """``codec.compress_file``, except that with ``skip_larger`` nothing is written when the .shvc
    file would not be smaller than ``src``. Returns (CompressResult, written); when not written,
    ``result.dst`` is None and ``result.n_bytes`` is what the file would have been."""
    if not skip_larger:
        return codec.compress_file(src, dst, force=force, progress=progress, cancel=cancel, img=img, **kw), True
    src = Path(src)
    dst = Path(dst) if dst else codec.default_output(src)
    if dst.exists() and not force:
        raise ExistsError(dst)
    emit(progress, "read", 0, 1, src.name)
    if img is None:
        img = image_io.load_image(src)
    original = src.stat().st_size
    data, result = codec.compress_image(img, progress=progress, cancel=cancel, original_bytes=original, **kw)
    check_cancel(cancel, "Compression")
    result.src, result.dst = src, None
    if len(data) >= original:
        return result, False
    image_io.atomic_write(dst, data, force=force)
    result.dst = dst
    return result, True


def kept_note(src, result, codecs=("png", "webp", "jxl", "flif")) -> str:
    """Why an image was kept (for the CLI): its size change and the smallest codec, measured now on
    the image's pixels with the classic codecs that are installed."""
    from . import baselines
    pixels = baselines.comparable_pixels(image_io.load_image(src))
    sizes = {"original": Path(src).stat().st_size, "shvc": result.n_bytes}
    if pixels is not None:
        sizes.update({c: baselines.measure(c, pixels).n_bytes for c in codecs if baselines.available(c)})
    change = SizeChange(sizes["original"], result.n_bytes)
    return f"the .shvc file would be {change.describe()} {smallest_sentence(sizes)}"
