"""Colouring a map of bits per pixel (the model's -log2 p, channels summed) for display."""

from __future__ import annotations

import numpy as np

# Anchor colours of a perceptually ordered dark-to-bright map (black, purple, red, orange, pale yellow),
# interpolated to 256 entries: dark = cheap to code, bright = expensive.
_ANCHORS = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66],
                     [245, 125, 21], [250, 193, 39], [252, 255, 164]], dtype=np.float64)
LUT = np.stack([np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_ANCHORS)), _ANCHORS[:, c])
                for c in range(3)], axis=1).round().astype(np.uint8)


def default_vmax(bits_map: np.ndarray) -> float:
    """The 99th percentile of the finite values (so a few outliers do not wash the map out)."""
    finite = bits_map[np.isfinite(bits_map)]
    return max(float(np.percentile(finite, 99)) if finite.size else 0.0, 1e-6)


def colorize(bits_map: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """(H, W) bits per pixel -> (H, W, 3) uint8 RGB through :data:`LUT`; NaN counts as 0."""
    b = np.nan_to_num(np.asarray(bits_map, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    vmax = default_vmax(b) if vmax is None else max(float(vmax), 1e-6)
    idx = np.clip(b / vmax * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return LUT[idx]


def scale_ticks(vmax: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values from 0 to ``vmax`` for a colour-bar legend."""
    if vmax <= 0:
        return [0.0]
    raw = vmax / max(1, n - 1)
    mag = 10 ** np.floor(np.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return [round(float(v), 6) for v in np.arange(0, vmax + 1e-9, step)]
