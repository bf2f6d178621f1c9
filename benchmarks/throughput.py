"""End-to-end throughput in sub-pixels per second, split into stages, against the paper and JPEG-XL.

    .venv/bin/python benchmarks/throughput.py [--weights PATH] [--tiles32 10000] [--photo-mp 12] [--tiles64 200]
                                              [--photo IMAGE] [--only photo]

Workloads: random 32x32 tiles (the paper's Table 2 setting: 10,000 CIFAR-sized images), one photo of
``--photo-mp`` megapixels (a centred crop of ``--photo``, e.g. the 5120x2880 Altai wallpaper of
plasma-workspace-wallpapers, whose downsampled copy is a validation image of the corpus; without
``--photo`` a synthetic one with photo-like statistics) and 64x64 tiles cut from the photo. For each: compress and
decompress through the shvc coder (stages: tiling, network, tables+ANS, container) and JPEG-XL
lossless effort 7 on the same pixels in the same run. Ratios are against the paper's SHVC figure,
30.7 M sub-pixels / 4.63 s = 6.6 M sub-pixels/s (one GPU, batch 100).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from shvc_gui.core import container, tiling
from shvc_gui.core.codec import DEFAULT_GROUP, SMALL_PATCH, model_for_size
from shvc_gui.core.entropy.bitsback import decode_patches, encode_patches, stage_seconds
from shvc_gui.core.errors import WeightsError
from shvc_gui.core.model.testing import synthetic_photo
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
    for im, (p, _, grid) in zip(images, tiled):
        back.append(tiling.from_patches(out[at:at + len(p)], grid, im.shape[0], im.shape[1]))
        at += len(p)
    t5 = time.perf_counter()
    assert all(np.array_equal(a, b) for a, b in zip(images, back))
    subpixels = sum(im.size for im in images)
    return {"subpixels": subpixels, "bpd": 8 * len(data) / subpixels, "payload_bits": 8 * len(enc.payload),
            "ideal_bits": enc.report.neg_elbo_bits, "initial_bits": enc.report.initial_bits,
            "enc": {"tiling": t1 - t0, **stage_seconds(es, t2 - t1), "container": t3 - t2},
            "dec": {**stage_seconds(ds, t4 - t3), "untiling": t5 - t4}}


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
    args = ap.parse_args(argv)
    try:
        model = load_integer_weights(Path(args.weights)) if args.weights else load_model()
    except WeightsError:
        model = load_integer_weights(ROOT / "tests/data/trained-tiny.pt")
    variant = "det" if model.hp.deterministic else ("arib" if model.hp.split < model.hp.blocks else "shvc")
    photo = _photo(args.photo, args.photo_mp)
    big = [np.ascontiguousarray(photo[r:r + 64, c:c + 64]) for r in range(0, photo.shape[0] - 63, 64)
           for c in range(0, photo.shape[1] - 63, 64)]
    small = [np.ascontiguousarray(photo[(i * 37) % (photo.shape[0] - 32):][:32, (i * 53) % (photo.shape[1] - 32):][:, :32])
             for i in range(args.tiles32)]
    workloads = [("tiles32", f"{args.tiles32} x 32x32 tiles", small),
                 ("photo", f"photo {photo.shape[1]}x{photo.shape[0]}", [photo]),
                 ("tiles64", f"{args.tiles64} x 64x64 tiles", big[:args.tiles64])]
    workloads = [(name, imgs) for key, name, imgs in workloads if not args.only or key in args.only]
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, model {getattr(model, 'name', '?')} "
          f"({variant}), group {args.group}")
    print("| workload | sub-pixels | shvc bpd | compress Msub/s | decompress Msub/s | round trip Msub/s | "
          "x paper | compress stages (tiling/network/coding/container s) | decompress stages (network/coding/untiling s) "
          "| coder overhead % | JPEG-XL e7 bpd | JPEG-XL enc/dec Msub/s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, imgs in workloads:
        if not imgs:
            continue
        # tiles no larger than 32x32 are coded in 32x32 tiles, as the codec does for such images
        small_tiles = max(max(im.shape[:2]) for im in imgs) <= SMALL_PATCH
        r = shvc_round_trip(model_for_size(model, SMALL_PATCH, SMALL_PATCH) if small_tiles else model, imgs, variant,
                            args.device, args.group)
        j = jxl_round_trip(imgs)
        n = r["subpixels"]
        enc_s, dec_s = sum(r["enc"].values()), sum(r["dec"].values())
        rt = n / (enc_s + dec_s)
        fmt = lambda d: "/".join(f"{v:.1f}" for v in d.values())
        print(f"| {name} | {n:,} | {r['bpd']:.3f} | {n / enc_s / 1e6:.3f} | {n / dec_s / 1e6:.3f} | {rt / 1e6:.3f} | "
              f"{rt / PAPER_RATE:.4f} | {fmt(r['enc'])} | {fmt(r['dec'])} | "
              f"{100 * (r['payload_bits'] - r['ideal_bits']) / r['payload_bits']:.3f} | {j['bpd']:.3f} | "
              f"{n / j['enc'] / 1e6:.2f}/{n / j['dec'] / 1e6:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
