"""The pointwise tables and the interleaved rANS coder of format version 2."""

import numpy as np
import pytest
import torch

from shvc_gui.core.entropy.ans import TableStack
from shvc_gui.core.entropy.mixture import PREC, Coder, Mixture, integer_cdf
from shvc_gui.core.entropy.rans import MIN_LANES, RansStack, lanes_for
from shvc_gui.core.errors import FormatError


def _params(s, k, seed=0, n=256):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randint(-3 * 16, (n + 3) * 16, (s, k), generator=g)
    ls = torch.randint(-60, 110, (s, k), generator=g)
    logit = torch.randint(-80, 80, (s, k), generator=g) if k > 1 else None
    return mu, ls, logit


def _symbols(mu, n, seed=0):
    """Symbols near the first component's mean (what a model codes), some far in the tails."""
    rng = np.random.default_rng(seed)
    v = mu[:, 0].numpy() // 16 + rng.integers(-4, 5, len(mu))
    v[::97] = rng.integers(0, n, len(v[::97]))
    return torch.from_numpy(np.clip(v, 0, n - 1))


@pytest.mark.parametrize("k,n", [(5, 256), (1, 128), (3, 256)])
def test_pointwise_table_is_a_valid_cdf_close_to_the_whole_tables(k, n):
    mu, ls, logit = _params(2000, k, seed=k)
    m = Mixture(mu, ls, logit, n)
    c = np.stack([m.scaled_cdf(np.full(len(m), v)) for v in range(n + 1)], axis=1)
    assert (c[:, 0] == 0).all() and (c[:, n] == 1 << PREC).all()
    assert (np.diff(c, axis=1) >= 1).all()                      # every symbol codable
    p_tables = integer_cdf(mu, ls, logit, n).numpy()
    p_point = np.diff(c, axis=1)
    # same distribution up to the rounding of each entry (the tables put the remainder on the mode)
    assert np.abs(p_point - p_tables).max() <= n


@pytest.mark.parametrize("lanes", [1, 7, 64, 4096])
@pytest.mark.parametrize("k,n", [(5, 256), (1, 128)])
def test_runs_round_trip_in_order_with_exact_bits(lanes, k, n):
    st = RansStack(lanes)
    runs = []
    for i, size in enumerate([1, 300, 5000, 0, 77]):
        mu, ls, logit = _params(size, k, seed=10 + i, n=n)
        sym = _symbols(mu, n, seed=i)
        runs.append((sym, mu, ls, logit, st.push(sym, Mixture(mu, ls, logit, n))))
    words = st.finish()
    back = RansStack.resume(words, 0, lanes)
    for sym, mu, ls, logit, bits in reversed(runs):
        got, got_bits = back.pop(Mixture(mu, ls, logit, n))
        assert torch.equal(got, sym) and torch.equal(got_bits, bits)
    back.check_finished(np.zeros(0, np.uint32))
    ideal = sum(float(r[4].sum()) for r in runs)
    assert 32 * len(words) - ideal < 64 * lanes + 64          # start-up and flush: < 64 bits a lane


def test_pops_from_a_seed_then_pushes_restore_it():
    """Bits-back: popping draws bits from the seed; the decoder's pushes put the same words back."""
    seed = np.random.default_rng(1).integers(0, 2 ** 32, 500, dtype=np.uint32)
    mu, ls, _ = _params(900, 1, seed=3, n=128)
    enc = RansStack.start(seed, 16)
    z, _ = enc.pop(Mixture(mu, ls, None, 128))
    mu2, ls2, lg2 = _params(900, 5, seed=4)
    x = _symbols(mu2, 256)
    enc.push(x, Mixture(mu2, ls2, lg2, 256))
    prefix = enc.cut(len(seed))
    assert 0 < prefix < len(seed)                             # some of the seed was reached, not all
    dec = RansStack.resume(enc.finish(prefix), prefix, 16)
    assert torch.equal(dec.pop(Mixture(mu2, ls2, lg2, 256))[0], x)
    dec.push(z, Mixture(mu, ls, None, 128))
    start = seed.copy()
    start[:prefix] = 0
    dec.check_finished(start)
    with pytest.raises(FormatError):
        dec.check_finished(seed)                              # the cut words are not in the file


def test_damage_is_reported_not_returned():
    mu, ls, logit = _params(3000, 5, seed=7)
    sym = _symbols(mu, 256)
    st = RansStack(32)
    st.push(sym, Mixture(mu, ls, logit, 256))
    words = st.finish()
    with pytest.raises(FormatError):
        RansStack.resume(words[:10], 0, 32)                   # shorter than its states
    bad_state = words.copy()
    bad_state[-1] = 0xFFFFFFFF                                # a state beyond 2^63
    with pytest.raises(FormatError):
        RansStack.resume(bad_state, 0, 32)
    flipped = words.copy()
    flipped[len(words) // 3] ^= 0x10001
    back = RansStack.resume(flipped, 0, 32)
    with pytest.raises(FormatError):
        got, _ = back.pop(Mixture(mu, ls, logit, 256))
        back.check_finished(np.zeros(0, np.uint32))
    with pytest.raises(FormatError):
        RansStack(0)


def test_lane_count_grows_with_the_stream():
    assert lanes_for(1000) == 0 and lanes_for(MIN_LANES * 4096 - 1) == 0
    assert lanes_for(MIN_LANES * 4096) == MIN_LANES
    assert lanes_for(12_000_000) == 2048 and lanes_for(10 ** 9) == 4096


def test_both_coders_share_one_interface_and_the_tables_agree():
    """The two coders take the same entropy model object and declare one interface (Coder); the
    whole tables are the pointwise ones up to the rounding of each entry, and the quantile search
    finds every symbol the pointwise table gives it."""
    for cls in (RansStack, TableStack):
        for name in ("push", "pop", "start", "cut", "finish", "resume", "check_finished"):
            assert callable(getattr(cls, name)) and hasattr(Coder, name)
    mu, ls, logit = _params(700, 3, seed=21)
    m = Mixture(mu, ls, logit, 256)
    sym = _symbols(mu, 256, seed=2).numpy()
    start, end = m.scaled_cdf(sym), m.scaled_cdf(sym + 1)
    for slot in (start, end - 1, (start + end) // 2):
        got, s0, freq = m.search(slot)
        assert np.array_equal(got, sym) and np.array_equal(s0, start) and np.array_equal(freq, end - start)
    assert torch.equal(m.rows(100, 300).tables(), integer_cdf(mu[100:300], ls[100:300], logit[100:300], 256))
    for st in (RansStack(8), TableStack()):
        bits = st.push(torch.from_numpy(sym), m)
        back = type(st).resume(st.finish(), 0, 8)
        got, got_bits = back.pop(m)
        assert np.array_equal(got.numpy(), sym) and torch.allclose(got_bits, bits)


def test_version_5_whole_images_take_half_the_lanes():
    from shvc_gui.core.entropy import payload as pl
    assert pl.symbols_per_lane(5, "det") == 8192 and pl.symbols_per_lane(4, "det") == 4096
    assert pl.symbols_per_lane(5, "arib") == 4096                          # patches: as version 2
    assert lanes_for(12_000_000, 8192) == 1024 and lanes_for(32 * 8192 - 1, 8192) == 0
