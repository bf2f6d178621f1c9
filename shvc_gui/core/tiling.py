"""Image <-> square patches. Edge patches are padded with PAD_VALUE, which the decoder knows; the
coder never spends bits on padded pixels (each patch carries its valid extent)."""

from __future__ import annotations

import numpy as np

from .entropy.bitsback import PAD_VALUE

PATCH = 64


def grid_of(height: int, width: int, patch: int = PATCH) -> tuple[int, int]:
    return -(-height // patch), -(-width // patch)


def to_patches(rgb: np.ndarray, patch: int = PATCH):
    """HxWx3 uint8 -> (patches (N, 3, P, P) uint8, valid (N, 2) int32 [h, w], grid (rows, cols)).

    Patches are in row-major order over the grid."""
    h, w, c = rgb.shape
    rows, cols = grid_of(h, w, patch)
    canvas = np.full((rows * patch, cols * patch, c), PAD_VALUE, dtype=np.uint8)
    canvas[:h, :w] = rgb
    patches = canvas.reshape(rows, patch, cols, patch, c).transpose(0, 2, 4, 1, 3).reshape(-1, c, patch, patch)
    return np.ascontiguousarray(patches), valid_extents(h, w, patch), (rows, cols)


def from_patches(patches: np.ndarray, grid: tuple[int, int], height: int, width: int) -> np.ndarray:
    """Inverse of :func:`to_patches`: (N, 3, P, P) -> HxWx3."""
    rows, cols = grid
    n, c, p, _ = patches.shape
    canvas = patches.reshape(rows, cols, c, p, p).transpose(0, 3, 1, 4, 2).reshape(rows * p, cols * p, c)
    return np.ascontiguousarray(canvas[:height, :width])


def valid_extents(height: int, width: int, patch: int = PATCH) -> np.ndarray:
    rows, cols = grid_of(height, width, patch)
    vh = np.minimum(patch, height - np.arange(rows) * patch)
    vw = np.minimum(patch, width - np.arange(cols) * patch)
    return np.stack(np.broadcast_arrays(vh[:, None], vw[None, :]), axis=-1).reshape(-1, 2).astype(np.int32)
