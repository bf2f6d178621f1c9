"""Training throughput: pixels per second of one optimizer step, per model and execution mode.

    python benchmarks/train_throughput.py [--configs v2,heads64] [--modes fp32,bf16,bf16-compile]
                                          [--batch 16] [--crop 64] [--steps 6] [--json out.json]

Every (config, mode) pair runs its steps on the same random photo-like crops, interleaved round by
round so that the machine's load affects all alike; the table gives the median step time after
warm-up (compilation is reported apart). Ratios between rows of one run are what to read.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from shvc_gui.core.model.hparams import HParams
from shvc_gui.core.model.testing import synthetic_photo
from shvc_gui.train.loop import TrainStep

CONFIGS = {
    "v2": dict(width=32, depth=4),                                        # the shipped shvc-det-w32-v2
    "heads48": dict(width=48, depth=4, heads=True, interp=True, kernel=3),
    "heads64": dict(width=64, depth=4, heads=True, interp=True, kernel=3),
    "heads64k5": dict(width=64, depth=4, heads=True, interp=True, kernel=5),
    "heads96": dict(width=96, depth=4, heads=True, interp=True, kernel=3),
}
MODES = {"fp32": dict(precision="fp32", compile=False), "bf16": dict(precision="bf16", compile=False),
         "bf16-compile": dict(precision="bf16", compile=True), "fp32-compile": dict(precision="fp32", compile=True)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default="v2,heads64")
    p.add_argument("--modes", default="fp32,bf16,bf16-compile")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--crop", type=int, default=64)
    p.add_argument("--steps", type=int, default=6, help="timed steps per pair (after 2 warm-up steps)")
    p.add_argument("--quantize", type=int, default=1, help="fake-quantized (QAT) steps, as trained")
    p.add_argument("--json")
    a = p.parse_args(argv)
    crops = torch.stack([torch.from_numpy(synthetic_photo(a.crop, a.crop, seed=s)).permute(2, 0, 1)
                         for s in range(a.batch)])
    runs = {}
    for c in a.configs.split(","):
        for m in a.modes.split(","):
            torch.manual_seed(0)
            hp = HParams(patch=a.crop, latent_layers=0, **CONFIGS[c])
            step = TrainStep(hp, lr=1e-3, quantize=bool(a.quantize), **MODES[m])
            t0 = time.perf_counter()
            step(crops)
            first = time.perf_counter() - t0
            step(crops)
            runs[(c, m)] = {"step": step, "first_s": first, "times": [],
                            "params": sum(q.numel() for q in step.model.parameters())}
    for _ in range(a.steps):                          # interleaved rounds
        for r in runs.values():
            t0 = time.perf_counter()
            r["bpd"] = r["step"](crops)["bpd"]
            r["times"].append(time.perf_counter() - t0)
    rows = []
    print(f"{'config':<10} {'mode':<13} {'params':>8} {'first step s':>12} {'step ms':>8} {'M px/s':>7} {'bpd':>6}")
    for (c, m), r in runs.items():
        med = statistics.median(r["times"])
        px = a.batch * a.crop * a.crop / med / 1e6
        rows.append({"config": c, "mode": m, "params": r["params"], "first_step_s": r["first_s"],
                     "step_ms": med * 1e3, "mpx_per_s": px, "threads": torch.get_num_threads()})
        print(f"{c:<10} {m:<13} {r['params']:>8} {r['first_s']:>12.1f} {med * 1e3:>8.1f} {px:>7.3f} {r['bpd']:>6.3f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"batch": a.batch, "crop": a.crop, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
