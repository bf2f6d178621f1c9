"""The registry of shipped weights: weights/manifest.json, sha256 checks, model ids.

A weights file holds the *integer* model (int8 weights, int64 requantization constants and the
hyper-parameters), which is all the coder needs. Training checkpoints (float) live elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from .errors import UsageError, WeightsError
from .model.shvc import IntegerSHVC, SHVC

WEIGHTS_DIR = Path(os.environ.get("SHVC_WEIGHTS_DIR", Path(__file__).resolve().parents[2] / "weights"))
FORMAT = "shvc-integer-weights"
FORMAT_VERSION = 1


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_integer_weights(model: SHVC, path: Path, name: str) -> str:
    """Write the integer twin of ``model`` to ``path``; returns the file's sha256. Tensors are stored
    contiguous: a model trained channels-last would otherwise give weights that every path but
    ``F.conv2d`` (unfold + matmul: GPUs, non-x86 CPUs) cannot view as a matrix."""
    payload = {"format": FORMAT, "version": FORMAT_VERSION, "name": name,
               "state": contiguous(model.integer_state())}
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return sha256_file(path)


def contiguous(obj):
    """``obj`` (tensors in dicts and lists) with every tensor contiguous."""
    if isinstance(obj, torch.Tensor):
        return obj.contiguous()
    if isinstance(obj, dict):
        return {k: contiguous(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(contiguous(v) for v in obj)
    return obj


def load_integer_weights(path: Path, expected_sha256: str | None = None, name: str | None = None) -> IntegerSHVC:
    """Load an integer model; refuse a file whose sha256 differs from ``expected_sha256``."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"The weights file {path} does not exist.")
    digest = sha256_file(path)
    if expected_sha256 is not None and digest != expected_sha256:
        raise WeightsError(f"The weights file {path.name} is damaged or was replaced: its sha256 does not "
                           "match the manifest.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("format") != FORMAT or payload.get("version") != FORMAT_VERSION:
            raise UsageError("not an integer weights file")
        model = IntegerSHVC(payload["state"])
    except Exception as exc:  # torch/pickle raise many kinds
        raise WeightsError(f"The file {path.name} is not a usable shvc weights file ({exc}).") from None
    model.eval()
    model.name = name or payload.get("name", path.stem)
    model.sha256 = digest
    return model


def read_manifest(weights_dir: Path | None = None) -> dict:
    d = Path(weights_dir or WEIGHTS_DIR)
    try:
        return json.loads((d / "manifest.json").read_text())
    except FileNotFoundError:
        return {"default": {}, "models": []}
    except (OSError, ValueError) as exc:
        raise WeightsError(f"weights/manifest.json cannot be read ({exc}).") from None


def _entry_model(entry: dict, weights_dir: Path) -> IntegerSHVC:
    return load_integer_weights(weights_dir / entry["file"], entry["sha256"], entry["name"])


def load_model(name_or_path: str | Path | None = None, variant: str | None = None,
               weights_dir: Path | None = None) -> IntegerSHVC:
    """The shipped model by name (or the default for ``variant``), or a weights file by path."""
    d = Path(weights_dir or WEIGHTS_DIR)
    if name_or_path is not None and Path(name_or_path).suffix == ".pt" and Path(name_or_path).exists():
        return load_integer_weights(Path(name_or_path))
    manifest = read_manifest(d)
    models = manifest.get("models", [])
    if name_or_path is None:
        default = manifest.get("default", {})
        name_or_path = default.get(variant or "any") or default.get("any")
        if name_or_path is None:
            raise WeightsError("No shvc model is installed (weights/manifest.json lists none).")
    for entry in models:
        if entry["name"] == name_or_path:
            return _entry_model(entry, d)
    raise WeightsError(f"The model {name_or_path!r} is not installed.")


def find_model_by_sha256(sha256: str, weights_dir: Path | None = None) -> IntegerSHVC:
    """The installed model whose weights have this sha256 (needed to decode a file)."""
    d = Path(weights_dir or WEIGHTS_DIR)
    for entry in read_manifest(d).get("models", []):
        if entry["sha256"] == sha256:
            return _entry_model(entry, d)
    raise WeightsError(f"This file was made with model weights {sha256[:12]}… that are not installed.")
