"""Round trips of the bits-back coder, code length against the ELBO, and initial bits."""

import numpy as np
import pytest

from shvc_gui.core.entropy.bitsback import decode_patches, encode_patches
from shvc_gui.core.errors import FormatError
from shvc_gui.core.model.testing import synthetic_photo, tiny_model


def _images(n: int, p: int, seed: int = 0) -> np.ndarray:
    """Noise, flat colour, gradients and photo-like patches, cycling."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, 3, p, p), dtype=np.uint8)
    ramp = np.linspace(0, 255, p).astype(np.uint8)
    for i in range(n):
        kind = i % 4
        if kind == 0:
            out[i] = rng.integers(0, 256, (3, p, p))
        elif kind == 1:
            out[i] = rng.integers(0, 256, (3, 1, 1))
        elif kind == 2:
            out[i] = np.stack([ramp[None, :].repeat(p, 0), ramp[:, None].repeat(p, 1), 255 - ramp[None, :].repeat(p, 0)])
        else:
            out[i] = synthetic_photo(p, p, seed=i).transpose(2, 0, 1)
    return out


MODELS = {}


def _model(latent_layers, patch):
    key = (latent_layers, patch)
    if key not in MODELS:
        MODELS[key] = tiny_model(latent_layers=latent_layers, patch=patch)
    return MODELS[key]


# (format version, rANS lanes): the lanes of version 2, its whole-table fallback, version 1
CODERS = [(2, 64), (2, 0), (1, 0)]
slow = pytest.mark.slow           # left out of the quick run (`make test-quick`); `make test` and CI run all


def _round_trip_cases():
    """Every coder x variant x size x patch; the lanes coder alone at 37 patches (the table coders
    are slow: one size of them is enough). Slow: 37 patches, and the table coders at 64x64 (the
    quick run has them at 32x32)."""
    for coder, cid in zip(CODERS, ["lanes", "tables", "v1"]):
        for variant in ["shvc", "arib", "det"]:
            for n in [1, 2] + ([37] if coder == CODERS[0] else []):
                for patch in [32, 64]:
                    heavy = n == 37 or (coder != CODERS[0] and patch == 64)
                    yield pytest.param(coder, variant, n, patch, id=f"{cid}-{variant}-{n}-{patch}",
                                       marks=[slow] if heavy else [])


@pytest.mark.parametrize("coder,variant,n,patch", list(_round_trip_cases()))
def test_round_trip_exact(coder, variant, n, patch):
    version, lanes = coder
    model = _model(0 if variant == "det" else (3 if patch == 64 else 2), patch)
    x = _images(n, patch, seed=n)
    valid = np.full((n, 2), patch)
    enc = encode_patches(model, x, valid, variant, group_size=16, net_batch=16, version=version, lanes=lanes)
    y = decode_patches(model, enc.payload, valid, variant, group_size=16, net_batch=5, version=version)
    assert np.array_equal(x, y)
    assert enc.report.n_dims == 3 * n * patch * patch
    if n == 1:                         # the payload is exactly what the decoder needs: a byte less fails
        with pytest.raises(FormatError):
            decode_patches(model, enc.payload[:-1], valid, variant, group_size=16, version=version)


@pytest.mark.parametrize("variant", [pytest.param("shvc", marks=slow), "arib", pytest.param("det", marks=slow)])
def test_padded_pixels_are_not_coded(variant, tiny_model, tiny_det_model):
    model = tiny_det_model if variant == "det" else tiny_model
    x = _images(3, 64, seed=5)
    valid = np.array([[64, 64], [1, 1], [17, 50]])
    enc = encode_patches(model, x, valid, variant, group_size=2)
    y = decode_patches(model, enc.payload, valid, variant, group_size=2)
    for i, (h, w) in enumerate(valid):
        assert np.array_equal(y[i, :, :h, :w], x[i, :, :h, :w])
        assert (y[i, :, h:, :] == 128).all() and (y[i, :, :, w:] == 128).all()
        bits = enc.report.bits_map[i]
        assert bits[:h, :w].min() > 0 and bits[h:, :].sum() == 0 and bits[:, w:].sum() == 0
    assert enc.report.n_dims == 3 * int(valid.prod(axis=1).sum())


@slow
def test_code_length_matches_elbo(trained_model):
    """>= 50 patches: file size within 1 % of the summed negative ELBO plus the start-up cost
    (the initial bits the first group drew from the seed, plus 64 bits of ANS head)."""
    x = np.stack([synthetic_photo(64, 64, seed=100 + i).transpose(2, 0, 1) for i in range(52)])
    valid = np.full((52, 2), 64)
    for variant in ("arib", "shvc"):
        enc = encode_patches(trained_model, x, valid, variant, group_size=4)
        r = enc.report
        assert r.neg_elbo_bits / r.n_dims < 6.0            # the model learned something
        assert r.total_bits <= 1.01 * r.neg_elbo_bits + r.initial_bits + 64 + 32
        assert r.total_bits >= r.neg_elbo_bits * 0.99
        assert np.array_equal(decode_patches(trained_model, enc.payload, valid, variant, group_size=4), x)


def test_arib_needs_far_fewer_initial_bits(trained_model):
    x = synthetic_photo(64, 64, seed=7).transpose(2, 0, 1)[None]
    valid = np.full((1, 2), 64)
    plain = encode_patches(trained_model, x, valid, "shvc").report.initial_bits
    arib = encode_patches(trained_model, x, valid, "arib").report.initial_bits
    assert plain > 0 and 5 * arib <= plain


@slow
def test_group_size_chains_initial_bits(trained_model):
    """Plain SHVC: smaller groups reuse bits pushed by earlier groups, so fewer initial bits."""
    x = np.stack([synthetic_photo(64, 64, seed=i).transpose(2, 0, 1) for i in range(8)])
    valid = np.full((8, 2), 64)
    one = encode_patches(trained_model, x, valid, "shvc", group_size=8, streams=1).report
    chained = encode_patches(trained_model, x, valid, "shvc", group_size=1, streams=1).report
    assert chained.initial_bits < one.initial_bits / 4
    assert chained.total_bits < one.total_bits


def test_wrong_variant_for_model(tiny_model, tiny_det_model):
    x = _images(1, 64)
    with pytest.raises(ValueError):
        encode_patches(tiny_det_model, x, [[64, 64]], "shvc")
    with pytest.raises(ValueError):
        encode_patches(tiny_model, x, [[64, 64]], "det")


@slow
@pytest.mark.parametrize("lanes", [0, 32])
def test_independent_streams_round_trip_and_cost(lanes, trained_model):
    """Streams split the patches; any worker count decodes them; start-up cost per stream is small
    (whole tables: < 200 bits; rANS: < 64 bits per lane more)."""
    x = np.stack([synthetic_photo(64, 64, seed=200 + i).transpose(2, 0, 1) for i in range(12)])
    valid = np.full((12, 2), 64)
    one = encode_patches(trained_model, x, valid, "arib", group_size=2, streams=1, lanes=lanes)
    six = encode_patches(trained_model, x, valid, "arib", group_size=2, streams=6, workers=3, lanes=lanes)
    for workers in (1, 2):
        assert np.array_equal(decode_patches(trained_model, six.payload, valid, "arib", group_size=2,
                                             workers=workers), x)
    assert six.report.total_bits - one.report.total_bits < 5 * (200 + 64 * lanes)
    with pytest.raises(FormatError, match="truncated"):
        decode_patches(trained_model, six.payload[:-8], valid, "arib", group_size=2)


ARCHS = {"anchor": dict(anchor=True), "heads-interp": dict(heads=True, interp=True, kernel=3),
         "heads-anchor": dict(heads=True, anchor=True, kernel=5)}


@pytest.mark.parametrize("arch", sorted(ARCHS))
@pytest.mark.parametrize("variant", [pytest.param("det", marks=slow), "arib"])
def test_centred_models_round_trip_and_match_their_training_loss(variant, arch):
    """Means relative to sub-image 0 (HParams.anchor) or to the interpolation of the known
    neighbours (interp), one network or one head per sub-image: the integer coder and the
    fake-quantized training loss use the same distributions, and decoding is exact."""
    import torch

    from shvc_gui.core.model.hparams import HParams
    from shvc_gui.core.model.shvc import SHVC, IntegerSHVC

    torch.manual_seed(3)
    hp = HParams(patch=32, width=12, depth=3, latent_layers=0 if variant == "det" else 2, z_channels=3,
                 mixtures=2, split=2, **ARCHS[arch])
    float_model = SHVC(hp)
    float_model.quantize = True
    model = IntegerSHVC(float_model.integer_state()).eval()
    x = np.stack([synthetic_photo(32, 32, seed=s).transpose(2, 0, 1) for s in range(6)])
    valid = np.full((6, 2), 32)
    enc = encode_patches(model, x, valid, variant, group_size=4, net_batch=4)
    assert np.array_equal(decode_patches(model, enc.payload, valid, variant, group_size=4, net_batch=3), x)
    if variant == "det":                               # no sampling: the loss is the exact code length
        with torch.no_grad():
            loss_bits = float(float_model.loss(torch.from_numpy(x))["bpd"]) * x.size
        assert enc.report.neg_elbo_bits == pytest.approx(loss_bits, rel=2e-3)


def test_stream_workers_share_torch_threads():
    """Stream threads split torch's CPU threads between them (no oversubscription) and the setting
    comes back afterwards; the network batch follows the device."""
    import torch

    from shvc_gui.core.entropy.bitsback import default_net_batch
    from shvc_gui.core.entropy.parallel import timed_streams

    before = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        seen = timed_streams({}, lambda item, own: torch.get_num_threads(), [0, 1, 2, 3], workers=2)
        assert seen == [2, 2, 2, 2]
        assert torch.get_num_threads() == 4
        assert timed_streams({}, lambda item, own: torch.get_num_threads(), [0], workers=2) == [4]
    finally:
        torch.set_num_threads(before)
    assert default_net_batch(torch.device("cpu"), 64) == 16
    assert default_net_batch(torch.device("cpu"), 4) == 4
    assert default_net_batch(torch.device("cuda"), 64) == 64


def test_decoding_is_the_coding_order_backwards(tiny_model, tiny_det_model):
    """One list of steps per variant (entropy/order.py): the encoder runs it forwards, the decoder
    backwards; arib pushes x after the split first, and every variant ends with the top prior."""
    from shvc_gui.core.entropy.order import levels_of, steps
    hp = tiny_model.hp
    L, s = hp.latent_layers, hp.split
    names = [st.name for st in steps(hp, "arib")]
    assert names[0] == f"x[{s}:{hp.blocks}]" and names[1:3] == ["q(z1)", f"x[0:{s}] | z1"]
    assert names[-1] == f"p(z{L})" and len(names) == 3 + 2 * (L - 1) + 1
    assert [st.name for st in steps(hp, "shvc")][0] == "q(z1)"
    det = [st.name for st in steps(tiny_det_model.hp, "det")]
    assert det == [f"level {n}" for n in reversed(range(levels_of(tiny_det_model.hp)))]
