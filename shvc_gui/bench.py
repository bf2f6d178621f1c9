"""``shvc bench``: shvc against the classic lossless codecs on the same pixels.

Every codec encodes, decodes and is checked pixel for pixel. While it runs, a line says what is
being measured and a progress bar (by pixels, so big images weigh more) gives the time left; then an
aligned table with three decimals per bpd and the best codec of each row marked with ``*``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from .core.errors import ShvcError

TILE = 64
BEST = "*"


def load_items(paths, tiles: bool, err) -> list[tuple[str, np.ndarray]]:
    """(name, RGB uint8 array) per image, or per full 64x64 tile of each image with ``tiles``."""
    from .core import image_io
    items = []
    for src in paths:
        try:
            rgb = np.asarray(image_io.load_image(src).pil.convert("RGB"))
        except ShvcError as exc:
            err(f"{src}: {exc}")
            continue
        if tiles:
            items += [(f"{src.name}#{r},{c}", np.ascontiguousarray(rgb[r:r + TILE, c:c + TILE]))
                      for r in range(0, rgb.shape[0] - TILE + 1, TILE)
                      for c in range(0, rgb.shape[1] - TILE + 1, TILE)]
        else:
            items.append((src.name, rgb))
    return items


def measure_shvc(rgb, model, args) -> tuple[int, float, float, bool]:
    from .core import codec, image_io
    t0 = time.perf_counter()
    img = image_io.LoadedImage(image_io.Image.fromarray(rgb))
    data, _ = codec.compress_image(img, model=model, variant=args.variant, device=args.device,
                                   batch_size=args.batch_size)
    t1 = time.perf_counter()
    back, _ = codec.decompress_bytes(data, model=model, device=args.device, batch_size=args.batch_size)
    t2 = time.perf_counter()
    return len(data), t1 - t0, t2 - t1, bool(np.array_equal(np.asarray(back.pil), rgb))


def format_table(names: list[str], rows: list[dict], codecs: list[str], total_name: str, total: dict) -> str:
    """An aligned text table: one row per image then the total, bpd with three decimals, the lowest
    of each row marked with ``*`` ("n/a" where a codec gave no figure)."""
    name_w = min(48, max(len(n) for n in names + [total_name, "image"]))
    col_w = max(8, max(len(c) for c in codecs) + 1)

    def line(name: str, bpd: dict) -> str:
        known = {c: v for c, v in bpd.items() if v is not None}
        best = min(known.values()) if known else None
        cells = []
        for c in codecs:
            v = bpd.get(c)
            text = "n/a " if v is None else f"{v:.3f}" + (BEST if v <= best + 1e-12 else " ")
            cells.append(text.rjust(col_w + 1))
        label = name if len(name) <= name_w else name[: name_w - 1] + "…"
        return f"{label:<{name_w}}" + "".join(cells)

    header = f"{'image':<{name_w}}" + "".join(f"{c:>{col_w}} " for c in codecs)
    out = [header, "-" * len(header)]
    out += [line(n, r) for n, r in zip(names, rows)]
    out += ["-" * len(header), line(total_name, total),
            f"bits per dimension (lower is better); {BEST} marks the best codec of each row"]
    return "\n".join(out)


def run(args, codecs: list[str], model, err) -> int:
    from .core import baselines, image_io
    from .core.files import walk
    items = load_items(walk(args.inputs, image_io.READ_SUFFIXES), args.tiles, err)
    if not items:
        err("no images to bench.")
        return 1
    missing = [c for c in codecs if c != "shvc" and not baselines.available(c)]
    shown = [c for c in codecs if c not in missing]
    pixels = sum(rgb.shape[0] * rgb.shape[1] for _, rgb in items)
    print(f"Benchmarking {len(items)} image{'s' * (len(items) != 1)} ({pixels / 1e6:.2f} MP) with "
          f"{', '.join(shown)}" + (f"; not installed: {', '.join(missing)}" if missing else "") + ".",
          file=sys.stderr, flush=True)
    bar = _progress(pixels)
    rows, bpd_rows, names = [], [], []
    totals = {c: 0 for c in shown}
    seconds = {c: [0.0, 0.0] for c in shown}
    dims, failed, t_start, done_px = 0, 0, time.perf_counter(), 0
    for i, (name, rgb) in enumerate(items):
        if bar is not None:
            bar.set_postfix_str(f"image {i + 1}/{len(items)}: {name}", refresh=True)
        row = {"path": name, "dims": list(rgb.shape), "bpd": {c: None for c in missing},
               "seconds": {c: None for c in missing}}
        dims += rgb.size
        row_bpd = {}
        for c in shown:
            if c == "shvc":
                n, enc_s, dec_s, ok = measure_shvc(rgb, model, args)
            else:
                r = baselines.measure(c, rgb)
                n, enc_s, dec_s, ok = r.n_bytes, r.encode_s, r.decode_s, r.lossless_ok
            if not ok:
                failed += 1
                err(f"{name}: {c} did not round-trip exactly")
            row_bpd[c] = 8 * n / rgb.size
            row["bpd"][c] = round(row_bpd[c], 4)
            row["seconds"][c] = {"encode": round(enc_s, 3), "decode": round(dec_s, 3)}
            totals[c] += n
            seconds[c][0] += enc_s
            seconds[c][1] += dec_s
        rows.append(row)
        names.append(name)
        bpd_rows.append(row_bpd)
        done_px += rgb.shape[0] * rgb.shape[1]
        if bar is not None:
            bar.update(rgb.shape[0] * rgb.shape[1])
        elif not args.quiet:
            elapsed = time.perf_counter() - t_start
            left = elapsed * (pixels - done_px) / done_px
            print(f"[{i + 1}/{len(items)}] {name}: {elapsed:.0f} s so far, about {left:.0f} s left",
                  file=sys.stderr, flush=True)
    if bar is not None:
        bar.close()
    total_bpd = {c: 8 * totals[c] / dims for c in shown}
    if args.quiet:
        names, bpd_rows = [], []
    print(format_table(names, bpd_rows, shown, f"total ({len(items)} images)", total_bpd))
    print(f"\n{'codec':<8}{'encode s':>10}{'decode s':>10}")
    for c in shown:
        print(f"{c:<8}{seconds[c][0]:>10.2f}{seconds[c][1]:>10.2f}")
    if args.json:
        total = {"bpd": {c: (round(total_bpd[c], 4) if c in total_bpd else None) for c in codecs}}
        Path(args.json).write_text(json.dumps({"images": rows, "total": total}, indent=1))
    return 1 if failed else 0


def _progress(pixels: int):
    """A tqdm bar over pixels with the time left, on a terminal; None otherwise (a line per image)."""
    if not sys.stderr.isatty():
        return None
    import shutil

    from tqdm import tqdm
    width = shutil.get_terminal_size((100, 24)).columns
    return tqdm(total=pixels, unit="px", unit_scale=True, leave=False, file=sys.stderr, mininterval=0.5,
                ncols=width if width > 20 else 100,
                bar_format="{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} px [{elapsed}<{remaining}] {postfix}")
