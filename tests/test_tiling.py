"""tiling: any size round-trips, padding is the constant, valid extents are right."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shvc_gui.core import tiling
from shvc_gui.core.errors import UsageError


def _check(rgb, patch):
    h, w, c = rgb.shape
    patches, valid, grid = tiling.to_patches(rgb, patch)
    rows, cols = grid
    assert grid == (-(-h // patch), -(-w // patch)) == tiling.grid_of(h, w, patch)
    assert patches.shape == (rows * cols, c, patch, patch) and patches.dtype == rgb.dtype
    assert patches.flags.c_contiguous and valid.dtype == np.int32 and valid.shape == (rows * cols, 2)
    ar = np.arange(patch)
    mask = (ar[None, :, None] < valid[:, 0, None, None]) & (ar[None, None, :] < valid[:, 1, None, None])
    for i, (vh, vw) in enumerate(valid):
        r, q = divmod(i, cols)
        assert vh == min(patch, h - r * patch) and vw == min(patch, w - q * patch)
        np.testing.assert_array_equal(patches[i, :, :vh, :vw],
                                      rgb[r * patch:r * patch + vh, q * patch:q * patch + vw].transpose(2, 0, 1))
        assert mask[i].sum() == vh * vw
    assert (patches.transpose(1, 0, 2, 3)[:, ~mask] == tiling.PAD_VALUE).all()
    back = tiling.from_patches(patches, valid, grid, h, w)
    assert back.flags.c_contiguous and np.array_equal(back, rgb)
    return patches, valid


@pytest.mark.parametrize("h,w", [(1, 1), (1, 300), (63, 65), (200, 137), (257, 513), (64, 64), (128, 64)])
def test_sizes_round_trip(h, w):
    rgb = np.random.default_rng(h * w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    patches, valid = _check(rgb, tiling.PATCH)
    if (h, w) == (1, 1):
        assert patches.shape == (1, 3, 64, 64) and valid.tolist() == [[1, 1]]
    if (h, w) == (64, 64):
        assert valid.tolist() == [[64, 64]]


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 140), w=st.integers(1, 140), patch=st.sampled_from([5, 16, 32, 64]),
       c=st.sampled_from([1, 3]), seed=st.integers(0, 2**16))
def test_round_trip_property(h, w, patch, c, seed):
    _check(np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8), patch)


def test_float_maps_tile_too():
    bits = np.random.default_rng(0).random((70, 3, 64, 64)).astype(np.float32)[:6]
    grid = tiling.grid_of(100, 150)
    out = tiling.from_patches(bits[:, :1], tiling.valid_extents(100, 150), grid, 100, 150)
    assert out.shape == (100, 150, 1) and out.dtype == np.float32


def test_bad_arguments():
    with pytest.raises(UsageError):
        tiling.grid_of(0, 5)
    with pytest.raises(ValueError):
        tiling.to_patches(np.zeros((5, 5), np.uint8))
    patches, valid, grid = tiling.to_patches(np.zeros((70, 70, 3), np.uint8))
    with pytest.raises(ValueError):
        tiling.from_patches(patches[:3], valid, grid, 70, 70)
    with pytest.raises(ValueError):
        tiling.from_patches(patches, valid, grid, 70, 60)
    with pytest.raises(ValueError):
        tiling.from_patches(patches, valid[::-1], grid, 70, 70)


def test_coder_uses_the_same_pad_value():
    from shvc_gui.core.entropy import bitsback
    assert bitsback.PAD_VALUE == tiling.PAD_VALUE == 128 and tiling.PATCH == 64
