"""Image <-> square patches.

The image is cut into a grid of ``patch`` x ``patch`` tiles in row-major order. Tiles on the right
and bottom edges are padded with ``PAD_VALUE``; each tile carries its valid extent
``[valid_h, valid_w]`` so the coder never spends bits on padding and the decoder can put the same
constant back. Any width and height >= 1 work (a 1x1 image is one patch with valid extent [1, 1]).
"""

from __future__ import annotations

import numpy as np

from .errors import UsageError

PATCH = 64
PAD_VALUE = 128


def grid_of(height: int, width: int, patch: int = PATCH) -> tuple[int, int]:
    """(rows, cols) of patches covering a ``height`` x ``width`` image."""
    if height < 1 or width < 1 or patch < 1:
        raise UsageError(f"image {height}x{width} / patch {patch}: all must be >= 1")
    return -(-height // patch), -(-width // patch)


def valid_extents(height: int, width: int, patch: int = PATCH) -> np.ndarray:
    """(N, 2) int32 [valid_h, valid_w] of every patch, row-major over the grid."""
    rows, cols = grid_of(height, width, patch)
    vh = np.minimum(patch, height - np.arange(rows) * patch)
    vw = np.minimum(patch, width - np.arange(cols) * patch)
    return np.stack(np.broadcast_arrays(vh[:, None], vw[None, :]), axis=-1).reshape(-1, 2).astype(np.int32)


def to_patches(rgb: np.ndarray, patch: int = PATCH) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """H x W x C (C = 3 for the model) -> (patches (N, C, P, P), valid (N, 2) int32 [valid_h, valid_w],
    grid (rows, cols)). Patches are row-major over the grid; padding is ``PAD_VALUE``."""
    if rgb.ndim != 3:
        raise UsageError(f"expected an H x W x C array, got shape {rgb.shape}")
    h, w, c = rgb.shape
    rows, cols = grid_of(h, w, patch)
    canvas = np.full((rows * patch, cols * patch, c), PAD_VALUE, dtype=rgb.dtype)
    canvas[:h, :w] = rgb
    patches = canvas.reshape(rows, patch, cols, patch, c).transpose(0, 2, 4, 1, 3).reshape(-1, c, patch, patch)
    return np.ascontiguousarray(patches), valid_extents(h, w, patch), (rows, cols)


def from_patches(patches: np.ndarray, valid: np.ndarray, grid: tuple[int, int], height: int,
                 width: int) -> np.ndarray:
    """Inverse of :func:`to_patches`: (N, C, P, P) -> H x W x C; ``valid`` is checked against the
    grid and the size."""
    rows, cols = grid
    n, c, p, p2 = patches.shape
    if p != p2 or n != rows * cols or (rows, cols) != grid_of(height, width, p):
        raise UsageError(f"{n} patches of {p}x{p2} do not tile a {height}x{width} image as a {rows}x{cols} grid")
    if not np.array_equal(np.asarray(valid), valid_extents(height, width, p)):
        raise UsageError("valid extents do not match the image size")
    canvas = patches.reshape(rows, cols, c, p, p).transpose(0, 3, 1, 4, 2).reshape(rows * p, cols * p, c)
    return np.ascontiguousarray(canvas[:height, :width])
