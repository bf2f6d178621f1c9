"""Format versions 4 to 6: colour lists (the coder restricted to the values an image of few colours
holds: tables over allowed sets, both coders, round trips, the choice of the list, damaged lists;
version 6: the colours' counts as a prior, stored only when they pay)
and scale offsets (version 4: one per channel of a tuned sub-image; version 5: one per channel and
scale bucket; chosen, stored, decoded, damaged)."""

import struct

import numpy as np
import pytest
import torch
from PIL import Image

from shvc_gui.core import codec, container, image_io
from shvc_gui.core.entropy import payload as pl
from shvc_gui.core.entropy import pyramid as pyr
from shvc_gui.core.entropy import whole
from shvc_gui.core.entropy.ans import TableStack
from shvc_gui.core.entropy import colours
from shvc_gui.core.entropy.colours import CONTEXT_COLOURS, ColourSet, channel_masks, image_colours
from shvc_gui.core.entropy.mixture import PREC, Mixture, Support, scale_buckets
from shvc_gui.core.entropy.rans import RansStack
from shvc_gui.core.errors import FormatError
from shvc_gui.core.model.testing import synthetic_photo

BUCKETS = pl.offset_buckets(pl.VERSIONS[-1])   # scale offsets per channel of the newest version
V4 = whole.Layout("det", version=4)

N = 256


def _params(s, k, seed):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randint(-3 * 16, (N + 3) * 16, (s, k), generator=g)
    ls = torch.randint(-60, 110, (s, k), generator=g)
    logit = torch.randint(-80, 80, (s, k), generator=g) if k > 1 else None
    return mu, ls, logit


def _sets(rng):
    """Allowed sets of every shape: one value, the ends, a few, dense runs, all 256."""
    return [np.array([0]), np.array([255]), np.array([17]), np.array([0, 255]),
            np.sort(rng.choice(N, 5, replace=False)), np.sort(rng.choice(N, 40, replace=False)),
            np.arange(100, 140), np.arange(N)]


def _supported(s, seed):
    """A support over random sets for ``s`` symbols, and symbols drawn from each symbol's set."""
    rng = np.random.default_rng(seed)
    sets = _sets(rng)
    ids = rng.integers(0, len(sets), s)
    sym = np.array([rng.choice(sets[i]) for i in ids])
    return Support.of_sets(sets, N).select(ids), sets, ids, torch.from_numpy(sym)


@pytest.mark.parametrize("k", [1, 5])
def test_tables_give_slots_to_allowed_values_only(k):
    mu, ls, logit = _params(3000, k, seed=k)
    sup, sets, ids, _ = _supported(3000, seed=k)
    m = Mixture(mu, ls, logit, N, sup)
    c = m.scaled_cdf(np.broadcast_to(np.arange(N + 1)[:, None], (N + 1, len(m))))
    assert (c[0] == 0).all() and (c[N] == 1 << PREC).all()
    p = np.diff(c, axis=0).T                                                    # (S, N)
    allowed = np.zeros((len(sets), N), bool)
    for i, a in enumerate(sets):
        allowed[i, a] = True
    assert ((p >= 1) == allowed[ids]).all()                                     # allowed: a slot; else none
    assert (p[allowed[ids].sum(axis=1) == 1].max(axis=1) == 1 << PREC).all()    # one value: certain
    assert np.array_equal(m.tables().numpy(), p)                                # whole tables agree
    # merging left-out values into their neighbours never makes the run dearer
    plain = np.diff(Mixture(mu, ls, logit, N).scaled_cdf(
        np.broadcast_to(np.arange(N + 1)[:, None], (N + 1, len(m)))), axis=0).T
    v = np.array([np.random.default_rng(i).choice(sets[j]) for i, j in enumerate(ids)])
    rows = np.arange(len(m))
    assert np.log2(p[rows, v]).sum() >= np.log2(plain[rows, v]).sum()


@pytest.mark.parametrize("coder", ["rans", "tables"])
def test_both_coders_round_trip_under_a_support(coder):
    runs = []
    st = RansStack(32) if coder == "rans" else TableStack()
    for i, size in enumerate([1, 500, 4000]):
        mu, ls, logit = _params(size, 3, seed=20 + i)
        sup, _, _, sym = _supported(size, seed=30 + i)
        runs.append((sym, mu, ls, logit, sup, st.push(sym, Mixture(mu, ls, logit, N, sup))))
    words = st.finish()
    back = RansStack.resume(words, 0, 32) if coder == "rans" else TableStack.resume(words, 0, 0)
    for sym, mu, ls, logit, sup, bits in reversed(runs):
        got, got_bits = back.pop(Mixture(mu, ls, logit, N, sup))
        assert torch.equal(got, sym) and torch.allclose(got_bits, bits)


def _few_colours(h, w, n, seed=0):
    pil = Image.fromarray(synthetic_photo(h, w, seed=seed))
    return np.asarray(pil.quantize(n, dither=Image.Dither.NONE).convert("RGB")).copy()


def test_a_few_colours_image_codes_among_its_colours_and_round_trips(trained_det_model):
    x = _few_colours(96, 80, 24)
    colours = image_colours(x)
    assert colours is not None and len(colours) == len(np.unique(x.reshape(-1, 3), axis=0))
    enc = whole.encode_image(trained_det_model, x, "det")
    got, masks, _, offsets, rest = pl.split_tuning(enc.payload, pyr.tuned_steps(96, 80), pl.VERSIONS[-1])
    assert np.array_equal(got, colours) and masks is None
    assert np.array_equal(whole.decode_image(trained_det_model, enc.payload, 96, 80, "det"), x)
    plain = whole.encode_image(trained_det_model, x, whole.Layout("det", version=3))
    assert np.array_equal(whole.decode_image(trained_det_model, plain.payload, 96, 80,
                                             whole.Layout("det", version=3)), x)
    assert enc.report.total_bits < 0.8 * plain.report.total_bits


def test_grey_stored_as_rgb_pays_for_one_channel(trained_det_model):
    g = synthetic_photo(64, 64, seed=3)[..., 1]
    x = np.repeat(((g // 16) * 16)[..., None], 3, axis=2)  # at most 16 greys stored as RGB
    cs = image_colours(x)
    assert cs is not None and (cs[:, 0] == cs[:, 1]).all() and (cs[:, 1] == cs[:, 2]).all()
    sup = ColourSet(cs)
    red = torch.from_numpy(x[..., 0].astype(np.int64))
    for c in (1, 2):                                    # green and blue follow from red: certain
        s = sup.support(c, [red, red], red.numel())
        assert (s.rank[s.ids, -1] == 1).all()
    enc = whole.encode_image(trained_det_model, x, "det")
    assert np.array_equal(whole.decode_image(trained_det_model, enc.payload, 64, 64, "det"), x)


def test_the_list_is_kept_only_when_it_is_cheap():
    photo = synthetic_photo(64, 64, seed=1)
    assert image_colours(photo) is None                               # thousands of colours
    x = _few_colours(64, 64, 30)
    assert image_colours(x) is not None                               # 30 colours <= 1 % of 4096 pixels (40)
    assert image_colours(_few_colours(64, 64, 60)) is None            # 60 > 40
    assert image_colours(_few_colours(8, 8, 4)) is None               # 8x8: not even one colour pays
    levels = np.arange(400 * 400) % 256                 # 256 greys: the most a list holds
    grey = np.repeat(levels.reshape(400, 400, 1), 3, axis=2).astype(np.uint8)
    assert len(image_colours(grey)) == 256
    grey[0, 0] = [1, 2, 3]                               # 257 colours
    assert image_colours(grey) is None


def _file(model):
    x = _few_colours(90, 70, 21, seed=5)          # 21 colours: the list ends inside a word
    data, res = codec.compress_image(image_io.LoadedImage(Image.fromarray(x)), model=model)
    return x, data


def test_files_with_a_list_round_trip(trained_det_model):
    x, data = _file(trained_det_model)
    img, header = codec.decompress_bytes(data, model=trained_det_model)
    assert header.version == container.VERSION == pl.VERSIONS[-1] and np.array_equal(np.asarray(img.pil), x)


def _with_payload(data, payload):
    header, (_, fallback) = container.read_container(data)
    return container.write_container(header, [payload, fallback])


@pytest.mark.parametrize("damage", ["kind", "count", "zero", "order", "repeat", "padding", "short", "weight",
                                    "share", "version"])
def test_damaged_lists_are_refused_before_decoding(damage, trained_det_model):
    _, data = _file(trained_det_model)
    header, (payload, _) = container.read_container(data)
    assert struct.unpack_from("<II", payload) == (pl.VALUES_PRIOR, 21)    # the colours' counts pay here
    used = 3 * 21 + 3 + 21                  # kind, count, 21 colours, 3 shares, 21 weights from byte 8, 1 zero
    b = bytearray(payload)
    if damage == "kind":
        b[:4] = struct.pack("<I", 4)
    elif damage == "count":
        b[4:8] = struct.pack("<I", 257)
    elif damage == "zero":
        b[4:8] = struct.pack("<I", 0)
    elif damage == "order":
        b[8:11], b[11:14] = payload[11:14], payload[8:11]
    elif damage == "repeat":
        b[11:14] = payload[8:11]
    elif damage == "padding":
        b[8 + used] = 1
    elif damage == "weight":
        b[8 + 63 + 3 + 5] = 0                                               # a colour that never occurs
    elif damage == "share":
        b[8 + 63 + 1] = pl.SHARE_DEN                                        # the whole table to the counts
    elif damage == "version":
        header.version = 5                                                  # counts are version 6's
    else:
        b = b[:8 + 60]
    bad = container.write_container(header, [bytes(b), b""])
    with pytest.raises(FormatError, match="colour list|colour counts|allowed-values|truncated|corrupt"):
        codec.check_streams(container.read_container(bad)[0], [bytes(b), b""])
    with pytest.raises(FormatError):
        codec.decompress_bytes(bad, model=trained_det_model)


def _texture(h, w, n, seed=0):
    """A texture of ``n`` inks scattered at random, some far commoner than others (a paper scan reduced
    to a few dozen colours): no neighbour says much, the inks' frequencies say a lot."""
    rng = np.random.default_rng(seed)
    inks = rng.integers(90, 230, (n, 3)).astype(np.uint8)
    freq = 0.6 ** np.arange(n)
    return inks[rng.choice(n, (h, w), p=freq / freq.sum())]


def test_colour_counts_are_stored_when_they_pay_and_round_trip(trained_det_model):
    x = _texture(150, 140, 20)
    enc = whole.encode_image(trained_det_model, x, "det")
    colours, _, prior, _, _ = pl.split_tuning(enc.payload, pyr.tuned_steps(150, 140), pl.VERSIONS[-1])
    assert prior is not None and prior.shares[0] > 0 and prior.weights.max() == 255   # (green and blue
    # follow from red for almost every ink: their shares change nothing, and ties go to 0)
    counts = np.array([(x == c).all(axis=-1).sum() for c in colours])     # scaled to 255, rounded, at least 1
    assert np.array_equal(prior.weights, np.maximum(1, np.round(255 * counts / counts.max())).astype(np.uint8))
    assert np.array_equal(whole.decode_image(trained_det_model, enc.payload, 150, 140, "det"), x)
    v5 = whole.Layout("det", version=5)
    plain = whole.encode_image(trained_det_model, x, v5)
    assert struct.unpack_from("<I", plain.payload)[0] == pl.VALUES_COLOURS
    assert np.array_equal(whole.decode_image(trained_det_model, plain.payload, 150, 140, v5), x)
    assert enc.report.total_bits < 0.9 * plain.report.total_bits


def test_colour_counts_are_left_out_when_the_network_predicts_better(trained_det_model):
    ramp = (np.add.outer(np.arange(256), np.arange(256)) // 2).astype(np.uint8)   # 256 greys, smooth
    x = np.repeat(ramp[..., None], 3, axis=2)
    assert len(image_colours(x)) == 256 > CONTEXT_COLOURS                      # counts without neighbours
    enc = whole.encode_image(trained_det_model, x, "det")
    assert struct.unpack_from("<II", enc.payload) == (pl.VALUES_COLOURS, 256)
    assert np.array_equal(whole.decode_image(trained_det_model, enc.payload, 256, 256, "det"), x)


def _patches_of_inks(h, w, n, seed=0):
    """Blobs of ``n`` inks (4x4 blocks of a random map) with one pixel in ten of a random ink: a pixel's
    neighbour says which ink it most likely is."""
    rng = np.random.default_rng(seed)
    inks = rng.integers(40, 240, (n, 3)).astype(np.uint8)
    idx = np.kron(rng.integers(0, n, (-(-h // 4), -(-w // 4))), np.ones((4, 4), np.int64))[:h, :w]
    noise = rng.random((h, w)) < 0.1
    idx[noise] = rng.integers(0, n, noise.sum())
    return inks[idx]


def test_counts_conditioned_on_a_neighbours_colour_code_smaller(trained_det_model, monkeypatch):
    x = _patches_of_inks(160, 144, 12)
    enc = whole.encode_image(trained_det_model, x, "det")
    assert struct.unpack_from("<II", enc.payload) == (pl.VALUES_PRIOR, 12)
    assert np.array_equal(whole.decode_image(trained_det_model, enc.payload, 160, 144, "det"), x)
    monkeypatch.setattr(colours, "CONTEXT_COLOURS", 0)                        # the same counts, no neighbours
    flat = whole.encode_image(trained_det_model, x, "det")
    assert np.array_equal(whole.decode_image(trained_det_model, flat.payload, 160, 144, "det"), x)
    assert enc.report.total_bits < 0.8 * flat.report.total_bits


def test_pairs_count_each_position_with_its_decoded_neighbour():
    x = _patches_of_inks(20, 18, 5, seed=3)
    cs = ColourSet(np.unique(x.reshape(-1, 3), axis=0))          # (too small an image for the encoder's list)
    level = pyr.levels(20, 18)[0]
    X = pyr.split(torch.from_numpy(x).permute(2, 0, 1), level)
    idx = cs.indices(torch.from_numpy(x).permute(2, 0, 1)).reshape(20, 18)
    for j, (ref, dy, dx) in {1: (0, 0, -1), 2: (0, -1, 0), 3: (2, 0, -1)}.items():
        assert colours.CONTEXT_REF[j] == ref
        want = np.zeros((5, 5), np.int64)
        for r in range(j // 2, 20, 2):                # sub-image j holds rows j // 2 + 2y, columns j % 2 + 2x
            for c in range(j % 2, 18, 2):
                want[idx[r + dy, c + dx], idx[r, c]] += 1
        assert np.array_equal(cs.pairs(X, j, *level.extent(j)), want)
    assert not cs.pairs(X, 0, *level.extent(0)).any()                         # sub-image 0 has no neighbour


def test_a_prior_hands_its_share_of_slots_out_by_the_weights():
    rng = np.random.default_rng(7)
    sets = _sets(rng)
    weights = np.zeros((len(sets), N), np.int64)
    for i, a in enumerate(sets):
        weights[i, a] = rng.integers(1, 256, len(a))
    plain = Support.of_sets(sets, N)
    assert plain.with_prior(weights, 0, pl.SHARE_DEN) is plain
    ids = rng.integers(0, len(sets), 2000)
    mu, ls, logit = _params(2000, 3, seed=9)
    v = np.broadcast_to(np.arange(N + 1)[:, None], (N + 1, 2000))
    for share in (1, 8, 15):
        m = Mixture(mu, ls, logit, N, plain.with_prior(weights, share, pl.SHARE_DEN).select(ids))
        p = np.diff(m.scaled_cdf(v), axis=0).T                                  # (S, N)
        assert (p.sum(axis=1) == 1 << PREC).all() and ((p >= 1) == (weights[ids] > 0)).all()
        # every symbol gets at least its share of the prior's slots
        free = (1 << PREC) - (weights[ids] > 0).sum(axis=1)
        floor = weights[ids] * (free * share // pl.SHARE_DEN)[:, None] // weights[ids].sum(axis=1)[:, None]
        assert (p >= floor).all()
        sym = torch.from_numpy(np.array([rng.choice(sets[i]) for i in ids]))
        st = RansStack(16)
        bits = st.push(sym, m)
        got, got_bits = RansStack.resume(st.finish(), 0, 16).pop(m)
        assert torch.equal(got, sym) and torch.allclose(got_bits, bits)


def test_a_version_4_file_relabelled_3_is_refused(trained_det_model):
    _, data = _file(trained_det_model)
    header, streams = container.read_container(data)
    header.version = 3
    with pytest.raises(FormatError, match="corrupt|truncated"):
        codec.decompress_bytes(container.write_container(header, streams), model=trained_det_model)


# --- scale offsets (version 4): the network's log-scales fitted to the image, per tuned sub-image ---
def _grainy(h, w, seed=0):
    """A photo with strong grain: the models predict narrower distributions than it needs."""
    rng = np.random.default_rng(seed)
    x = synthetic_photo(h, w, seed=seed).astype(np.int64) + rng.normal(0, 12, (h, w, 3)).round().astype(np.int64)
    return np.clip(x, 0, 255).astype(np.uint8)


def test_offsets_are_chosen_stored_and_round_trip(trained_det_model, monkeypatch):
    h, w = 150, 140                                            # sub-images of 75x70 >= 4096: 3 tuned steps
    x = _grainy(h, w)
    assert pyr.tuned_steps(h, w) == 3 and BUCKETS == len(pl.SCALE_EDGES) + 1 > 1
    enc = whole.encode_image(trained_det_model, x, "det")
    colours, masks, _, (untuned, offsets), _ = pl.split_tuning(enc.payload, 3, pl.VERSIONS[-1])
    assert colours is None and masks is None and offsets.shape == (3, 3, BUCKETS) and untuned.shape == (3,)
    assert set(offsets.ravel()) | set(untuned) <= set(whole.OFFSETS)
    assert (offsets != 0).any() and (offsets != offsets[..., :1]).any()       # fitted, and not one for all
    assert np.array_equal(whole.decode_image(trained_det_model, enc.payload, h, w, "det"), x)
    # the chosen offsets code the image in fewer bits than none
    monkeypatch.setattr(whole, "_choose_offsets",
                        lambda job, values, X, level, j, buckets, stats: [[0] * buckets] * 3)
    monkeypatch.setattr(whole, "_choose_untuned", lambda *a: [0, 0, 0])
    plain = whole.encode_image(trained_det_model, x, "det")
    assert pl.split_tuning(plain.payload, 3, pl.VERSIONS[-1])[3].tuned.tolist() == [[[0] * BUCKETS] * 3] * 3
    assert enc.report.total_bits < plain.report.total_bits


def test_version_4_has_one_offset_per_channel_and_bucketed_ones_code_no_worse(trained_det_model):
    h, w = 150, 140
    x = _grainy(h, w, seed=4)
    v4 = whole.encode_image(trained_det_model, x, V4)
    untuned, offsets = pl.split_tuning(v4.payload, 3, 4)[3]
    assert offsets.shape == (3, 3, 1) and (offsets != 0).any() and untuned.tolist() == [0, 0, 0]
    assert np.array_equal(whole.decode_image(trained_det_model, v4.payload, h, w, V4), x)
    # the whole sub-image is the sample here, so each bucket's choice is no worse than version 4's one for all
    v5 = whole.encode_image(trained_det_model, x, "det")
    assert v5.report.neg_elbo_bits < v4.report.neg_elbo_bits


def test_scale_buckets_are_integer_weighted_mean_log_scales():
    ls = np.array([[-40, 50], [-40, 50], [7, 7], [100, -100], [8, 8]])        # (S, K) on the 1/16-nat grid
    logit = np.array([[0, 0], [0, -200], [3, 1], [0, 0], [0, 0]])            # -200: weight dropped
    got = scale_buckets(ls, logit, pl.SCALE_EDGES)
    mean = [(-40 + 50) // 2, -40, 7, (96 - 48) // 2, 8]                        # ls clamped to [-48, 96]
    assert got.tolist() == [int(np.searchsorted(pl.SCALE_EDGES, m, side="right")) for m in mean]
    assert got.tolist() == [3, 0, 3, 6, 4]
    assert scale_buckets(ls[:, :1], None, pl.SCALE_EDGES).tolist() == [0, 0, 3, 7, 4]


def test_small_images_share_one_offset_per_channel(trained_det_model, monkeypatch):
    assert pyr.tuned_steps(64, 64) == 0 and pyr.tuned_steps(127, 129) == 1
    x = _grainy(64, 64, seed=2)
    enc = whole.encode_image(trained_det_model, x, "det")
    assert struct.unpack_from("<I", enc.payload)[0] == pl.VALUES_ALL       # every value, then 3 offsets
    untuned, tuned = pl.split_tuning(enc.payload, 0, pl.VERSIONS[-1])[3]
    assert tuned.shape == (0, 3, BUCKETS) and (untuned != 0).any()
    assert np.array_equal(whole.decode_image(trained_det_model, enc.payload, 64, 64, "det"), x)
    monkeypatch.setattr(whole, "_choose_untuned", lambda *a: [0, 0, 0])
    assert whole.encode_image(trained_det_model, x, "det").report.total_bits > enc.report.total_bits
    v4 = whole.encode_image(trained_det_model, x, V4)                      # version 4: none
    assert pl.split_tuning(v4.payload, 0, 4)[3].untuned.tolist() == [0, 0, 0]
    assert np.array_equal(whole.decode_image(trained_det_model, v4.payload, 64, 64, V4), x)


@pytest.mark.parametrize("layout, damage", [("det", "range"), ("det", "padding"), ("det", "short"), (V4, "range"),
                                            (V4, "padding"), (V4, "short")])
def test_damaged_offsets_are_refused(layout, damage, trained_det_model):
    h, w = 150, 140
    enc = whole.encode_image(trained_det_model, _grainy(h, w, seed=3), layout)
    version = whole._whole(layout).version
    n = 3 * 3 * pl.offset_buckets(version) + 3 * (version >= 5)              # 9 or 75 offsets after the kind word
    b = bytearray(enc.payload)
    if damage == "range":
        b[4 + n - 1] = 0xBF                                                # the last offset: -65
    elif damage == "padding":
        b[4 + n] = 1                                                       # 9 or 75 offsets, then padding
    else:
        b = b[:4 + n - 3]
    with pytest.raises(FormatError, match="scale offsets|truncated|corrupt"):
        whole.decode_image(trained_det_model, bytes(b), h, w, layout)


# --- channel masks: few levels per channel, many colours -------------------------------------------
def _levels(h, w, bits, seed=0):
    """A photo stored with ``bits`` bits a channel and scaled back to 8 (many colours, few levels)."""
    x = synthetic_photo(h, w, seed=seed).astype(np.int64) >> (8 - bits)
    return (x * 255 // ((1 << bits) - 1)).astype(np.uint8)


def test_few_levels_per_channel_code_among_them(trained_det_model):
    x = _levels(120, 100, 5)
    assert image_colours(x) is None
    masks = channel_masks(x)
    assert masks is not None and all(np.array_equal(np.flatnonzero(masks[c]), np.unique(x[..., c])) for c in range(3))
    enc = whole.encode_image(trained_det_model, x, "det")
    colours, got, _, _, _ = pl.split_tuning(enc.payload, pyr.tuned_steps(120, 100), pl.VERSIONS[-1])
    assert colours is None and np.array_equal(got, masks)
    assert np.array_equal(whole.decode_image(trained_det_model, enc.payload, 120, 100, "det"), x)
    plain = whole.encode_image(trained_det_model, x, whole.Layout("det", version=3))
    assert enc.report.total_bits < 0.7 * plain.report.total_bits


def test_masks_only_for_sparse_channels_and_large_enough_images():
    assert channel_masks(synthetic_photo(100, 100, seed=1)) is None             # every level in its range
    assert channel_masks(_levels(100, 100, 6)) is not None                      # a quarter of the levels: kept
    assert channel_masks(_levels(30, 30, 4)) is None                            # 96 bytes > 1 % of 30x30x3


def test_damaged_masks_are_refused(trained_det_model):
    enc = whole.encode_image(trained_det_model, _levels(120, 100, 5), "det")
    assert struct.unpack_from("<I", enc.payload)[0] == pl.VALUES_CHANNELS
    b = bytearray(enc.payload)
    b[4 + 32:4 + 64] = bytes(32)                                                # green: no value allowed
    with pytest.raises(FormatError, match="channel value masks"):
        whole.decode_image(trained_det_model, bytes(b), 120, 100, "det")
    with pytest.raises(FormatError, match="truncated"):
        whole.decode_image(trained_det_model, enc.payload[:50], 120, 100, "det")
