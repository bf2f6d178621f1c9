"""Integer-exact inference: results do not depend on batch size, batch order, threads or chunking."""

import numpy as np
import pytest
import torch

from shvc_gui.core.entropy.bitsback import decode_patches, encode_patches
from shvc_gui.core.model.testing import synthetic_photo


@pytest.fixture
def threads():
    old = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(old)


def _all_outputs(model, X, z1):
    outs = [model.posterior_z1(X)]
    outs += [model.pixel_params(j, X, z1) for j in range(4)]
    return [t for group in outs for t in group]


@pytest.mark.slow
def test_outputs_identical_across_batch_threads_and_order(trained_model, threads):
    m = trained_model
    g = torch.Generator().manual_seed(3)
    X = torch.randint(0, 256, (64, 4, 3, 32, 32), generator=g)
    z1 = torch.randint(0, 128, (64, m.hp.z_channels, 32, 32), generator=g)
    threads(2)
    ref = _all_outputs(m, X, z1)
    for bs in (1, 7, 64):
        for nt in (1, 2):
            threads(nt)
            parts = [_all_outputs(m, X[a:a + bs], z1[a:a + bs]) for a in range(0, 64, bs)]
            got = [torch.cat([p[i] for p in parts]) for i in range(len(ref))]
            assert all(torch.equal(a, b) for a, b in zip(ref, got)), (bs, nt)
    perm = torch.randperm(64, generator=g)
    got = _all_outputs(m, X[perm], z1[perm])
    inv = torch.argsort(perm)
    assert all(torch.equal(a, b[inv]) for a, b in zip(ref, got))
    # non-contiguous input (a strided view) gives the same numbers as a contiguous copy
    Xs = torch.stack([X, X], dim=1)[:, 0]
    assert not Xs.is_contiguous() and torch.equal(Xs, X)
    assert all(torch.equal(a, b) for a, b in zip(ref, _all_outputs(m, Xs, z1)))


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["arib", "shvc", "det"])
def test_encode_big_batch_decode_batch_one(variant, trained_model, tiny_det_model, threads):
    """>= 200 patches of photo-like images: encode with batch 64 on 2 threads, decode with batch 1
    on 1 thread, and the other way round."""
    model = tiny_det_model if variant == "det" else trained_model
    photo = synthetic_photo(448, 512, seed=11)                      # 7 x 8 = 56 patches per photo
    tiles = photo.reshape(7, 64, 8, 64, 3).transpose(0, 2, 4, 1, 3).reshape(-1, 3, 64, 64)
    x = np.concatenate([tiles, tiles[:, :, ::-1], tiles[:, ::-1], np.rot90(tiles, axes=(2, 3))])[:208]
    x = np.ascontiguousarray(x)
    valid = np.full((len(x), 2), 64)
    threads(2)
    enc = encode_patches(model, x, valid, variant, group_size=64, net_batch=64)
    threads(1)
    assert np.array_equal(decode_patches(model, enc.payload, valid, variant, group_size=64, net_batch=1), x)
    enc1 = encode_patches(model, x[:16], valid[:16], variant, group_size=64, net_batch=1)
    threads(2)
    assert np.array_equal(decode_patches(model, enc1.payload, valid[:16], variant, group_size=64, net_batch=64),
                          x[:16])
    # the file does not depend on the network batch used to make it
    assert enc1.payload == encode_patches(model, x[:16], valid[:16], variant, group_size=64, net_batch=16).payload


def test_fast_convolution_equals_unfold_matmul(trained_model, tiny_det_model, threads, monkeypatch):
    """Where F.conv2d runs (x86-64 CPUs: oneDNN direct/GEMM or PyTorch's im2col), every layer gives
    the same integers as unfold + matmul, at the largest sums the weights allow and on random input,
    for the batch sizes and thread counts that select different back-ends."""
    from shvc_gui.core.model import quant

    layers = [m for model in (trained_model, tiny_det_model) for m in model.modules()
              if isinstance(m, quant.IntConv2d)]
    g = torch.Generator().manual_seed(5)
    cases = []
    for layer in layers:
        cin = layer.w.shape[1]
        for bs in (1, 8, 16, 64):
            a = torch.randint(-quant.IN_MAX, quant.IN_MAX + 1, (bs, cin, 16, 16), generator=g).float()
            # near the extreme: every input at +-IN_MAX, signed like the first output channel's weights
            sign = torch.where(layer.w[0].sum(dim=(1, 2)) >= 0, 1.0, -1.0)
            a[0] = quant.IN_MAX * sign.view(-1, 1, 1)
            cases.append((layer, a))
    if quant._CONV_X86:
        assert any(quant.exact_conv_available(a, layer.w) for layer, a in cases)
    monkeypatch.setattr(quant, "conv_path", "fp32")     # the float32 path (int8: tests/test_int8.py)
    for nt in (1, 2):
        threads(nt)
        fast = [layer(a) for layer, a in cases]
        with monkeypatch.context() as mp:
            mp.setattr(quant, "exact_conv_available", lambda a, w: False)
            slow = [layer(a) for layer, a in cases]
        assert all(torch.equal(x, y) for x, y in zip(fast, slow)), nt
