"""Fuzz the .shvc decoder: seeded mutations of known-good files through ``codec.decompress_bytes``.

    .venv/bin/python benchmarks/fuzz_decoder.py [--count 3000] [--seed 0] [--weights tests/data/trained-tiny.pt ...]

Every outcome must be one of: a :class:`ShvcError` (FormatError, IntegrityError, WeightsError, ...)
or exact pixels equal to the original's that the image writer of ``shvc decompress`` accepts. Anything else (another exception, a decode slower than
``--max-seconds``, a peak memory growth over ``--max-mb``) is a defect: it is listed with the seed
input, the mutation and its index, so ``mutate(...)`` reproduces it, and the exit status is 1.

Seed inputs: tests/data/golden-v1.shvc, golden-v2.shvc and golden-v3.shvc (model payloads of every
format version: patches of the latent-variable test model, the whole image of the deterministic one)
and two files made here whose pixels travel in the embedded lossless stream (a palette image with
palette alpha, 16-bit grey+alpha). Mutations: raw damage (bit flips, byte overwrites, truncation,
appended or deleted ranges: the CRCs catch these) and damage behind recomputed CRCs (header bytes,
header fields, metadata blocks, payload words and the stream table, the embedded stream), which
reaches the deeper checks. tests/test_fuzz_decoder.py runs a few hundred of these in CI.
"""

from __future__ import annotations

import argparse
import json
import resource
import struct
import sys
import time
import zlib
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

from shvc_gui.core import codec, container, image_io
from shvc_gui.core.errors import ShvcError
from shvc_gui.core.model.testing import synthetic_photo

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"


# --- seed inputs ------------------------------------------------------------------------------------
def seed_files(model) -> dict[str, tuple[bytes, image_io.LoadedImage]]:
    """{name: (.shvc bytes, the original image)}."""
    out = {}
    for v in range(1, container.VERSION + 1):
        out[f"golden-v{v}"] = ((DATA / f"golden-v{v}.shvc").read_bytes(), image_io.load_image(DATA / f"golden-v{v}.png"))
    rgb = synthetic_photo(21, 30, seed=7)
    pal = image_io.LoadedImage(image_io.Image.fromarray(rgb).quantize(24), info={"transparency": bytes(range(0, 240, 10))})
    la16 = image_io.LoadedImage((rgb[:, :, :2].astype(np.uint16) * 257), "LA;16", info={"dpi": (72.0, 72.0)})
    for name, img in (("palette", pal), ("la16", la16)):
        out[name] = (codec.compress_image(img, model=model)[0], img)
    return out


# --- mutations --------------------------------------------------------------------------------------
def _fix_header_crc(data: bytearray) -> bytes:
    (hlen,) = struct.unpack_from("<I", data, 8)
    if 12 + hlen + 4 <= len(data):
        struct.pack_into("<I", data, 12 + hlen, zlib.crc32(bytes(data[12:12 + hlen])))
    return bytes(data)


def _interesting(rng, bits: int) -> int:
    top = (1 << bits) - 1
    picks = [0, 1, 2, 3, 31, 32, 33, 64, 255, 256, 4096, 65535, 1 << 20, top, top - 1]
    i = int(rng.integers(0, len(picks) + 1))
    return picks[i] & top if i < len(picks) else int(rng.integers(0, 1 << min(bits, 62)))


def m_bitflip(data, rng):
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 9))):
        i = int(rng.integers(0, len(b)))
        b[i] ^= 1 << int(rng.integers(0, 8))
    return bytes(b)


def m_bytes(data, rng):
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 5))):
        b[int(rng.integers(0, len(b)))] = int(rng.integers(0, 256))
    return bytes(b)


def m_truncate(data, rng):
    return data[:int(rng.integers(0, len(data)))]


def m_splice(data, rng):
    a = int(rng.integers(0, len(data)))
    n = int(rng.integers(1, 64))
    return data[:a] + data[a + n:] if rng.random() < 0.5 else data[:a] + data[a:a + n] * 2 + data[a + n:]


def m_extend(data, rng):
    return data + rng.integers(0, 256, int(rng.integers(1, 100)), dtype=np.uint8).tobytes()


def m_header_bytes(data, rng):
    """Header bytes changed, header CRC recomputed."""
    (hlen,) = struct.unpack_from("<I", data, 8)
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        i = 12 + int(rng.integers(0, hlen))
        b[i] = int(rng.integers(0, 256)) if rng.random() < 0.5 else b[i] ^ (1 << int(rng.integers(0, 8)))
    return _fix_header_crc(b)


FIELDS = {"width": 32, "height": 32, "n_patches": 32, "patch": 16, "group_size": 32, "total_bits": 64,
          "initial_bits": 64, "pixel_crc": 32, "bit_depth": 8}


def m_header_field(data, rng):
    """One header field set to an interesting value (a size, a count, a boundary), CRCs recomputed."""
    header, streams = container.read_container(data)
    name = str(rng.choice(sorted(FIELDS) + ["mode", "method", "variant", "version", "elbo", "size"]))
    if name in FIELDS:
        header = replace(header, **{name: _interesting(rng, FIELDS[name])})
    elif name == "mode":
        header = replace(header, mode=str(rng.choice(sorted(container.MODE_CHANNELS))))
    elif name == "method":
        header = replace(header, method=str(rng.choice(container.METHODS)))
    elif name == "variant":
        header = replace(header, variant=str(rng.choice(["shvc", "arib", "det", ""])))
    elif name == "version":
        header = replace(header, version=int(rng.integers(1, container.VERSION + 1)))
    elif name == "elbo":
        header = replace(header, neg_elbo_bits=float(rng.choice([0.0, 1e300, 5e-324])))
    else:                                        # a larger (or smaller) claimed image, patch count kept consistent
        w, h = int(rng.integers(1, 4096)), int(rng.integers(1, 4096))
        p = header.patch or 64
        header = replace(header, width=w, height=h, n_patches=(-(-w // p)) * (-(-h // p)))
    try:
        return container.write_container(header, streams)
    except (ValueError, ShvcError):              # the writer refuses it: a reader must too
        return m_header_bytes(data, rng)


INFO_VALUES = [b'{"gamma": "x"}', b'{"dpi": [1e400, 1]}', b'{"dpi": [-1, 72]}', b'{"gamma": -1}',
               b'{"gamma": 1e300}', b'{"srgb": "a"}', b'{"transparency": -5}', b'{"transparency": [1, 2, 3]}',
               b'{"transparency": {"bytes": "00ff"}}', b'{"transparency": 300}', b'{"gamma": NaN}',
               b'{"dpi": [72, 72]}', b'[]', b'{"srgb": 1}', b'{"transparency": {"bytes": "' + b"00" * 300 + b'"}}']


def m_metadata(data, rng):
    """Metadata blocks replaced: hostile info values, duplicates, unknown kinds, odd lengths."""
    header, streams = container.read_container(data)
    hb = container._encode_header(replace(header, icc=None, exif=None, text={}, info={}, rebuild_crc=None))
    blocks = []
    for _ in range(int(rng.integers(1, 4))):
        kind = int(rng.choice([1, 2, 3, 4, 4, 4, 5, 200]))
        blob = {4: INFO_VALUES[int(rng.integers(0, len(INFO_VALUES)))], 3: b"key\0value", 5: b"\0\0\0\0"}.get(
            kind, rng.integers(0, 256, int(rng.integers(0, 40)), dtype=np.uint8).tobytes())
        blocks.append(struct.pack("<BI", kind, len(blob)) + blob)
    hb = hb[:-2] + struct.pack("<H", len(blocks)) + b"".join(blocks)
    table = [struct.pack("<QI", len(s), zlib.crc32(s)) for s in streams]
    return (container.PREAMBLE.pack(container.MAGIC, header.version, 0, len(hb)) + hb + struct.pack("<I", zlib.crc32(hb))
            + struct.pack("<I", len(streams)) + b"".join(table) + b"".join(streams))


def _with_streams(data, change):
    header, streams = container.read_container(data)
    return container.write_container(header, change(list(streams)))


def m_payload_word(data, rng):
    """A word of the model payload (its table or body) changed, stream CRCs recomputed."""
    def change(streams):
        s = bytearray(streams[0] or streams[1])
        if len(s) >= 4:
            i = int(rng.integers(0, min(len(s) // 4, 8))) if rng.random() < 0.5 else int(rng.integers(0, len(s) // 4))
            struct.pack_into("<I", s, 4 * i, _interesting(rng, 32))
        streams[0 if streams[0] else 1] = bytes(s)
        return streams
    return _with_streams(data, change)


def m_stream_bytes(data, rng):
    """Bytes of a payload stream flipped or cut, CRCs recomputed."""
    def change(streams):
        k = int(rng.integers(0, len(streams)))
        s = bytearray(streams[k])
        if s and rng.random() < 0.7:
            for _ in range(int(rng.integers(1, 4))):
                s[int(rng.integers(0, len(s)))] ^= 1 << int(rng.integers(0, 8))
        else:
            s = s[:int(rng.integers(0, len(s) + 1))]
        streams[k] = bytes(s)
        return streams
    return _with_streams(data, change)


MUTATIONS = {"bitflip": m_bitflip, "bytes": m_bytes, "truncate": m_truncate, "splice": m_splice,
             "extend": m_extend, "header-bytes*": m_header_bytes, "header-field*": m_header_field,
             "metadata*": m_metadata, "payload-word*": m_payload_word, "stream-bytes*": m_stream_bytes}
WEIGHTS = {"bitflip": 3, "bytes": 2, "truncate": 1, "splice": 1, "extend": 1, "header-bytes*": 3,
           "header-field*": 3, "metadata*": 2, "payload-word*": 2, "stream-bytes*": 2}


def mutate(data: bytes, seed: int, index: int) -> tuple[str, bytes]:
    """The ``index``-th mutation of ``data`` for ``seed``: (kind, bytes). Deterministic."""
    rng = np.random.default_rng([seed, index])
    names = sorted(MUTATIONS)
    p = np.array([WEIGHTS[n] for n in names], float)
    kind = names[int(rng.choice(len(names), p=p / p.sum()))]
    return kind, MUTATIONS[kind](data, rng)


# --- outcomes ---------------------------------------------------------------------------------------
def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _model_of(data: bytes, models):
    """The model among ``models`` whose weights the file names (the first one when none does, or the
    header cannot be read: the decoder then reports the missing weights or the damage itself)."""
    try:
        sha = codec.read_header(data).weights_sha256
    except ShvcError:
        return models[0]
    return next((m for m in models if m.sha256 == sha), models[0])


def outcome(data: bytes, original: image_io.LoadedImage, models) -> str:
    """'exact', or 'ErrorClass: category' for a clean error; raises anything else. ``models``: the
    model of the seed files, or a list of them (each file is decoded with the one it names)."""
    models = list(models) if isinstance(models, (list, tuple)) else [models]
    try:
        img, _ = codec.decompress_bytes(data, model=_model_of(data, models))
    except ShvcError as exc:
        msg = str(exc)
        if "\n" in msg or not msg.strip():
            raise AssertionError(f"error text is not one sentence: {msg!r}") from None
        cats = ("not a .shvc file", "truncated", "newer", "beyond what shvc accepts", "corrupt", "checksum",
                "weights")
        return f"{type(exc).__name__}: " + next((c for c in cats if c in msg), "other")
    if not img.same_pixels(original):
        raise AssertionError("decoded to different pixels without an error")
    fmt = image_io.preferred_format(img.mode)
    try:                                         # what decodes must also be writable (`shvc decompress`)
        image_io.encode_image(img, fmt)
    except Exception as exc:  # noqa: BLE001 - a clean refusal here is a defect too: the reader let it through
        raise AssertionError(f"decoded, but cannot be written as {fmt}: {type(exc).__name__}: {exc}") from None
    return "exact"


def run(count: int, seed: int, models: list, max_seconds: float, max_mb: float, log=print) -> tuple[Counter, list]:
    seeds = seed_files(models[0])
    for data, original in seeds.values():                      # warm up: models, tables, imports
        assert outcome(data, original, models) == "exact"
    counts, defects, slowest = Counter(), [], (0.0, "")
    names = sorted(seeds)
    for i in range(count):
        name = names[i % len(names)]
        data, original = seeds[name]
        kind, bad = mutate(data, seed, i)
        before, t0 = _peak_mb(), time.perf_counter()
        try:
            result = outcome(bad, original, models)
        except Exception as exc:  # noqa: BLE001 - every other outcome is a defect to report
            result = "DEFECT"
            defects.append(f"{name} {kind} #{i}: {type(exc).__name__}: {str(exc)[:200]}")
        dt, grew = time.perf_counter() - t0, _peak_mb() - before
        if dt > max_seconds or grew > max_mb:
            defects.append(f"{name} {kind} #{i}: {dt:.1f} s, peak memory +{grew:.0f} MB ({result})")
        slowest = max(slowest, (dt, f"{name} {kind} #{i}"))
        counts[(kind, result)] += 1
        if (i + 1) % 250 == 0:
            print(f"{i + 1}/{count} done, {len(defects)} defect(s)", file=sys.stderr, flush=True)
    log(f"slowest: {slowest[0]:.2f} s ({slowest[1]})")
    return counts, defects


def table(counts: Counter) -> str:
    kinds = sorted({k for k, _ in counts})
    results = sorted({r for _, r in counts}, key=lambda r: (r != "exact", r))
    rows = ["| outcome | " + " | ".join(kinds) + " | total |", "|---" * (len(kinds) + 2) + "|"]
    for r in results:
        n = [counts[(k, r)] for k in kinds]
        rows.append(f"| {r} | " + " | ".join(str(x) for x in n) + f" | {sum(n)} |")
    rows.append("| **total** | " + " | ".join(str(sum(counts[(k, r)] for r in results)) for k in kinds)
                + f" | {sum(counts.values())} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=3000, help="mutations to try (spread over the seed inputs)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weights", nargs="+", default=[str(DATA / "trained-tiny.pt"), str(DATA / "trained-tiny-det.pt")],
                    help="the models of the golden files")
    ap.add_argument("--max-seconds", type=float, default=30.0, help="a decode slower than this is a defect")
    ap.add_argument("--max-mb", type=float, default=512.0, help="peak memory growth above this is a defect")
    ap.add_argument("--json", help="also write the counts to this file")
    args = ap.parse_args(argv)
    from shvc_gui.core.weights import load_integer_weights
    models = [load_integer_weights(Path(w)) for w in args.weights]
    t0 = time.perf_counter()
    counts, defects = run(args.count, args.seed, models, args.max_seconds, args.max_mb)
    print(f"{args.count} mutations (seed {args.seed}) in {time.perf_counter() - t0:.0f} s; "
          "kinds marked * recompute the CRCs\n")
    print(table(counts))
    if args.json:
        Path(args.json).write_text(json.dumps([{"kind": k, "outcome": r, "count": n} for (k, r), n in counts.items()],
                                              indent=1))
    for d in defects:
        print("DEFECT:", d, file=sys.stderr)
    return 1 if defects else 0


if __name__ == "__main__":
    raise SystemExit(main())
