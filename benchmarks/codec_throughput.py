"""Encode/decode time per 64x64 patch of the bits-back coder, split into network and coding time.

    .venv/bin/python benchmarks/codec_throughput.py [--weights PATH] [--patches 100] [--variant arib]

Batch sizes 1, 16 and 100 (patches moving through each step together), on the CPU and on CUDA
when present. "coding" is everything that is not a network call: probability tables and ANS.
Uses the shipped default model (or --weights); without one, the committed test model.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from shvc_gui.core.entropy.bitsback import decode_patches, encode_patches
from shvc_gui.core.entropy.parallel import stage_seconds
from shvc_gui.core.errors import WeightsError
from shvc_gui.core.model.testing import synthetic_photo
from shvc_gui.core.runtime import default_variant
from shvc_gui.core.weights import load_integer_weights, load_model

ROOT = Path(__file__).resolve().parents[1]


def photo_patches(n: int, p: int) -> np.ndarray:
    side = int(np.ceil(np.sqrt(n)))
    img = synthetic_photo(side * p, side * p, seed=1)
    tiles = img.reshape(side, p, side, p, 3).transpose(0, 2, 4, 1, 3).reshape(-1, 3, p, p)
    return np.ascontiguousarray(tiles[:n])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights")
    ap.add_argument("--patches", type=int, default=100)
    ap.add_argument("--variant", default=None)
    ap.add_argument("--batches", default="1,16,100")
    args = ap.parse_args(argv)
    try:
        model = load_integer_weights(Path(args.weights)) if args.weights else load_model()
    except WeightsError:
        model = load_integer_weights(ROOT / "tests/data/trained-tiny.pt")
    variant = args.variant or default_variant(model.hp)
    x = photo_patches(args.patches, model.hp.patch)
    valid = np.full((len(x), 2), model.hp.patch)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"model {getattr(model, 'name', '?')} variant {variant}, {len(x)} patches of {model.hp.patch}x{model.hp.patch}, "
          f"torch threads {torch.get_num_threads()}")
    print("| device | batch | encode ms/patch | (network) | (coding) | decode ms/patch | (network) | (coding) | bpd |")
    print("|---|---|---|---|---|---|---|---|---|")
    for dev in devices:
        for b in (int(v) for v in args.batches.split(",")):
            es, ds = {}, {}
            t0 = time.perf_counter()
            enc = encode_patches(model, x, valid, variant, group_size=b, net_batch=b, device=dev, stats=es)
            t1 = time.perf_counter()
            y = decode_patches(model, enc.payload, valid, variant, group_size=b, net_batch=b, device=dev, stats=ds)
            t2 = time.perf_counter()
            assert np.array_equal(x, y)
            n = len(x)
            ms = lambda s: f"{1000 * s / n:.1f}"
            e, d = stage_seconds(es, t1 - t0), stage_seconds(ds, t2 - t1)
            print(f"| {dev} | {b} | {ms(t1 - t0)} | {ms(e['network'])} | {ms(e['coding'])} | "
                  f"{ms(t2 - t1)} | {ms(d['network'])} | {ms(d['coding'])} | "
                  f"{enc.report.total_bits / enc.report.n_dims:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
