"""The int8 path of the integer network (oneDNN u8 x s8 convolutions, ``torch._int_mm``) gives the
same integers as the float32 paths, at the largest sums, for any batch and thread count, and the
bytes of a file never depend on the path that made or reads it."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from shvc_gui.core import codec, image_io
from shvc_gui.core.entropy.bitsback import decode_patches, encode_patches
from shvc_gui.core.model import quant
from shvc_gui.core.model.testing import synthetic_photo

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "data/cache/extracted/plasma-workspace-wallpapers/usr/share/wallpapers/Altai/contents/images/5120x2880.png"
INT8 = quant.int8_available()
needs_int8 = pytest.mark.skipif(not INT8, reason="no int8 path on this machine (needs x86-64 with VNNI/AMX)")


@pytest.fixture
def threads():
    old = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(old)


@pytest.fixture
def path(monkeypatch):
    """``path("int8")`` forces a path of :func:`quant.int_sums` for the rest of the test."""
    return lambda name: monkeypatch.setattr(quant, "conv_path", name)


def test_int8_runs_where_the_cpu_has_integer_units():
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if quant._CONV_X86 and (" avx512_vnni" in flags or " amx_int8" in flags):
        assert INT8
    assert quant.conv_path in quant.PATHS


def _reference(layer: quant.IntConv2d, a: torch.Tensor) -> torch.Tensor:
    """Today's definition, computed independently: float64 sums, int64 requantization."""
    acc = F.conv2d(a.double(), layer.w.double(), padding=layer.ksize // 2).round().to(torch.int64)
    out = (acc * layer.m.view(1, -1, 1, 1) + layer.b.view(1, -1, 1, 1)) >> quant.SHIFT
    return out.clamp(quant.ACT_MIN, quant.ACT_MAX) if layer.clamp else out


def _extreme_layer(cin, cout, k, clamp, seed, m_bits=18, b_bits=34):
    """Weights at +-63 everywhere (signs random), multipliers and offsets as large as exported ones."""
    g = torch.Generator().manual_seed(seed)
    w = torch.where(torch.rand(cout, cin, k, k, generator=g) < 0.5, -quant.W_MAX, quant.W_MAX)
    w[0], w[1] = quant.W_MAX, -quant.W_MAX
    m = torch.randint(1, 2 ** m_bits, (cout,), generator=g)
    b = torch.randint(-2 ** b_bits, 2 ** b_bits, (cout,), generator=g) if not clamp else \
        torch.randint(-2 ** 31, 2 ** 31, (cout,), generator=g)
    return quant.IntConv2d({"w": w.to(torch.int8), "m": m, "b": b, "clamp": torch.tensor(int(clamp))})


def _extreme_input(layer, n, lo, hi, seed, size=(13, 11)):
    """Random integers in [lo, hi]; sample 0 at the largest positive sum of channel 0 (+-bound signed
    like its weights), the last sample at the largest negative one; one row at the other bound."""
    g = torch.Generator().manual_seed(seed)
    cin = layer.w.shape[1]
    a = torch.randint(lo, hi + 1, (n, cin) + size, generator=g).float()
    pos = layer.w[0].sum(dim=(1, 2)) >= 0
    a[0] = torch.where(pos, float(hi), float(lo)).view(-1, 1, 1)
    a[-1] = torch.where(pos, float(lo), float(hi)).view(-1, 1, 1)
    if n > 2:
        a[1, :, 0] = lo
    return a


# (cin, cout, k, clamp): the shipped x_net, the lead's per-sub-image heads (k x k over up to 18
# channels to 64, 1x1 64 -> 64, 1x1 to 60 outputs), and the largest fan-in that stays below 2**24
LAYERS = [(16, 32, 3, True), (32, 32, 3, True), (32, 60, 1, False), (18, 64, 5, True), (18, 64, 3, True),
          (64, 64, 1, True), (64, 60, 1, False), (64, 32, 5, True), (12, 8, 1, True)]


@pytest.mark.parametrize("cin,cout,k,clamp", LAYERS)
def test_every_path_gives_the_reference_at_extreme_sums(cin, cout, k, clamp, path, threads):
    layer = _extreme_layer(cin, cout, k, clamp, seed=cin * 100 + cout + k)
    assert layer.f64_exact
    for bs in (1, 8, 16, 64):
        for lo, hi in ((-128, 127), (0, 127), (-128, 128), (0, 128)):
            a = _extreme_input(layer, bs, lo, hi, seed=bs + hi)
            ref = _reference(layer, a)
            if bs == 1:
                assert ref.abs().max() > 0
            for nt in (1, 2):
                threads(nt)
                for name in ("int8", "fp32", "unfold"):
                    path(name)
                    out = layer(a)
                    assert out.dtype == torch.int64 and out.is_contiguous(), name
                    assert torch.equal(out, ref), (name, bs, lo, hi, nt)


def test_largest_possible_sums_are_exact(path):
    """Fan-in 64 x 5 x 5 at +-63 against inputs at +-128: |sum| = 12,902,400, just below 2**24."""
    layer = _extreme_layer(64, 16, 5, False, seed=9)
    w0 = layer.w[0]
    a = (torch.where(w0 >= 0, 127.0, -128.0)).unsqueeze(0).expand(2, -1, -1, -1).clone()
    a = F.pad(a, (2, 2, 2, 2))            # the centre pixel sees the whole kernel
    a[1] = -a[1].clamp(max=127)
    acc = F.conv2d(a.double(), layer.w.double(), padding=2)
    assert acc.abs().max() > 12_000_000
    for name in ("int8", "fp32", "unfold"):
        path(name)
        assert torch.equal(quant.int_sums(layer, a).double(), acc), name
        assert torch.equal(layer(a), _reference(layer, a)), name


def test_int64_requantization_where_float64_would_not_be_exact(path):
    layer = _extreme_layer(32, 8, 3, False, seed=4, m_bits=40, b_bits=50)
    assert not layer.f64_exact
    a = _extreme_input(layer, 4, -128, 127, seed=2)
    ref = _reference(layer, a)
    for name in ("int8", "fp32", "unfold"):
        path(name)
        assert torch.equal(layer(a), ref), name


@needs_int8
def test_int8_path_is_taken_and_falls_back_outside_its_range(path, monkeypatch):
    path("auto")
    layer = _extreme_layer(16, 32, 3, True, seed=1)
    calls = []
    real = quant._int8_sums
    monkeypatch.setattr(quant, "_int8_sums", lambda *args: calls.append(args[2:]) or real(*args))
    a = _extreme_input(layer, 2, -128, 127, seed=1)
    assert quant._int8_sums(layer, a, -128, 127) is not None
    layer(a)
    assert calls[-1] == (-128, 127)
    # a +128 in a signed input has no int8 form: the float path answers, with the same integers
    b = a.clone()
    b[0, 0, 0, 0] = 128
    assert real(layer, b, -128, 128) is None
    assert torch.equal(layer(b), _reference(layer, b))
    path("fp32")
    calls.clear()
    layer(a)
    assert not calls


@pytest.mark.parametrize("which", [pytest.param("trained", marks=pytest.mark.slow), "shipped"])
def test_real_networks_agree_on_every_path(which, trained_model, path, threads):
    """Every layer of the trained test model and of the shipped model, one by one and chained
    (:func:`quant.run_layers`), on random and extreme inputs."""
    if which == "shipped":
        from shvc_gui.core.weights import load_model
        model = load_model()
    else:
        model = trained_model
    g = torch.Generator().manual_seed(7)
    for net in model.nets.values():
        first = net.layers[0]
        for bs in (1, 16):
            a = torch.randint(-128, 128, (bs, first.w.shape[1], 16, 16), generator=g).float()
            a[0] = _extreme_input(first, 1, -128, 127, seed=3, size=(16, 16))[0]
            results = {}
            for name in ("unfold", "fp32", "int8"):
                path(name)
                for nt in (1, 2):
                    threads(nt)
                    x, outs = a, []
                    for i, layer in enumerate(net.layers):
                        out = layer(x)
                        assert torch.equal(out, _reference(layer, x))
                        outs.append(out)
                        x = out.float()
                    results[name, nt] = outs[-1]
                    assert torch.equal(quant.run_layers(net.layers, a), outs[-1]), (name, nt)
            ref = results["unfold", 1]
            assert all(torch.equal(v, ref) for v in results.values())


@needs_int8
def test_onednn_runs_direct_convolutions_only(capfd):
    """oneDNN reports the algorithm it runs: direct (no Winograd) for every int8 layer shape."""
    layers = [_extreme_layer(cin, cout, k, c, seed=k) for cin, cout, k, c in LAYERS if k > 1]
    with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
        for layer in layers:
            for bs, lo in ((1, -128), (16, 0), (64, -128)):
                quant.int_sums(layer, _extreme_input(layer, bs, lo, 127, seed=1))
    lines = [ln for ln in capfd.readouterr().out.splitlines() if ",exec," in ln and ",convolution," in ln]
    assert len(lines) >= len(layers) * 3
    assert all("alg:convolution_direct" in ln and "wino" not in ln.lower() for ln in lines)
    assert all("src:u8" in ln and "wei:s8" in ln for ln in lines)


def test_no_nnpack_with_mkldnn_off(path, threads):
    """With oneDNN switched off PyTorch may pick NNPACK (not exact) for F.conv2d at batch >= 16; the
    fp32 path must then take unfold + matmul, and the int8 path (oneDNN's own op) stays exact."""
    layer = _extreme_layer(32, 32, 3, True, seed=5)
    a = _extreme_input(layer, 64, 0, 127, seed=5, size=(32, 32))
    ref = _reference(layer, a)
    threads(2)
    with torch.backends.mkldnn.flags(enabled=False):
        assert not quant.exact_conv_available(a, layer.w) or \
            torch._C._select_conv_backend(a, layer.w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1) \
            in quant._EXACT_CONV_BACKENDS
        for name in ("fp32", "int8"):
            path(name)
            assert torch.equal(layer(a), ref), name


# --- the bytes of a file never depend on the path ---------------------------------------------------

def _photo_tiles(n_rows=4, n_cols=4, seed=11):
    """64x64 tiles of a real photograph where the corpus cache has one, else of a synthetic photo."""
    h, w = 64 * n_rows, 64 * n_cols
    if PHOTO.exists():
        from PIL import Image
        im = np.asarray(Image.open(PHOTO).convert("RGB"))
        top, left = (im.shape[0] - h) // 2 + 131 * seed % 500, (im.shape[1] - w) // 2
        photo = np.ascontiguousarray(im[top:top + h, left:left + w])
    else:
        photo = synthetic_photo(h, w, seed=seed)
    tiles = photo.reshape(n_rows, 64, n_cols, 64, 3).transpose(0, 2, 4, 1, 3).reshape(-1, 3, 64, 64)
    return np.ascontiguousarray(tiles)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["det", "shvc"])
def test_encode_on_one_path_decode_on_the_other(variant, trained_model, tiny_det_model, path, threads):
    from shvc_gui.core.weights import load_model
    model = load_model() if variant == "det" else trained_model
    x = _photo_tiles(seed=3 if variant == "det" else 5)
    valid = np.full((len(x), 2), 64)
    threads(2)
    path("int8")
    enc8 = encode_patches(model, x, valid, variant, group_size=16, net_batch=16)
    path("fp32")
    threads(1)
    enc32 = encode_patches(model, x, valid, variant, group_size=16, net_batch=1)
    assert enc8.payload == enc32.payload
    assert np.array_equal(decode_patches(model, enc8.payload, valid, variant, group_size=16, net_batch=3), x)
    path("int8")
    threads(2)
    assert np.array_equal(decode_patches(model, enc32.payload, valid, variant, group_size=16, net_batch=8), x)


def test_golden_file_decodes_and_encodes_the_same_on_int8(golden_model, path):
    """The golden file was made on the float32 path; the int8 path reads it and makes it again."""
    from shvc_gui.core import container
    path("int8")
    golden = (DATA / f"golden-v{container.VERSION}.shvc").read_bytes()
    img, _ = codec.decompress_bytes(golden, model=golden_model, batch_size=5)
    orig = image_io.load_image(DATA / f"golden-v{container.VERSION}.png")
    assert np.array_equal(img.pixels, orig.pixels)
    data, _ = codec.compress_image(orig, model=golden_model)
    assert data == golden


def test_empty_batch_on_every_path(trained_model, path):
    for name in ("int8", "fp32", "unfold"):
        path(name)
        for net in trained_model.nets.values():
            a = torch.zeros(0, net.layers[0].w.shape[1], 8, 8)
            assert net(a).shape[0] == 0 and quant.run_layers(net.layers, a).shape[0] == 0


def test_weights_of_a_channels_last_model_run_on_every_path(tmp_path, path):
    """Training runs channels-last; its exported integer weights are stored contiguous, so the
    unfold path (GPUs, non-x86 CPUs) can use them, and every path gives the same parameters."""
    from shvc_gui.core.model.shvc import SHVC
    from shvc_gui.core.model.testing import tiny_hparams
    from shvc_gui.core.weights import load_integer_weights, save_integer_weights
    torch.manual_seed(0)
    m = SHVC(tiny_hparams(latent_layers=0, heads=True, interp=True)).to(memory_format=torch.channels_last)
    m.quantize = True
    save_integer_weights(m, tmp_path / "cl.pt", "cl")
    model = load_integer_weights(tmp_path / "cl.pt")
    assert all(b.is_contiguous() for b in model.buffers())
    X = torch.randint(0, 256, (2, 4, 3, 9, 11), dtype=torch.int64)
    outs = []
    for name in ("int8", "fp32", "unfold"):
        path(name)
        outs.append(model.pixel_params(3, X, None))
    assert all(torch.equal(a, b) for out in outs[1:] for a, b in zip(outs[0], out))
