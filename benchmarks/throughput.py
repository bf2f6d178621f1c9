"""End-to-end throughput in sub-pixels per second, split into stages, against the paper and JPEG-XL.

    .venv/bin/python benchmarks/throughput.py [--weights PATH] [--tiles32 10000] [--photo-mp 12] [--tiles64 200]
                                              [--photo IMAGE] [--only photo] [--paths fp32,int8,int8+chain] [--chain]
                                              [--network-only] [--reps 30]

Workloads: random 32x32 tiles (the paper's Table 2 setting: 10,000 CIFAR-sized images), one photo of
``--photo-mp`` megapixels (a centred crop of ``--photo``, e.g. the 5120x2880 Altai wallpaper of
plasma-workspace-wallpapers, whose downsampled copy is a validation image of the corpus; without
``--photo`` a synthetic one with photo-like statistics) and 64x64 tiles cut from the photo. For each: compress and
decompress through the shvc coder (stages: tiling, network, tables+ANS, container) and JPEG-XL
lossless effort 7 on the same pixels in the same run. Ratios are against the paper's SHVC figure,
30.7 M sub-pixels / 4.63 s = 6.6 M sub-pixels/s (one GPU, batch 100).

First, the network alone (:func:`network_rows`): milliseconds per layer and network seconds per
megapixel on each path of ``quant.int_sums`` (int8, fp32, unfold) and as the code stood before the
int8 path ("before": F.conv2d/unfold, int64 requantization, malloc's thresholds set back near their
defaults; "before, malloc kept": the same arithmetic with freed memory kept), measured interleaved in one run, for the shipped x_net and for a wider layer stack. ``--paths`` runs the end-to-end
workloads once per path; ``--chain`` runs them with ``quant.run_layers`` inside ``IntConvNet``.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import numpy as np
import torch

from shvc_gui.core import container, tiling
from shvc_gui.core.codec import DEFAULT_GROUP, SMALL_PATCH, model_for_size
from shvc_gui.core.entropy.bitsback import decode_patches, encode_patches
from shvc_gui.core.entropy.parallel import stage_seconds
from shvc_gui.core.errors import WeightsError
from shvc_gui.core.model import quant
from shvc_gui.core.model.testing import synthetic_photo
from shvc_gui.core.runtime import default_variant
from shvc_gui.core.weights import load_integer_weights, load_model

PAPER_RATE = 30.7e6 / 4.63
ROOT = Path(__file__).resolve().parents[1]


def shvc_round_trip(model, images: list[np.ndarray], variant: str, device: str, group: int) -> dict:
    """Compress and decompress ``images`` (HxWx3) as one batch of patches; per-stage seconds."""
    t0 = time.perf_counter()
    tiled = [tiling.to_patches(im, model.hp.patch) for im in images]
    patches = np.concatenate([t[0] for t in tiled])
    valid = np.concatenate([t[1] for t in tiled])
    t1 = time.perf_counter()
    es, ds = {}, {}
    enc = encode_patches(model, patches, valid, variant, group_size=group, device=device, stats=es)
    t2 = time.perf_counter()
    data = container.write_container(container.Header(1, 1, "RGB", "model"), [enc.payload])
    t3 = time.perf_counter()
    _, streams = container.read_container(data)
    out = decode_patches(model, streams[0], valid, variant, group_size=group, device=device, stats=ds)
    t4 = time.perf_counter()
    back, at = [], 0
    for im, (p, v, grid) in zip(images, tiled):
        back.append(tiling.from_patches(out[at:at + len(p)], v, grid, im.shape[0], im.shape[1]))
        at += len(p)
    t5 = time.perf_counter()
    assert all(np.array_equal(a, b) for a, b in zip(images, back))
    subpixels = sum(im.size for im in images)
    return {"subpixels": subpixels, "bpd": 8 * len(data) / subpixels, "payload_bits": 8 * len(enc.payload),
            "payload_sha256": hashlib.sha256(enc.payload).hexdigest(),
            "ideal_bits": enc.report.neg_elbo_bits, "initial_bits": enc.report.initial_bits,
            "enc": {"tiling": t1 - t0, **stage_seconds(es, t2 - t1), "container": t3 - t2},
            "dec": {**stage_seconds(ds, t4 - t3), "untiling": t5 - t4}}


# --- the network alone -------------------------------------------------------------------------

SUB = 32            # a 64x64 patch with k = 2 is four 32x32 sub-images: one network call per sub-image
POSITIONS_PER_MP = 1e6  # four sub-images of 250,000 positions per megapixel, each run through the network


def _old_forward(layers, a):
    """The integer network as it ran before the int8 path (commit 299429c), for the "before" rows."""
    import torch.nn.functional as F
    for i, layer in enumerate(layers):
        n, _, h, w = a.shape
        if quant.exact_conv_available(a, layer.w):
            acc = F.conv2d(a, layer.w, padding=layer.ksize // 2).reshape(n, layer.cout, h * w)
        else:
            acc = torch.matmul(layer.w.view(layer.cout, -1), F.unfold(a, layer.ksize, padding=layer.ksize // 2))
        out = (acc.to(torch.int64) * layer.m + layer.b) >> quant.SHIFT
        out = (out.clamp(quant.ACT_MIN, quant.ACT_MAX) if layer.clamp else out).view(n, layer.cout, h, w)
        a = out.to(torch.float32) if i + 1 < len(layers) else out
    return a


def _malloc(keep: bool) -> None:
    """glibc's thresholds as ``quant.keep_freed_memory`` sets them, or back near its defaults."""
    import ctypes
    import platform
    if platform.system() == "Linux":
        libc = ctypes.CDLL(None)
        libc.mallopt(-3, (32 << 20) if keep else (128 << 10))
        libc.mallopt(-1, (1 << 30) if keep else (128 << 10))


def wide_layers(first: int, cin: int = 18, width: int = 64, hidden: int = 3, cout: int = 60, seed: int = 0):
    """A layer stack like the per-sub-image heads being trained: ``first`` x ``first`` conv from ``cin``
    channels to ``width``, ``hidden`` 1x1 ``width`` -> ``width``, 1x1 to ``cout`` outputs; random
    integers of the exported kind (|w| <= 63 within the exact-sum bound, multipliers near 2**17)."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(cin, width, first, True)] + [(width, width, 1, True)] * hidden + [(width, cout, 1, False)]
    layers = []
    for ci, co, k, clamp in shapes:
        w = torch.randint(-quant.W_MAX, quant.W_MAX + 1, (co, ci, k, k), generator=g)
        m = torch.randint(2 ** 16, 2 ** 18, (co,), generator=g)
        # offsets that put the typical sum near the middle of the activation range
        b = torch.full((co,), 40 * 2 ** quant.SHIFT, dtype=torch.int64) if clamp else \
            torch.randint(-2 ** 33, 2 ** 33, (co,), generator=g)
        layers.append(quant.IntConv2d({"w": w.to(torch.int8), "m": m, "b": b, "clamp": torch.tensor(int(clamp))}))
    return layers


def _best_of(fns: dict, reps: int) -> dict:
    """Minimum wall time of each function over ``reps`` interleaved rounds (the machine is shared)."""
    best = {k: float("inf") for k in fns}
    for _ in range(reps):
        for k, (prepare, f) in fns.items():
            prepare()
            t0 = time.perf_counter()
            f()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def _set(path: str | None, keep_malloc: bool = True):
    def prepare():
        _malloc(keep_malloc)
        if path:
            quant.conv_path = path
    return prepare


def network_rows(model, batch: int = 16, reps: int = 30) -> None:
    """Print per-layer milliseconds per path and network seconds per megapixel, before and after."""
    nets = {"shipped x_net": list(model.nets["x_net"].layers) if "x_net" in model.nets else None,
            "wide 3x3 (18->64, 3x 1x1 64->64, 1x1 ->60)": wide_layers(3),
            "wide 5x5 (18->64, 3x 1x1 64->64, 1x1 ->60)": wide_layers(5)}
    old_path = quant.conv_path
    g = torch.Generator().manual_seed(1)
    print(f"network alone: batch {batch} of {SUB}x{SUB} sub-images, torch threads {torch.get_num_threads()}, "
          f"int8 available: {quant.int8_available()}, best of {reps} interleaved")
    print("| layer | before ms | fp32 ms | unfold ms | int8 ms | int8, uint8 out ms | before/int8 |")
    print("|---|---|---|---|---|---|---|")
    seen = set()
    for name, layers in nets.items():
        if layers is None:
            continue
        a = torch.randint(-128, 128, (batch, layers[0].w.shape[1], SUB, SUB), generator=g).float()
        for i, layer in enumerate(layers):
            key = (tuple(layer.w.shape), layer.clamp)
            x = a if i == 0 else torch.randint(0, 128, (batch, layer.w.shape[1], SUB, SUB), generator=g).float()
            if key in seen:
                continue
            seen.add(key)
            fns = {"before": (_set(None, False), lambda: _old_forward([layer], x)),
                   "fp32": (_set("fp32"), lambda: layer(x)),
                   "unfold": (_set("unfold"), lambda: layer(x)),
                   "int8": (_set("int8"), lambda: layer(x))}
            if layer.clamp:
                x8 = x.to(torch.uint8).contiguous(memory_format=torch.channels_last)
                fns["int8 act"] = (_set("int8"), lambda: layer.run(x8 if i else x, act=True))
            t = {k: 1e3 * v for k, v in _best_of(fns, reps).items()}
            cells = [f"{tuple(layer.w.shape)}{'' if layer.clamp else ' (output)'}"]
            cells += [f"{t[k]:.2f}" if k in t else "-" for k in ("before", "fp32", "unfold", "int8", "int8 act")]
            print("| " + " | ".join(cells) + f" | {t['before'] / t['int8']:.2f} |")
    per_mp = POSITIONS_PER_MP / (batch * SUB * SUB)
    print()
    print("| network | before s/MP | before, malloc kept s/MP | fp32 s/MP | int8 s/MP (layer by layer) | "
          "int8 s/MP (run_layers) | before / int8 layers | before / int8 run_layers | "
          "before (malloc kept) / int8 run_layers |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, layers in nets.items():
        if layers is None:
            continue
        a = torch.randint(-128, 128, (batch, layers[0].w.shape[1], SUB, SUB), generator=g).float()

        def by_layer(a=a, layers=layers):
            for i, layer in enumerate(layers):
                out = layer(a)
                a = out.to(torch.float32) if i + 1 < len(layers) else out
            return a
        fns = {"before": (_set(None, False), lambda: _old_forward(layers, a)),
               "before kept": (_set(None, True), lambda: _old_forward(layers, a)),
               "fp32": (_set("fp32"), by_layer),
               "int8": (_set("int8"), by_layer),
               "chain": (_set("int8"), lambda: quant.run_layers(layers, a))}
        _set("int8")()
        ref = _old_forward(layers, a)
        assert torch.equal(by_layer(), ref) and torch.equal(quant.run_layers(layers, a), ref)
        t = {k: v * per_mp for k, v in _best_of(fns, reps).items()}
        print(f"| {name} | {t['before']:.3f} | {t['before kept']:.3f} | {t['fp32']:.3f} | {t['int8']:.3f} | "
              f"{t['chain']:.3f} | {t['before'] / t['int8']:.2f} | {t['before'] / t['chain']:.2f} | "
              f"{t['before kept'] / t['chain']:.2f} |")
    print()
    quant.conv_path = old_path
    _malloc(True)


def jxl_round_trip(images: list[np.ndarray]) -> dict:
    import imagecodecs
    t0 = time.perf_counter()
    blobs = [imagecodecs.jpegxl_encode(im, lossless=True, effort=7) for im in images]
    t1 = time.perf_counter()
    outs = [imagecodecs.jpegxl_decode(b) for b in blobs]
    t2 = time.perf_counter()
    assert all(np.array_equal(a, b) for a, b in zip(images, outs))
    subpixels = sum(im.size for im in images)
    return {"bpd": 8 * sum(map(len, blobs)) / subpixels, "enc": t1 - t0, "dec": t2 - t1}


def _photo(path: str | None, mp: float) -> np.ndarray:
    """A centred crop of ``mp`` megapixels (4:3, or as wide as the image allows) of ``path``, or a
    synthetic photo of that size."""
    side = int(round((mp * 1e6 * 4 / 3) ** 0.5))
    if path is None:
        return synthetic_photo(side * 3 // 4, side, seed=5)
    from PIL import Image
    im = np.asarray(Image.open(path).convert("RGB"))
    h = min(im.shape[0], side * 3 // 4)
    w = min(im.shape[1], int(round(mp * 1e6 / h)))
    top, left = (im.shape[0] - h) // 2, (im.shape[1] - w) // 2
    return np.ascontiguousarray(im[top:top + h, left:left + w])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights")
    ap.add_argument("--tiles32", type=int, default=10000)
    ap.add_argument("--photo-mp", type=float, default=12.0)
    ap.add_argument("--tiles64", type=int, default=200)
    ap.add_argument("--photo", help="a photograph to crop the photo workload from (default: synthetic)")
    ap.add_argument("--only", choices=["tiles32", "photo", "tiles64"], action="append",
                    help="run only these workloads (repeatable)")
    ap.add_argument("--group", type=int, default=DEFAULT_GROUP, help="patches per group (default: the codec's)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--paths", default="auto",
                    help="comma-separated quant.int_sums paths to run the end-to-end workloads on, e.g. "
                         "fp32,int8,int8+chain (+chain: with quant.run_layers inside IntConvNet)")
    ap.add_argument("--chain", action="store_true",
                    help="end to end with quant.run_layers inside IntConvNet (uint8 activations between layers)")
    ap.add_argument("--network-only", action="store_true", help="only the network-alone tables")
    ap.add_argument("--no-network", action="store_true", help="skip the network-alone tables")
    ap.add_argument("--reps", type=int, default=30, help="interleaved rounds of the network-alone timings")
    args = ap.parse_args(argv)
    try:
        model = load_integer_weights(Path(args.weights)) if args.weights else load_model()
    except WeightsError:
        model = load_integer_weights(ROOT / "tests/data/trained-tiny.pt")
    variant = default_variant(model.hp)
    photo = _photo(args.photo, args.photo_mp)
    big = [np.ascontiguousarray(photo[r:r + 64, c:c + 64]) for r in range(0, photo.shape[0] - 63, 64)
           for c in range(0, photo.shape[1] - 63, 64)]
    small = [np.ascontiguousarray(photo[(i * 37) % (photo.shape[0] - 32):][:32, (i * 53) % (photo.shape[1] - 32):][:, :32])
             for i in range(args.tiles32)]
    workloads = [("tiles32", f"{args.tiles32} x 32x32 tiles", small),
                 ("photo", f"photo {photo.shape[1]}x{photo.shape[0]}", [photo]),
                 ("tiles64", f"{args.tiles64} x 64x64 tiles", big[:args.tiles64])]
    workloads = [(name, imgs) for key, name, imgs in workloads if not args.only or key in args.only]
    if not args.no_network and args.device == "cpu":
        network_rows(model, reps=args.reps)
    if args.network_only:
        return 0
    from shvc_gui.core.model.layers import IntConvNet
    by_layer, chained = IntConvNet.forward, (lambda self, a: quant.run_layers(self.layers, a))
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, model {getattr(model, 'name', '?')} "
          f"({variant}), group {args.group}, paths {args.paths}{', run_layers' if args.chain else ''}")
    print("| workload | path | sub-pixels | shvc bpd | compress Msub/s | decompress Msub/s | round trip Msub/s | "
          "x paper | compress stages (tiling/network/coding/container s) | decompress stages (network/coding/untiling s) "
          "| coder overhead % | JPEG-XL e7 bpd | JPEG-XL enc/dec Msub/s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, imgs in workloads:
        if not imgs:
            continue
        # tiles no larger than 32x32 are coded in 32x32 tiles, as the codec does for such images
        small_tiles = max(max(im.shape[:2]) for im in imgs) <= SMALL_PATCH
        j = jxl_round_trip(imgs)
        n = sum(im.size for im in imgs)
        sized = model_for_size(model, SMALL_PATCH, SMALL_PATCH) if small_tiles else model
        payloads = set()
        for path in args.paths.split(","):
            quant.conv_path = path.split("+")[0]
            IntConvNet.forward = chained if args.chain or path.endswith("+chain") else by_layer
            r = shvc_round_trip(sized, imgs, variant, args.device, args.group)
            payloads.add(r["payload_sha256"])
            enc_s, dec_s = sum(r["enc"].values()), sum(r["dec"].values())
            rt = n / (enc_s + dec_s)
            fmt = lambda d: "/".join(f"{v:.1f}" for v in d.values())
            print(f"| {name} | {path} | {n:,} | {r['bpd']:.3f} | {n / enc_s / 1e6:.3f} | {n / dec_s / 1e6:.3f} | "
                  f"{rt / 1e6:.3f} | {rt / PAPER_RATE:.4f} | {fmt(r['enc'])} | {fmt(r['dec'])} | "
                  f"{100 * (r['payload_bits'] - r['ideal_bits']) / r['payload_bits']:.3f} | {j['bpd']:.3f} | "
                  f"{n / j['enc'] / 1e6:.2f}/{n / j['dec'] / 1e6:.2f} |", flush=True)
        assert len(payloads) == 1, "the payload depends on the path"
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
