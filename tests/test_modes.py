"""Pixel modes have one home (shvc_gui.core.modes): channels, sample types and coding methods, and
every figure computed from them (the file's bits per dimension in CompressResult, ``shvc info``, the
GUI's queue) agrees with it for every mode, one channel to four."""

import numpy as np
import pytest

from shvc_gui.core import codec, container, image_io, modes
from shvc_gui.core.image_io import LoadedImage

# Modes whose channel count is not 3: a codec that guessed 3 would be wrong on each of them.
ODD_MODES = ["PA", "LA", "La", "I;16B", "L", "1", "RGBX", "RGBa", "CMYK"]


def _image(mode: str) -> LoadedImage:
    c, dt = modes.channels(mode), np.dtype(modes.sample_type(mode))
    rng = np.random.default_rng(7)
    if dt == bool:
        px = rng.integers(0, 2, (9, 11, c)).astype(bool)
    else:
        px = rng.integers(0, 200, (9, 11, c)).astype(dt)
    return LoadedImage(px, mode)


@pytest.mark.parametrize("mode", ODD_MODES)
def test_bpd_counts_the_modes_own_channels(mode):
    img = _image(mode)
    data, res = codec.compress_image(img)
    expected = 8 * len(data) / (img.channels * img.width * img.height)
    assert img.channels == modes.channels(mode) != 3
    assert res.bpd == pytest.approx(expected)
    header = container.read_header(data)
    assert container.describe(header, None)["mode"] == mode
    assert header.channels == img.channels


def test_info_bpd_counts_the_modes_own_channels(tmp_path):
    img = _image("PA")
    data, res = codec.compress_image(img)
    p = tmp_path / "x.shvc"
    p.write_bytes(data)
    d = codec.describe(codec.read_header(p), p)
    assert d["bpd"] == pytest.approx(res.bpd, abs=1e-4)
    assert d["bpd"] == pytest.approx(8 * len(data) / (2 * img.width * img.height), abs=1e-4)


def test_one_home_for_modes():
    assert container.MODE_CHANNELS is modes.MODE_CHANNELS is image_io.MODE_CHANNELS
    for mode in modes.MODES:
        assert image_io.sample_dtype(mode) == np.dtype(modes.sample_type(mode))
        assert image_io.coding_method(mode) == modes.coding_method(mode) in modes.METHODS
        assert codec.channels_of(mode) == modes.channels(mode) >= 1
    assert {m for m in modes.MODES if modes.coding_method(m) != modes.METHOD_FALLBACK} == {"RGB", "RGBA"}


def test_unknown_mode_has_no_default_channel_count():
    with pytest.raises(KeyError):
        modes.channels("XYZ")
    with pytest.raises(KeyError):
        codec.channels_of("XYZ")
