"""Rebuild tests/data/trained-tiny.pt: a tiny model trained 300 steps on synthetic photos (CPU, ~1 min).

    .venv/bin/python tests/data/make_test_model.py
"""

from pathlib import Path

import torch

from shvc_gui.core.model.testing import synthetic_photo, tiny_hparams
from shvc_gui.core.weights import save_integer_weights
from shvc_gui.train.loop import Trainer, parse_args

HERE = Path(__file__).parent


def main():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    args = parse_args(["--out", "/tmp/unused", "--batch", "8", "--warmup", "20", "--steps", "300", "--lr", "3e-3",
                       "--quantize"])
    hp = tiny_hparams(latent_layers=3, width=16)
    images = [synthetic_photo(128, 128, seed=s) for s in range(12)]
    tr = Trainer(args, hp, torch.device("cpu"))
    for _ in range(args.steps):
        m = tr.step(images)
    print("final train bpd", m["bpd"])
    tr.ema.quantize = True
    print("sha256", save_integer_weights(tr.ema, HERE / "trained-tiny.pt", "trained-tiny"))


if __name__ == "__main__":
    main()
