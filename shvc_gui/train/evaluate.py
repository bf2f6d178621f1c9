"""``shvc train eval CKPT [CKPT ...]``: several checkpoints' validation loss on the same crops.

Training logs one validation loss per run, on crops of that run's own size and corpus; comparing
runs (a decay against another, one corpus against another, 64x64 crops against 128x128) needs each
checkpoint measured on identical crops. This loads every checkpoint's EMA model (fake-quantized when
it was trained with quantization, as the integer export will be) and prints the bits per dimension
of each on the same deterministic crops of each split and size, one row per checkpoint.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .corpus import SPLITS
from .export import elbo_bpd, model_from_checkpoint
from .loop import fixed_crops, load_images


def evaluate(checkpoints: list[Path], corpus: Path, splits: list[str], sizes: list[int],
             crops: int) -> list[dict]:
    """One dict per checkpoint: its path, step, pixels seen and ``{"<split>@<size>": bpd}``."""
    sets = {}
    for split in splits:
        images = load_images(corpus, split)
        for size in sizes:
            usable = [im for im in images if min(im.shape[:2]) >= size]
            if usable:
                sets[f"{split}@{size}"] = fixed_crops(usable, crops, size)
    if not sets:
        raise SystemExit(f"shvc train eval: no image of the splits {', '.join(splits)} in {corpus} "
                         f"is as large as {max(sizes)} pixels")
    rows = []
    for path in checkpoints:
        model, st = model_from_checkpoint(path)
        quantize = bool(st.get("quantize"))
        rows.append({"checkpoint": str(path), "step": st.get("step"), "pixels": st.get("pixels"),
                     "bpd": {name: round(elbo_bpd(model, x, quantize), 5) for name, x in sets.items()}})
    return rows


def table(rows: list[dict]) -> str:
    names = list(rows[0]["bpd"]) if rows else []
    lines = ["| checkpoint | step | pixels | " + " | ".join(names) + " |",
             "|---|---|---|" + "---|" * len(names)]
    for r in rows:
        lines.append(f"| {r['checkpoint']} | {r['step']} | {r['pixels'] or 0:.3g} | "
                     + " | ".join(f"{r['bpd'][n]:.4f}" for n in names) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="shvc train eval", description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", nargs="+", type=Path)
    p.add_argument("--corpus", type=Path, default=Path("data/corpus-v1"))
    p.add_argument("--splits", default="val", help=f"comma-separated, of {', '.join(SPLITS)}")
    p.add_argument("--sizes", default="64", help="comma-separated crop sides")
    p.add_argument("--crops", type=int, default=256, help="crops per split and size")
    p.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")
    args = p.parse_args(argv)
    splits = [s for s in args.splits.split(",") if s]
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        p.error(f"unknown split {', '.join(unknown)} (known: {', '.join(SPLITS)})")
    if not (args.corpus / "manifest.json").is_file():
        p.error(f"{args.corpus} is not a corpus (no manifest.json; build one with `shvc train corpus`)")
    missing = [str(c) for c in args.checkpoints if not c.is_file()]
    if missing:
        p.error(f"no such checkpoint: {', '.join(missing)}")
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s]
    except ValueError:
        p.error(f"--sizes takes whole numbers, not {args.sizes!r}")
    rows = evaluate(args.checkpoints, args.corpus, splits, sizes, args.crops)
    print(json.dumps(rows, indent=2) if args.json else table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
