"""Rebuild the committed test models: tests/data/trained-tiny.pt, a tiny latent-variable model trained
300 steps on synthetic photos (CPU, ~1 min), or with ``det`` tests/data/trained-tiny-det.pt, a tiny
deterministic model with per-sub-image heads and interpolated centres (the shipped det form; the
model of the version-3 golden file).

    .venv/bin/python tests/data/make_test_model.py [det]
"""

import sys
from pathlib import Path

import torch

from shvc_gui.core.model.testing import synthetic_photo, tiny_hparams
from shvc_gui.core.weights import save_integer_weights
from shvc_gui.train.loop import Trainer, parse_args

HERE = Path(__file__).parent


def main(det: bool = False):
    torch.manual_seed(0)
    torch.set_num_threads(2)
    steps = 150 if det else 300
    args = parse_args(["--out", "/tmp/unused", "--batch", "8", "--warmup", "20", "--steps", str(steps), "--lr", "3e-3",
                       "--quantize"])
    hp = (tiny_hparams(latent_layers=0, width=16, heads=True, interp=True) if det
          else tiny_hparams(latent_layers=3, width=16))
    images = [synthetic_photo(128, 128, seed=s) for s in range(12)]
    tr = Trainer(args, hp, torch.device("cpu"))
    for _ in range(args.steps):
        m = tr.step(images)
    print("final train bpd", m["bpd"])
    tr.ema.quantize = True
    name = "trained-tiny-det" if det else "trained-tiny"
    print("sha256", save_integer_weights(tr.ema, HERE / f"{name}.pt", name))


if __name__ == "__main__":
    main(det=sys.argv[1:] == ["det"])
