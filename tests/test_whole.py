"""The whole-image coder of the deterministic model (format version 3): exact round trips at any
size, network tiles with a halo equal to the whole level, bytes independent of tiles, network batch
and threads, streams and coders, the bits map and damage."""

import numpy as np
import pytest
import torch

from shvc_gui.core.entropy import pyramid as pyr
from shvc_gui.core.entropy import whole
from shvc_gui.core.entropy.halo import band_params, receptive_radius
from shvc_gui.core.errors import FormatError, UsageError
from shvc_gui.core.model.shvc import pixel_centre
from shvc_gui.core.model.testing import synthetic_photo, tiny_model

# the two pixel-network forms: one shared net (3x3 layers), and heads with interpolated centres
# (a 5x5 first layer, so the halo must be 3 rows: 2 for the kernel and 1 for the centre)
MODELS = {"shared": dict(), "heads": dict(heads=True, interp=True, kernel=5), "anchor": dict(anchor=True)}
_CACHE = {}


def _model(kind):
    if kind not in _CACHE:
        _CACHE[kind] = tiny_model(latent_layers=0, **MODELS[kind])
    return _CACHE[kind]


def _image(h, w, seed=0):
    """A photo-like image with a block of noise and a flat band (every kind of statistics)."""
    x = synthetic_photo(h, w, seed=seed)
    rng = np.random.default_rng(seed)
    x[: h // 3, : w // 3] = rng.integers(0, 256, x[: h // 3, : w // 3].shape)
    x[h // 2:, w // 2:] = 77
    return x


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("size", [(1, 1), (1, 9), (7, 1), (2, 2), (3, 5), (13, 9), (40, 33), (66, 130)])
def test_round_trip_exact_at_any_size(kind, size):
    h, w = size
    x = _image(h, w, seed=h * 131 + w)
    enc = whole.encode_image(_model(kind), x, "det")
    assert np.array_equal(whole.decode_image(_model(kind), enc.payload, h, w, "det"), x)
    r = enc.report
    assert r.n_dims == 3 * h * w and r.initial_bits == 0 and r.total_bits == 8 * len(enc.payload)
    # the bits map is full resolution: every pixel coded once, so every pixel costs something
    assert r.bits_map.shape == (h, w) and (r.bits_map > 0).all()
    assert r.bits_map.sum(dtype=np.float64) == pytest.approx(r.neg_elbo_bits, rel=1e-5)
    assert r.total_bits >= r.neg_elbo_bits


def test_pyramid_levels_cover_every_pixel_once():
    for h, w in [(1, 1), (1, 9), (5, 3), (17, 64), (100, 3)]:
        levels = pyr.levels(h, w)
        assert levels[0].height == h and levels[-1].top and not any(lv.top for lv in levels[:-1])
        seen = np.zeros((h, w), np.int64)
        for level in levels:
            for j in level.blocks:
                pyr.image_view(seen, level, j)[...] += 1
                assert pyr.image_view(seen, level, j).shape == level.extent(j)
        assert (seen == 1).all()


def _whole_level(model, X, j):
    Xl = X.unsqueeze(0).to(torch.int64)
    return (*model.pixel_params(j, Xl, None), pixel_centre(model.hp, Xl, j))


@pytest.mark.parametrize("kind", list(MODELS))
def test_tiles_with_a_halo_equal_the_whole_level(kind):
    """The parameters of any band, evaluated in tiles of any size and any number of tiles per
    network call, equal those of the whole level at once; with a halo one row short they do not
    (so the halo really is the receptive radius)."""
    model = _model(kind)
    radius = receptive_radius(model)
    assert radius == {"shared": 2, "heads": 3, "anchor": 2}[kind]
    level = pyr.Level(0, 37, 22)
    X = pyr.split(torch.from_numpy(_image(37, 22, seed=5)).permute(2, 0, 1), level)
    exact_with_less = []
    for j in range(1, 4):
        ref = _whole_level(model, X, j)
        for a, b in [(0, 19), (3, 11), (16, 19), (0, 1)]:
            for tile_rows, net_batch in [(None, None), (1, None), (2, 1), (3, 2), (5, None)]:
                got = band_params(model, X, j, a, b, radius, tile_rows, net_batch)
                for g, r in zip(got, ref):
                    assert (g is None) == (r is None)
                    if r is not None:
                        assert torch.equal(g, r[..., a:b, :]), (j, a, b, tile_rows, net_batch)
        short = band_params(model, X, j, 3, 11, radius - 1, 1)
        exact_with_less.append(all(torch.equal(g, r[..., 3:11, :]) for g, r in zip(short, ref) if r is not None))
    assert not all(exact_with_less)     # (j = 1 of an interpolating model needs no row below: its centre is a row's)


def test_bytes_do_not_depend_on_tiles_batch_or_threads():
    model = _model("heads")
    x = _image(45, 70, seed=3)
    ref = whole.encode_image(model, x, "det", streams=3).payload
    for opts in [dict(tile_rows=1), dict(tile_rows=4, net_batch=2), dict(tile_rows=7, net_batch=1),
                 dict(workers=3), dict(workers=1, tile_rows=2)]:
        assert whole.encode_image(model, x, "det", streams=3, **opts).payload == ref, opts
    y = whole.decode_image(model, ref, 45, 70, "det", tile_rows=3, net_batch=2, workers=2)
    assert np.array_equal(y, x)


def test_bytes_are_the_same_on_every_conv_path(monkeypatch):
    """int8 units, exact float32 conv2d, unfold + matmul (the path of GPUs and non-x86 CPUs)."""
    from shvc_gui.core.model import quant
    model = _model("heads")
    x = _image(21, 34, seed=9)
    payloads = []
    for name in ("int8", "fp32", "unfold"):
        monkeypatch.setattr(quant, "conv_path", name)
        payloads.append(whole.encode_image(model, x, "det", tile_rows=4).payload)
        assert np.array_equal(whole.decode_image(model, payloads[0], 21, 34, "det"), x)
    assert payloads[0] == payloads[1] == payloads[2]


@pytest.mark.parametrize("streams,lanes", [(1, 0), (1, 32), (4, 32), (5, 0)])
def test_streams_and_coders(streams, lanes, monkeypatch):
    """Several streams (some without rows at the coarse levels), the rANS lanes and the whole-table
    coder; bands smaller than a stripe so that a stream codes several runs per sub-image."""
    monkeypatch.setattr(pyr, "BAND_POSITIONS", 64)
    model = _model("shared")
    x = _image(50, 41, seed=streams + lanes)
    enc = whole.encode_image(model, x, "det", streams=streams, lanes=lanes)
    assert np.array_equal(whole.decode_image(model, enc.payload, 50, 41, "det"), x)
    one = whole.encode_image(model, x, "det", streams=1, lanes=lanes)
    assert one.report.neg_elbo_bits == pytest.approx(enc.report.neg_elbo_bits)   # same model, other cut


def test_the_context_crosses_former_patch_borders():
    """A pixel on one side of a former 64x64 patch border changes the parameters on the other side."""
    model = _model("heads")
    x = _image(130, 70, seed=8)
    level = pyr.Level(0, 130, 70)
    X = pyr.split(torch.from_numpy(x).permute(2, 0, 1), level)
    before = band_params(model, X, 2, 32, 33, receptive_radius(model))
    X[0, 1, 31, 10] ^= 0x55                   # level row 62: the last row of the first patch row
    after = band_params(model, X, 2, 32, 33, receptive_radius(model))   # level row 65: the next patch row
    assert not torch.equal(before[1], after[1])


def test_damage_is_reported():
    model = _model("shared")
    x = _image(30, 30, seed=1)
    enc = whole.encode_image(model, x, "det", lanes=32)
    with pytest.raises(FormatError):
        whole.decode_image(model, enc.payload[:-4], 30, 30, "det")
    bad = np.frombuffer(enc.payload, "<u4").copy()
    bad[-3] ^= 0x00100400                     # a rANS state: decoding cannot end where it started
    with pytest.raises(FormatError):
        whole.decode_image(model, bad.tobytes(), 30, 30, "det")
    seeded = np.frombuffer(enc.payload, "<u4").copy()
    assert seeded[0] == 0                      # no colour list (30x30: at most 9 colours would pay)
    seeded[4] = 1                              # after the offsets, count and lanes: a seed prefix (det pops nothing)
    with pytest.raises(FormatError, match="stream table"):
        whole.decode_image(model, seeded.tobytes(), 30, 30, "det")


def test_usage_errors():
    with pytest.raises(UsageError):
        whole.encode_image(tiny_model(latent_layers=3), _image(8, 8), "det")
    with pytest.raises(UsageError):
        whole.encode_image(_model("shared"), _image(8, 8), whole.Layout("det", version=2))
    with pytest.raises(UsageError):
        whole.encode_image(_model("shared"), _image(8, 8)[..., :2].copy(), "det")
    with pytest.raises(UsageError):
        whole.encode_image(_model("shared"), _image(8, 8), "det", tile_rows=0)
