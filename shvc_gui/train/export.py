"""``shvc train export CKPT --name NAME``: integer weights into weights/, manifest and measured BPD.

Writes ``weights/<name>-<sha256[:8]>.pt`` (the integer model: int8 weights, int64 constants),
measures the validation BPD three ways (float ELBO, fake-quantized ELBO, and the real coded size of
the integer model through the bits-back coder) and records everything in ``weights/manifest.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..core.entropy.bitsback import encode_patches
from ..core.model.hparams import HParams
from ..core.model.shvc import SHVC
from ..core.runtime import variants_for
from ..core.weights import WEIGHTS_DIR, load_integer_weights, read_manifest, save_integer_weights

MAX_BYTES = 16 * 2 ** 20


def code_version() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = ""
    return f"{__version__}+{rev}" if rev else __version__


def model_from_checkpoint(path: Path, use_ema: bool = True) -> tuple[SHVC, dict]:
    st = torch.load(path, map_location="cpu", weights_only=False)
    model = SHVC(HParams.from_dict(st["hparams"]))
    model.load_state_dict(st["ema" if use_ema else "model"])
    model.eval()
    return model, st


@torch.no_grad()
def elbo_bpd(model: SHVC, crops: torch.Tensor, quantize: bool, batch: int = 32) -> float:
    model.quantize = quantize
    torch.manual_seed(0)
    total = 0.0
    for a in range(0, len(crops), batch):
        total += float(model.loss(crops[a:a + batch])["bpd"]) * len(crops[a:a + batch])
    return total / max(1, len(crops))


def coded_bpd(int_model, crops: torch.Tensor, variant: str) -> dict:
    x = crops.numpy()
    valid = np.full((len(x), 2), x.shape[-1])
    t = time.time()
    enc = encode_patches(int_model, x, valid, variant, group_size=16)
    r = enc.report
    return {"bpd": r.total_bits / r.n_dims, "ideal_bpd": r.neg_elbo_bits / r.n_dims,
            "initial_bits": r.initial_bits, "tiles": len(x), "encode_s": round(time.time() - t, 1)}


def export(ckpt: Path, name: str, corpus: Path | None, weights_dir: Path = WEIGHTS_DIR,
           val_tiles: int = 64, make_default: bool = True) -> dict:
    from .loop import fixed_crops, load_images
    model, st = model_from_checkpoint(ckpt)
    weights_dir.mkdir(parents=True, exist_ok=True)
    tmp = weights_dir / f"{name}.pt.partial"
    sha = save_integer_weights(model, tmp, name)
    if tmp.stat().st_size > MAX_BYTES:
        tmp.unlink()
        raise SystemExit(f"weights file would be {tmp.stat().st_size} bytes, over the 16 MiB limit")
    final = weights_dir / f"{name}-{sha[:8]}.pt"
    tmp.replace(final)
    int_model = load_integer_weights(final, sha, name)
    hp = model.hp
    entry = {"name": name, "file": final.name, "sha256": sha, "bytes": final.stat().st_size,
             "hparams": hp.to_dict(), "steps": st.get("step"), "pixels_seen": st.get("pixels"),
             "train_seconds": round(st["seconds"]) if "seconds" in st else None, "qat": bool(st.get("quantize")),
             "code_version": code_version(), "exported": time.strftime("%Y-%m-%d"),
             "variants": variants_for(hp)}
    if corpus is not None:
        from .corpus import corpus_manifest_hash
        entry["corpus_manifest_sha256"] = corpus_manifest_hash(corpus)
        crops = fixed_crops(load_images(corpus, "val"), val_tiles, hp.patch)
        entry["validation"] = {
            "tiles": len(crops), "tile": hp.patch,
            "float_elbo_bpd": round(elbo_bpd(model, crops, False), 4),
            "quantized_elbo_bpd": round(elbo_bpd(model, crops, True), 4),
            "coded": {v: coded_bpd(int_model, crops, v) for v in entry["variants"]},
        }
    manifest = read_manifest(weights_dir)
    manifest["models"] = [m for m in manifest.get("models", []) if m["name"] != name] + [entry]
    if make_default:
        default = manifest.setdefault("default", {})
        for v in entry["variants"]:
            default[v] = name
        default["any"] = name                   # what the CLI and GUI use when no variant is asked for
    (weights_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return entry


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="shvc train export", description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("--name", required=True)
    p.add_argument("--corpus", default="data/corpus", help="for the validation figures ('' to skip)")
    p.add_argument("--weights-dir", default=str(WEIGHTS_DIR))
    p.add_argument("--val-tiles", type=int, default=64)
    p.add_argument("--no-default", action="store_true", help="do not make it the default model (for its variants and when no variant is asked for)")
    args = p.parse_args(argv)
    entry = export(Path(args.checkpoint), args.name, Path(args.corpus) if args.corpus else None,
                   Path(args.weights_dir), args.val_tiles, not args.no_default)
    print(json.dumps(entry, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
