"""Colouring a map of bits per pixel (the model's -log2 p, channels summed) for display. Pure numpy."""

from __future__ import annotations

import math

import numpy as np

from .errors import UsageError

# Anchor colours of an "inferno"-like perceptually ordered map (black, purple, red, orange, pale
# yellow); their luminance rises monotonically. Interpolated to 256 entries: dark = cheap to code,
# bright = expensive.
_ANCHORS = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66],
                     [245, 125, 21], [250, 193, 39], [252, 255, 164]], dtype=np.float64)
_POSITIONS = np.linspace(0.0, 1.0, len(_ANCHORS))
LUT: np.ndarray = np.stack([np.interp(np.linspace(0.0, 1.0, 256), _POSITIONS, _ANCHORS[:, c]) for c in range(3)],
                           axis=1).round().astype(np.uint8)
LUT.setflags(write=False)

MIN_VMAX = 1e-6


def default_vmax(bits_map: np.ndarray) -> float:
    """The 99th percentile of the finite values (so a few outliers do not wash the map out),
    at least :data:`MIN_VMAX`."""
    b = np.asarray(bits_map, dtype=np.float64)
    finite = b[np.isfinite(b)]
    return max(float(np.percentile(finite, 99)) if finite.size else 0.0, MIN_VMAX)


def colorize(bits_map: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """(H, W) bits per pixel -> (H, W, 3) uint8 RGB through :data:`LUT`.

    0 maps to the darkest colour and ``vmax`` (default :func:`default_vmax`) and above to the
    brightest. NaN and negative values count as 0, +inf as ``vmax``.
    """
    b = np.asarray(bits_map, dtype=np.float64)
    if b.ndim != 2:
        raise UsageError(f"expected an (H, W) map of bits, got shape {b.shape}")
    vmax = default_vmax(b) if vmax is None else max(float(vmax), MIN_VMAX)
    b = np.nan_to_num(b, nan=0.0, posinf=vmax, neginf=0.0)
    idx = np.clip(np.rint(b * (255.0 / vmax)), 0, 255).astype(np.uint8)
    return LUT[idx]


def scale_ticks(vmax: float, n: int = 5) -> list[float]:
    """Round values from 0 up to ``vmax`` inclusive, in steps of 1, 2, 2.5 or 5 times a power of
    ten, as close to ``n`` of them as those steps allow (for the colour bar's legend)."""
    if not math.isfinite(vmax) or vmax <= 0:
        return [0.0]
    mag = 10.0 ** math.floor(math.log10(vmax / max(1, n - 1)))

    def count(step: float) -> int:
        return int(math.floor(vmax / step + 1e-9)) + 1

    steps = [m * mag for m in (10, 5, 2.5, 2, 1)]          # on a tie, the coarser step wins
    step = min(steps, key=lambda s: abs(count(s) - n))
    return [round(i * step, 10) for i in range(count(step))]
