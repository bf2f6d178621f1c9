"""BPD and speed of the float model against its integer-exact twin, on the validation tiles.

    .venv/bin/python benchmarks/integer_vs_float.py CHECKPOINT [--corpus data/corpus] [--tiles 128]

Reports, on the same 64x64 validation tiles:
* float ELBO BPD (no rounding anywhere), fake-quantized ELBO BPD (what QAT optimizes), and the real
  coded BPD of the exported integer model through the bits-back coder (file bits / sub-pixels);
* patches/s of the float model's one-pass ELBO evaluation, and of the integer model's network
  calls during encoding (k*k sub-image steps per layer), on the CPU and CUDA when present.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from shvc_gui.core.entropy.bitsback import encode_patches
from shvc_gui.core.entropy.parallel import NETWORK_SECONDS
from shvc_gui.core.model.shvc import IntegerSHVC
from shvc_gui.core.runtime import default_variant
from shvc_gui.train.export import elbo_bpd, model_from_checkpoint
from shvc_gui.train.loop import fixed_crops, load_images


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--corpus", default="data/corpus")
    ap.add_argument("--tiles", type=int, default=128)
    args = ap.parse_args(argv)
    model, st = model_from_checkpoint(Path(args.checkpoint))
    crops = fixed_crops(load_images(Path(args.corpus), "val"), args.tiles, model.hp.patch)
    int_model = IntegerSHVC(model.integer_state()).eval()
    variant = default_variant(model.hp)
    print(f"checkpoint {args.checkpoint} step {st.get('step')} qat={st.get('quantize')} tiles {len(crops)}")
    print("| device | float ELBO bpd | fake-quant ELBO bpd | integer coded bpd | integer vs float | "
          "float patches/s | integer net patches/s |")
    print("|---|---|---|---|---|---|---|")
    for dev in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        m = model.to(dev)
        c = crops.to(dev)
        t = time.perf_counter()
        f_bpd = elbo_bpd(m, c, quantize=False)
        f_rate = len(c) / (time.perf_counter() - t)
        q_bpd = elbo_bpd(m, c, quantize=True)
        stats = {}
        enc = encode_patches(int_model, crops.numpy(), np.full((len(crops), 2), model.hp.patch), variant,
                             group_size=64, net_batch=64, device=dev, stats=stats)
        coded = enc.report.total_bits / enc.report.n_dims
        i_rate = len(crops) / stats[NETWORK_SECONDS]
        print(f"| {dev} | {f_bpd:.4f} | {q_bpd:.4f} | {coded:.4f} | {100 * (coded / f_bpd - 1):+.2f} % | "
              f"{f_rate:.1f} | {i_rate:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
