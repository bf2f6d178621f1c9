"""The geometry of the whole-image sub-pixel pyramid (format version 3, variant ``det``).

Level 0 is the image. Each level is padded to even sides with ``PAD_VALUE`` and cut by the sub-pixel
reorder g(x; 2) into four sub-images; sub-image 0 is the next (coarser) level, which is therefore
the ceiling half of the level on each side and holds no padding. The pyramid stops at the first
level no larger than 2 x 2: that one codes all four sub-images (head 0 included), every other level
sub-images 1..3. Padding is never coded: sub-image ``j`` of a level of ``height`` x ``width`` holds
real pixels in rows ``< (height - j // 2 + 1) // 2`` and columns ``< (width - j % 2 + 1) // 2`` only
(:meth:`Level.extent`), a rectangle from the top-left corner.

Pixel (r, c) of sub-image ``j`` of level ``n`` is pixel ``(2^n (2r + j // 2), 2^n (2c + j % 2))`` of
the image (:func:`image_view`), so every image pixel is coded exactly once.

The symbols of a level are shared out over the independent streams by rows of its sub-images
(:func:`stripes`), and each stream codes its rows in bands of about ``BAND_POSITIONS`` positions
(:func:`bands`): one band and channel is one run of symbols of the coder. Stripes and bands depend
on the image size and the stream count only (the file fixes them); the network's tiles do not
change them (:mod:`.halo`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..model.layers import subpixel, subpixel_inverse
from ..tiling import PAD_VALUE

K = 2                             # the sub-pixel factor of the whole-image pyramid (models with k = 2)
BLOCKS = K * K
TUNED_POSITIONS = 1 << 12        # a sub-image of at least this many positions gets its own scale offsets
BAND_POSITIONS = 1 << 15          # positions of a sub-image per coded run (one band of rows): 2^16 made
                                  # the network's temporaries large enough for fresh pages on every band
                                  # (12-MP photo: 12 s of system time), 2^14 was no faster than 2^15


@dataclass(frozen=True)
class Level:
    n: int                        # 0: the image
    height: int                   # the level's size in pixels
    width: int

    @property
    def rows(self) -> int:
        """Rows of each sub-image (the next level's height)."""
        return -(-self.height // K)

    @property
    def cols(self) -> int:
        return -(-self.width // K)

    @property
    def top(self) -> bool:
        """The coarsest level: no larger than K x K, all its sub-images are coded."""
        return self.height <= K and self.width <= K

    @property
    def blocks(self) -> range:
        """The sub-images this level codes, in decoding order."""
        return range(0 if self.top else 1, BLOCKS)

    def extent(self, j: int) -> tuple[int, int]:
        """(rows, cols) of sub-image ``j`` that hold pixels of the level (the rest is padding)."""
        return (self.height - j // K + 1) // K, (self.width - j % K + 1) // K


def tuned(level: Level, j: int) -> bool:
    """Whether sub-image ``j`` of ``level`` is large enough for scale offsets of its own (format
    version 4; smaller ones are coded with offset 0)."""
    rows, cols = level.extent(j)
    return rows * cols >= TUNED_POSITIONS


def tuned_steps(height: int, width: int) -> int:
    """How many sub-images of the image's pyramid have scale offsets (:func:`tuned`)."""
    return sum(tuned(level, j) for level in levels(height, width) for j in level.blocks)


def levels(height: int, width: int) -> list[Level]:
    """The pyramid of a ``height`` x ``width`` image, finest (the image) first."""
    out = [Level(0, height, width)]
    while not out[-1].top:
        last = out[-1]
        out.append(Level(last.n + 1, last.rows, last.cols))
    return out


def split(level_image: torch.Tensor, level: Level) -> torch.Tensor:
    """A level (3, height, width) uint8 -> its sub-images (BLOCKS, 3, rows, cols), padding PAD_VALUE."""
    c = level_image.shape[0]
    canvas = torch.full((c, K * level.rows, K * level.cols), PAD_VALUE, dtype=level_image.dtype)
    canvas[:, :level.height, :level.width] = level_image
    return subpixel(canvas.unsqueeze(0), K)[0].contiguous()


def join(X: torch.Tensor, level: Level) -> torch.Tensor:
    """Inverse of :func:`split`: sub-images (BLOCKS, 3, rows, cols) -> the level (3, height, width)."""
    return subpixel_inverse(X.unsqueeze(0), K)[0, :, :level.height, :level.width].contiguous()


def split_all(image: torch.Tensor, pyramid: list[Level]) -> list[torch.Tensor]:
    """The sub-images of every level of ``image`` (3, H, W) uint8, finest first (the encoder's)."""
    out, cur = [], image
    for level in pyramid:
        out.append(split(cur, level))
        cur = out[-1][0]
    return out


def stripes(rows: int, streams: int) -> list[tuple[int, int]]:
    """Rows [a, b) of a level's sub-images coded by each of ``streams`` streams (some may be empty)."""
    return [(s * rows // streams, (s + 1) * rows // streams) for s in range(streams)]


def bands(a: int, b: int, cols: int) -> list[tuple[int, int]]:
    """Rows [a, b) of one stripe cut into bands of about BAND_POSITIONS positions (whole rows)."""
    step = max(1, BAND_POSITIONS // max(1, cols))
    return [(r, min(b, r + step)) for r in range(a, b, step)]


def image_view(image_map: np.ndarray, level: Level, j: int) -> np.ndarray:
    """The view of an image-sized array (H, W) holding sub-image ``j`` of ``level`` (its extent)."""
    s = 1 << level.n
    return image_map[::s, ::s][j // K::K, j % K::K]
