"""Model structure: sub-pixel reorder, causality of every autoregressive part, ArIB penalty, integer LUTs."""

import numpy as np
import pytest
import torch

from shvc_gui.core.model.hparams import HParams
from shvc_gui.core.model.layers import subpixel, subpixel_inverse
from shvc_gui.core.entropy.mixture import PREC, integer_cdf
from shvc_gui.core.model.likelihoods import log_prob_float
from shvc_gui.core.model.shvc import SHVC, arib_penalty, channel_mean


@pytest.mark.parametrize("k", [2, 4])
def test_subpixel_reorder_inverse_and_layout(k):
    x = torch.arange(2 * 3 * 8 * 8).view(2, 3, 8, 8)
    y = subpixel(x, k)
    assert y.shape == (2, k * k, 3, 8 // k, 8 // k)
    assert torch.equal(subpixel_inverse(y, k), x)
    # sub-image i holds offset (i // k, i % k) of every cell, all channels together (eq. 8)
    for i in range(k * k):
        assert torch.equal(y[:, i], x[:, :, i // k::k, i % k::k])


def _x(n=2, p=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, p * 0 + 4, 3, p // 2, p // 2), generator=g)


def test_pixel_network_causality(tiny_model):
    """Params of sub-image j change with sub-images < j only; those after the split ignore z1."""
    m = tiny_model
    X = _x()
    z1 = torch.randint(0, 128, (2, m.hp.z_channels, 32, 32))
    for j in range(4):
        base = m.pixel_params(j, X, z1)
        for later in range(j, 4):
            X2 = X.clone()
            X2[:, later] = torch.randint(0, 256, X2[:, later].shape)
            assert all(torch.equal(a, b) for a, b in zip(base, m.pixel_params(j, X2, z1)))
        if j > 0:
            X3 = X.clone()
            X3[:, j - 1] = (X3[:, j - 1] + 50) % 256
            assert not all(torch.equal(a, b) for a, b in zip(base, m.pixel_params(j, X3, z1)))
        z2 = (z1 + 17) % 128
        same = all(torch.equal(a, b) for a, b in zip(base, m.pixel_params(j, X, z2)))
        assert same == (j >= m.hp.split)


@pytest.mark.parametrize("with_centre", [False, True])
def test_channel_autoregression_causality(with_centre):
    """The mean of channel c reads channels < c only: changing channel c or a later one leaves it
    unchanged; changing an earlier one moves it."""
    g = torch.Generator().manual_seed(5)
    mu = torch.randint(0, 4000, (1, 3, 2, 4, 4), generator=g)
    beta = torch.randint(1, 64, (1, 3, 2, 4, 4), generator=g)          # no zero coefficient
    centre = torch.randint(0, 4096, (1, 3, 4, 4), generator=g) if with_centre else None
    xs = [torch.randint(0, 256, (1, 4, 4), generator=g) for _ in range(3)]
    changed = [(t + 99) % 256 for t in xs]
    for c in range(3):
        a = channel_mean(mu, beta, xs, c, exact=True, centre=centre)
        later = xs[:c] + changed[c:]                                   # channel c and after changed
        assert torch.equal(a, channel_mean(mu, beta, later, c, exact=True, centre=centre))
        for e in range(c):                                             # any one earlier channel changed
            earlier = list(xs)
            earlier[e] = changed[e]
            assert not torch.equal(a, channel_mean(mu, beta, earlier, c, exact=True, centre=centre))


def test_posterior_z1_sees_only_x_before_split(tiny_model):
    m = tiny_model
    X = _x()
    base = m.posterior_z1(X)
    X2 = X.clone()
    X2[:, m.hp.split:] = 255 - X2[:, m.hp.split:]
    assert all(torch.equal(a, b) for a, b in zip(base, m.posterior_z1(X2)))
    X3 = X.clone()
    X3[:, 0] = 255 - X3[:, 0]
    assert not all(torch.equal(a, b) for a, b in zip(base, m.posterior_z1(X3)))


def test_latent_prior_causality(tiny_model):
    m = tiny_model
    L, cz = m.hp.latent_layers, m.hp.z_channels
    for i in range(1, L + 1):
        size = 64 // 2 ** (i + 1)
        G = torch.randint(0, 128, (2, 4, cz, size, size))
        above = torch.randint(0, 128, (2, cz, size, size)) if i < L else None
        for j in range(4):
            base = m.prior_z(i, j, G, above)
            G2 = G.clone()
            G2[:, j:] = torch.randint(0, 128, G2[:, j:].shape)
            assert all(torch.equal(a, b) for a, b in zip(base, m.prior_z(i, j, G2, above)))


def test_training_pass_is_causal():
    """The one-pass (all conditionals stacked) training network: the output for sub-image j has zero
    gradient with respect to sub-images >= j, and non-zero with respect to earlier ones."""
    torch.manual_seed(0)
    model = SHVC(HParams(width=8, depth=2, latent_layers=0, mixtures=2))
    from shvc_gui.core.model.layers import ar_input_all, pixel_input
    X = subpixel(torch.randint(0, 256, (1, 3, 8, 8)).float(), 2).requires_grad_(True)
    out = model.x_net(ar_input_all(pixel_input(X), lambda j: []), quantize=False)
    for j in range(4):
        g, = torch.autograd.grad(out[j].sum(), X, retain_graph=True)
        assert g[:, j:].abs().sum() == 0
        if j:
            assert g[:, :j].abs().sum() > 0


def test_arib_penalty():
    h_p = torch.tensor([10.0, 10.0, 10.0])
    h_q = torch.tensor([5.0, 10.0, 13.0])
    pen = arib_penalty(h_q, h_p)
    assert pen[0] == 0 and pen[1] == 0 and pen[2] == 3.0
    assert arib_penalty(torch.tensor([20.0]), torch.tensor([10.0])) > pen[2]


def test_loss_reports_bpd_parts():
    torch.manual_seed(0)
    model = SHVC(HParams(width=8, depth=2, latent_layers=2, z_channels=2, mixtures=2, patch=32))
    out = model.loss(torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8), arib_lambda=1.0)
    assert torch.isclose(out["bpd"], out["bpd_x"] + out["bpd_z"], atol=1e-4)
    assert 6.0 < float(out["bpd"].detach()) < 40.0


def test_integer_tables_are_valid_and_match_float():
    g = torch.Generator().manual_seed(0)
    mu = torch.randint(-200, 4300, (500, 3), generator=g)
    ls = torch.randint(-60, 100, (500, 3), generator=g)
    logit = torch.randint(-40, 40, (500, 3), generator=g)
    p = integer_cdf(mu, ls, logit, 256)
    assert (p >= 1).all() and (p.sum(1) == 2 ** PREC).all()
    v = torch.arange(256).float().view(1, -1).expand(500, -1)
    lp = log_prob_float(v, mu.float().unsqueeze(1).expand(-1, 256, -1), ls.float().unsqueeze(1).expand(-1, 256, -1),
                        logit.float().unsqueeze(1).expand(-1, 256, -1), 256)
    # expected code length under the integer tables: within 0.5 % + 0.01 bit of the float model
    pf = lp.exp().double()
    h_float = -(pf * lp.double()).sum(1) / np.log(2)
    h_int = -(pf * torch.log2(p.double() / 2 ** PREC)).sum(1)
    assert (h_int - h_float - 0.005 * h_float).max() < 0.01   # bits per symbol


def _heads_model(**kw):
    from shvc_gui.core.model.shvc import IntegerSHVC
    torch.manual_seed(5)
    hp = HParams(patch=32, width=8, depth=3, latent_layers=0, mixtures=2, heads=True, **kw)
    return IntegerSHVC(SHVC(hp).integer_state()).eval()


@pytest.mark.parametrize("centre", [dict(interp=True), dict(anchor=True), {}])
def test_pixel_heads_see_only_earlier_sub_images(centre):
    """Head j's parameters (and its centre) do not move when sub-images >= j change, and do when
    sub-image j - 1 changes."""
    from shvc_gui.core.model.shvc import pixel_centre
    m = _heads_model(**centre)
    X = _x(p=32)
    for j in range(4):
        base = m.pixel_params(j, X, None)
        c0 = pixel_centre(m.hp, X, j)
        for later in range(j, 4):
            X2 = X.clone()
            X2[:, later] = torch.randint(0, 256, X2[:, later].shape)
            assert all(torch.equal(a, b) for a, b in zip(base, m.pixel_params(j, X2, None)))
            c2 = pixel_centre(m.hp, X2, j)
            assert (c0 is None and c2 is None) or torch.equal(c0, c2)
        if j > 0:
            X3 = X.clone()
            X3[:, j - 1] = (X3[:, j - 1] + 50) % 256
            assert not all(torch.equal(a, b) for a, b in zip(base, m.pixel_params(j, X3, None)))


def test_interpolation_centre_is_exact_on_planes():
    """On a linear ramp the interpolation of the known neighbours is the pixel itself (away from the
    right and bottom edges, which repeat the last known pixel), on the 1/16 grid, in int64 and float."""
    from shvc_gui.core.model.shvc import interpolation
    rows, cols = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    img = (3 * rows + 5 * cols + 10).expand(1, 3, 16, 16)
    X = subpixel(img, 2)
    for dtype in (torch.int64, torch.float32):
        for j in (1, 2, 3):
            c = interpolation(X.to(dtype), j)
            assert torch.equal(c[..., :-1, :-1].long(), X[:, j, :, :-1, :-1] * 16)
    flat = torch.full((1, 4, 3, 5, 5), 77)
    assert all(torch.equal(interpolation(flat, j), torch.full((1, 3, 5, 5), 77 * 16)) for j in (1, 2, 3))
