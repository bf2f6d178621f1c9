"""Training loop: random crops, AdamW with warm-up + cosine decay, EMA, checkpoint/resume, DDP.

``shvc train run --corpus data/corpus --out runs/NAME [--resume] [--minutes 9] ...``

* ``--precision bf16`` (the default where the CPU or GPU has bf16 units): bf16 autocast for the
  convolutions, channels_last, the loss in fp32; ``--compile`` compiles the pixel likelihood
  (``torch.compile``: it dominates a step in eager mode); gradient clipping; the ArIB
  penalty (eq. 10) with its λ. ``benchmarks/train_throughput.py`` measures the modes side by side.
* A checkpoint is written every ``--checkpoint-minutes``, at the end, when ``--minutes`` runs out and
  on SIGTERM; ``--resume`` continues exactly (model, optimizer, EMA, every RNG, step), on any device.
* ``--quantize`` trains the fake-quantized twin (quantization-aware fine-tuning of a float run).
* Multi-GPU / multi-node: start the same script with ``torchrun``; every rank draws its own crops.
* Logs train and validation BPD (total, x part, z part, ArIB penalty) and the training pixels seen
  so far (carried across resumes) to ``log.csv``.
"""

from __future__ import annotations

import argparse
import copy
import csv
import math
import os
import random
import signal
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ..core.model.hparams import HParams
from ..core.runtime import resolve_device
from ..core.model.shvc import SHVC
from ..core.model.quant import keep_freed_memory
from .grow import grow_state

LOG_FIELDS = ["step", "time_s", "pixels", "lr", "split", "bpd", "bpd_x", "bpd_z", "penalty"]
METRICS = LOG_FIELDS[5:]


def parse_args(argv):
    p = argparse.ArgumentParser(prog="shvc train run", description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", default="data/corpus", help="folder written by `shvc train corpus`")
    p.add_argument("--out", required=True, help="run folder (checkpoint.pt, log.csv)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--init", help="start from the model weights of this checkpoint (new optimizer, new step "
                   "count; pixels, seconds and the log beside it carry on); model options given here may "
                   "widen it (--width, --kernel: a function-preserving growth, train/grow.py)")
    p.add_argument("--steps", type=int, default=20000, help="total optimizer steps of the schedule")
    p.add_argument("--batch", type=int, default=16, help="crops per step (per process)")
    p.add_argument("--crop", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--min-lr-ratio", type=float, default=0.05)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--ema", type=float, default=0.998)
    p.add_argument("--arib-lambda", type=float, default=1.0)
    p.add_argument("--quantize", action="store_true", help="fake-quantized (QAT) training")
    p.add_argument("--minutes", type=float, default=0, help="stop cleanly after this many minutes (0: no limit)")
    p.add_argument("--checkpoint-minutes", type=float, default=5.0)
    p.add_argument("--val-every", type=int, default=500)
    p.add_argument("--val-crops", type=int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="bf16 autocast for the convolutions (auto: where the hardware has bf16)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the pixel likelihood (a few minutes before the first step)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    for f, default in HParams().to_dict().items():
        p.add_argument("--" + f.replace("_", "-"), type=int, default=None, help=f"model: {f} (default {default})")
    return p.parse_args(argv)


# --- data ---------------------------------------------------------------------------------------
def load_images(corpus: Path, split: str) -> list[np.ndarray]:
    from .corpus import load_corpus
    return load_corpus(corpus, split)


def random_crops(images: list[np.ndarray], n: int, size: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` random ``size`` crops with random horizontal/vertical flips: uint8 (n, 3, size, size)."""
    out = torch.empty(n, 3, size, size, dtype=torch.uint8)
    for i in range(n):
        img = images[int(torch.randint(len(images), (1,), generator=gen))]
        h, w = img.shape[:2]
        r = int(torch.randint(h - size + 1, (1,), generator=gen))
        c = int(torch.randint(w - size + 1, (1,), generator=gen))
        crop = torch.from_numpy(np.ascontiguousarray(img[r:r + size, c:c + size])).permute(2, 0, 1)
        flips = torch.randint(2, (2,), generator=gen)
        if flips[0]:
            crop = crop.flip(2)
        if flips[1]:
            crop = crop.flip(1)
        out[i] = crop
    return out


def fixed_crops(images: list[np.ndarray], n: int, size: int) -> torch.Tensor:
    """A deterministic validation set: crops spread evenly over every image."""
    crops = []
    per = max(1, math.ceil(n / max(1, len(images))))
    for img in images:
        h, w = img.shape[:2]
        for t in range(per):
            r = (h - size) * ((t * 7919) % 97) // 96
            c = (w - size) * ((t * 104729) % 89) // 88
            crops.append(torch.from_numpy(np.ascontiguousarray(img[r:r + size, c:c + size])).permute(2, 0, 1))
    return torch.stack(crops[:n]) if crops else torch.empty(0, 3, size, size, dtype=torch.uint8)


# --- schedule / state ---------------------------------------------------------------------------
def lr_at(step: int, args) -> float:
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    t = min(1.0, (step - args.warmup) / max(1, args.steps - args.warmup))
    floor = args.lr * args.min_lr_ratio
    return floor + (args.lr - floor) * 0.5 * (1 + math.cos(math.pi * t))


def ancestor_log(path: Path, pixels: int) -> list[dict]:
    """The rows of the log beside an ``--init`` checkpoint up to the ``pixels`` it had seen, so a run
    started from it (grown or not) carries its whole learning curve; none if there is no such log."""
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [row for row in csv.DictReader(f) if int(row.get("pixels") or 0) <= pixels]


def rng_state(gen: torch.Generator) -> dict:
    return {"torch": torch.get_rng_state(), "gen": gen.get_state(), "python": random.getstate(),
            "numpy": np.random.get_state()}


def set_rng_state(state: dict, gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    gen.set_state(state["gen"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])


def hparams_from_args(args, base: HParams | None = None) -> HParams:
    d = (base or HParams()).to_dict()
    for f in d:
        v = getattr(args, f)
        if v is not None:
            d[f] = v
    d["patch"] = args.crop
    return HParams.from_dict(d)


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast runs on fast units here (CUDA with bf16, or a CPU with AVX512-BF16/AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def compiled_likelihood(fn, min_side: int = 8):
    """``fn`` (the elementwise pixel likelihood) compiled for each shape whose sides are at least
    ``min_side``; the pyramid's tiny levels stay eager. (Dynamic shapes broke the compiled backward's
    strides in torch 2.13, so each large level's shape gets its own graph.)"""
    compiled = torch.compile(fn, dynamic=False)

    def call(xb, out, centre, k_mix, quantize):
        small = min(xb.shape[-2:]) < min_side
        return (fn if small else compiled)(xb, out, centre, k_mix, quantize)
    return call


class TrainStep:
    """Optimizer steps of one model on batches of uint8 crops: the loss (bf16 autocast for the
    convolutions when asked, channels_last weights, fp32 likelihood; compiled when asked),
    backward, gradient clipping, AdamW. ``model`` is the float/fake-quantized :class:`SHVC`."""

    def __init__(self, hp: HParams, lr: float, quantize: bool = False, precision: str = "fp32",
                 compile: bool = False, device: torch.device = torch.device("cpu"), clip: float = 1.0,
                 arib_lambda: float = 0.0, wrap=None):
        self.device, self.clip, self.arib_lambda = device, clip, arib_lambda
        self.bf16 = precision == "bf16" or (precision == "auto" and bf16_supported(device))
        if device.type == "cpu":
            keep_freed_memory()          # a step's temporaries are megabytes: reuse, do not re-fault, them
        self.model = SHVC(hp).to(device)
        if self.bf16:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.model.quantize = quantize
        self.net = wrap(self.model) if wrap else self.model       # e.g. DistributedDataParallel
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=lr, weight_decay=0.0, betas=(0.9, 0.99))
        if compile:
            self.model.pixel_log_prob = compiled_likelihood(self.model.pixel_log_prob)

    def _loss(self, module, x: torch.Tensor) -> dict:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return module(x, self.arib_lambda)

    def __call__(self, x: torch.Tensor, lr: float | None = None) -> dict:
        if lr is not None:
            for g in self.opt.param_groups:
                g["lr"] = lr
        self.model.train()
        out = self._loss(self.net, x.to(self.device))
        self.opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.opt.step()
        return {k: float(v.detach()) for k, v in out.items()}


class Trainer:
    """One training run; :meth:`step` is one optimizer step (used directly by the tests)."""

    def __init__(self, args, hp: HParams, device: torch.device, rank: int = 0, world: int = 1):
        self.args, self.device, self.rank, self.world = args, device, rank, world
        wrap = torch.nn.parallel.DistributedDataParallel if world > 1 else None
        self.train_step = TrainStep(hp, args.lr, args.quantize, args.precision, args.compile, device,
                                    args.clip, args.arib_lambda, wrap)
        self.model, self.opt = self.train_step.model, self.train_step.opt
        self.ema = copy.deepcopy(self.model).eval()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.gen = torch.Generator().manual_seed(args.seed * 1000 + rank)
        self.step_no = 0
        self.pixels = 0                   # training pixels seen by all ranks, across resumes
        self.seconds = 0.0                # training wall-clock seconds before this process, across resumes

    def step(self, images) -> dict:
        x = random_crops(images, self.args.batch, self.args.crop, self.gen)
        out = self.train_step(x, lr_at(self.step_no, self.args))
        with torch.no_grad():
            d = min(self.args.ema, (1 + self.step_no) / (10 + self.step_no))
            for pe, pm in zip(self.ema.parameters(), self.model.parameters()):
                pe.mul_(d).add_(pm.detach(), alpha=1 - d)
        self.step_no += 1
        self.pixels += x.shape[0] * x.shape[2] * x.shape[3] * self.world
        return out

    @torch.no_grad()
    def validate(self, crops: torch.Tensor, batch: int = 32) -> dict:
        """Mean losses of the EMA model on fixed crops, in fp32 (comparable across precisions)."""
        self.ema.quantize = self.model.quantize
        sums, n = {}, 0
        torch.manual_seed(12345)          # fixed posterior samples: comparable across steps
        for a in range(0, len(crops), batch):
            x = crops[a:a + batch].to(self.device)
            out = self.ema(x, self.args.arib_lambda)
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + float(v) * len(x)
            n += len(x)
        return {k: v / max(1, n) for k, v in sums.items()}

    def state(self) -> dict:
        return {"hparams": self.model.hp.to_dict(), "model": self.model.state_dict(),
                "ema": self.ema.state_dict(), "opt": self.opt.state_dict(), "step": self.step_no,
                "pixels": self.pixels, "seconds": self.seconds, "rng": rng_state(self.gen), "quantize": self.model.quantize,
                "args": vars(self.args)}

    def load_state(self, st: dict) -> None:
        self.model.load_state_dict(st["model"])
        self.ema.load_state_dict(st["ema"])
        self.opt.load_state_dict(st["opt"])
        self.step_no = st["step"]
        self.pixels = st.get("pixels", st["step"] * self.args.batch * self.args.crop ** 2 * self.world)
        self.seconds = st.get("seconds", 0.0)
        set_rng_state(st["rng"], self.gen)


def save_checkpoint(state: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = torch.device(resolve_device(args.device))
    if world > 1:
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    state = None
    if args.resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        hp = HParams.from_dict(state["hparams"])
    elif args.init:
        init = load_checkpoint(Path(args.init))
        init_hp = HParams.from_dict(init["hparams"])
        hp = hparams_from_args(args, base=init_hp)
    else:
        hp = hparams_from_args(args)
    torch.manual_seed(args.seed)
    trainer = Trainer(args, hp, device, rank, world)
    if state is not None:
        trainer.load_state(state)
        trainer.model.quantize = args.quantize or state.get("quantize", False)
    elif args.init:
        try:
            weights = grow_state(init["ema"], init_hp, hp, args.seed) if hp != init_hp else init["ema"]
        except ValueError as exc:
            raise SystemExit(f"shvc train run: --init {args.init}: {exc}") from None
        trainer.model.load_state_dict(weights)
        trainer.ema.load_state_dict(weights)
        trainer.model.quantize = args.quantize or init.get("quantize", False)
        trainer.pixels, trainer.seconds = init.get("pixels", 0), init.get("seconds", 0.0)   # the curve goes on
    train_imgs = [im for im in load_images(Path(args.corpus), "train") if min(im.shape[:2]) >= args.crop]
    if not train_imgs:
        raise SystemExit(f"shvc train run: no training image of at least {args.crop}x{args.crop} in {args.corpus}")
    # the validation pictures; and, when the corpus has them, their native-resolution decoded-JPEG crops
    vals = {}
    for split in ("val", "val-native"):
        crops = fixed_crops(load_images(Path(args.corpus), split), args.val_crops, args.crop)
        if len(crops):
            vals[split] = crops

    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
    log_path = out / "log.csv"
    new_log = not log_path.exists()
    logf = open(log_path, "a", newline="") if rank == 0 else None
    writer = csv.DictWriter(logf, LOG_FIELDS) if logf else None
    if writer and new_log:
        writer.writeheader()
        if args.init and state is None:
            writer.writerows(ancestor_log(Path(args.init).parent / "log.csv", trainer.pixels))
    t0 = time.time()
    last_ckpt = t0
    bar = None
    if rank == 0 and not args.no_progress:
        from tqdm import tqdm
        bar = tqdm(total=args.steps, initial=trainer.step_no, unit="step", dynamic_ncols=True)

    def log(split, metrics):
        if writer:
            writer.writerow({"step": trainer.step_no, "time_s": round(trainer.seconds + time.time() - t0, 1),
                             "pixels": trainer.pixels, "lr": f"{lr_at(trainer.step_no, args):.3g}",
                             "split": split, **{k: f"{metrics.get(k, 0.0):.5f}" for k in METRICS}})
            logf.flush()

    def checkpoint():
        if rank == 0:
            state = trainer.state()
            state["seconds"] = trainer.seconds + time.time() - t0
            save_checkpoint(state, ckpt_path)

    running = None
    while trainer.step_no < args.steps and not stop["flag"]:
        m = trainer.step(train_imgs)
        running = m if running is None else {k: 0.98 * running[k] + 0.02 * m[k] for k in m}
        if bar:
            bar.update(1)
            bar.set_postfix(bpd=f"{running['bpd']:.3f}", z=f"{running['bpd_z']:.3f}")
        if trainer.step_no % 50 == 0:
            log("train", running)
        if trainer.step_no % args.val_every == 0:
            for split, crops in vals.items():
                v = trainer.validate(crops)
                log(split, v)
                if bar:
                    bar.write(f"step {trainer.step_no}: {split} bpd {v['bpd']:.4f} (x {v['bpd_x']:.4f}, "
                              f"z {v['bpd_z']:.4f}, penalty {v['penalty']:.4f})")
        now = time.time()
        if now - last_ckpt > args.checkpoint_minutes * 60:
            checkpoint()
            last_ckpt = now
        if args.minutes and now - t0 > args.minutes * 60:
            break
    if trainer.step_no % args.val_every:                          # (else just logged)
        for split, crops in vals.items():
            log(split, trainer.validate(crops))
    checkpoint()
    if bar:
        bar.close()
    if logf:
        logf.close()
    if world > 1:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
