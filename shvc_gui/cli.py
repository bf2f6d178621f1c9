"""The ``shvc`` command line: compress, decompress, info, bench, train.

Exit codes: 0 success, 1 some files failed (the others were still processed), 2 usage errors,
130 interrupted (Ctrl+C), 143 terminated (SIGTERM); no partial output file is left behind. Errors
are one line on stderr, never a traceback. ``shvc info`` reads headers without loading torch.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

from .core.errors import ShvcError
from .core.files import clashes as _clashes
from .core.files import walk as _walk
from .core.files import walk_relative as _walk_relative

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143
TRAIN_COMMANDS = {"corpus": "corpus", "run": "loop", "plot": "plot", "export": "export"}


def _err(msg: str) -> None:
    print(f"shvc: error: {msg}", file=sys.stderr)


def _bar(total: int, desc: str):
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="patch", leave=False, dynamic_ncols=True)


def _progress(bar):
    def cb(ev):
        if bar is not None and ev.stage in ("compress", "decompress"):
            bar.total = ev.total
            bar.n = ev.done
            bar.refresh()
    return cb


def _load_weights(path):
    if not path:
        return None
    from .core.weights import load_integer_weights
    return load_integer_weights(Path(path))


def _compress_targets(args, files) -> list[tuple[Path, Path]]:
    """(source, output) per input: -o (a folder: NAME.shvc in it); else NAME.shvc beside the source,
    or under --out-dir at the path it has below the folder it was found in."""
    from .core import codec
    if args.output:
        return [(src, codec._output(src, args.output, ".shvc")) for src, _ in files]
    if args.out_dir:
        return [(src, Path(args.out_dir) / rel.parent / (rel.stem + ".shvc")) for src, rel in files]
    return [(src, codec.default_output(src)) for src, _ in files]


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ShvcError(f"The output folder {folder} cannot be created ({exc.strerror or exc}).") from None


def cmd_compress(args) -> int:
    from .core import codec, image_io
    files = _walk_relative(args.inputs, image_io.READ_SUFFIXES)
    if args.output and len(files) != 1:
        _err("-o/--output takes exactly one input; use --out-dir for several.")
        return EXIT_USAGE
    targets = _compress_targets(args, files)
    clash = _clashes(targets)
    for dst, srcs in clash.items():             # one command never overwrites its own output
        _err(f"{' and '.join(map(str, srcs))} would all be written to {dst}; compress them in separate "
             "commands or folders.")
    if clash:
        return EXIT_USAGE
    if args.out_dir:
        _make_folder(Path(args.out_dir))
    model = _load_weights(args.weights)
    failed = 0
    for src, dst in targets:
        bar = _bar(1, src.name)
        try:
            if args.out_dir:
                _make_folder(dst.parent)
            r = codec.compress_file(src, dst, model=model, variant=args.variant, device=args.device,
                                    batch_size=args.batch_size, force=args.force, progress=_progress(bar))
        except (ShvcError, ValueError) as exc:
            failed += 1
            _err(f"{src}: {exc}")
            continue
        finally:
            if bar is not None:
                bar.close()
        print(f"{src} -> {dst}: {r.n_bytes:,} bytes, {r.bpd:.3f} bpd, initial bits {r.initial_bits:,} "
              f"({100 * r.overhead_fraction:.2f} %), {r.method}, {r.seconds:.1f} s")
    return EXIT_FAILED if failed else EXIT_OK


def cmd_decompress(args) -> int:
    from .core import codec
    files = [src for src, _ in _walk_relative(args.inputs, {".shvc"})]
    if args.output and len(files) != 1:
        _err("-o/--output takes exactly one input.")
        return EXIT_USAGE
    model = _load_weights(args.weights)
    failed = 0
    for src in files:
        bar = _bar(1, src.name)
        try:
            r = codec.decompress_file(src, args.output, fmt=args.format, model=model, device=args.device,
                                      batch_size=args.batch_size, force=args.force, progress=_progress(bar))
        except ShvcError as exc:
            failed += 1
            _err(f"{src}: {exc}")
            continue
        finally:
            if bar is not None:
                bar.close()
        print(f"{src} -> {r.dst}: {r.header.width}x{r.header.height} {r.header.mode}, {r.seconds:.1f} s")
    return EXIT_FAILED if failed else EXIT_OK


def cmd_info(args) -> int:
    from .core import container                  # headers only: no numpy, Pillow or torch
    failed, docs = 0, []
    for name in args.inputs:
        try:
            d = container.describe(container.read_header_file(Path(name)), Path(name))
        except ShvcError as exc:
            failed += 1
            _err(f"{name}: {exc}")
            continue
        if args.json:
            docs.append(d)
        else:
            for k, v in d.items():
                print(f"{k:>17}: {v}")
    if args.json and docs:                       # one JSON document: an object, or an array for several files
        print(json.dumps(docs if len(args.inputs) > 1 else docs[0], indent=2, allow_nan=False))
    return EXIT_FAILED if failed else EXIT_OK


def cmd_bench(args) -> int:
    import numpy as np

    from .core import baselines, codec, image_io
    codecs = [c.strip() for c in args.codecs.split(",") if c.strip()]
    unknown = [c for c in codecs if c != "shvc" and c not in baselines.CODECS]
    if unknown:
        _err(f"unknown codec(s): {', '.join(unknown)}")
        return EXIT_USAGE
    model = _load_weights(args.weights)
    if "shvc" in codecs and model is None:
        from .core.weights import load_model
        try:
            model = load_model(variant=args.variant)
        except ShvcError as exc:
            _err(str(exc))
            return EXIT_FAILED
    items = []
    for src in _walk(args.inputs, image_io.READ_SUFFIXES):
        try:
            rgb = np.asarray(image_io.load_image(src).pil.convert("RGB"))
        except ShvcError as exc:
            _err(f"{src}: {exc}")
            continue
        if args.tiles:
            p = 64
            items += [(f"{src}#{r},{c}", np.ascontiguousarray(rgb[r:r + p, c:c + p]))
                      for r in range(0, rgb.shape[0] - p + 1, p) for c in range(0, rgb.shape[1] - p + 1, p)]
        else:
            items.append((str(src), rgb))
    rows, totals, dims = [], {c: 0 for c in codecs}, 0
    failed = 0
    for name, rgb in items:
        row = {"path": name, "dims": list(rgb.shape), "bpd": {}, "seconds": {}}
        dims += rgb.size
        for c in codecs:
            if c == "shvc":
                t0 = time.perf_counter()
                img = image_io.LoadedImage(image_io.Image.fromarray(rgb))
                data, res = codec.compress_image(img, model=model, variant=args.variant, device=args.device,
                                                 batch_size=args.batch_size)
                t1 = time.perf_counter()
                back, _ = codec.decompress_bytes(data, model=model, device=args.device, batch_size=args.batch_size)
                t2 = time.perf_counter()
                ok = np.array_equal(np.asarray(back.pil), rgb)
                n = len(data)
                enc_s, dec_s = t1 - t0, t2 - t1
            else:
                r = baselines.measure(c, rgb)
                if r.n_bytes is None:
                    row["bpd"][c] = None
                    row["seconds"][c] = None
                    totals[c] = None
                    continue
                ok, n, enc_s, dec_s = r.lossless_ok, r.n_bytes, r.encode_s, r.decode_s
            if not ok:
                failed += 1
                _err(f"{name}: {c} did not round-trip exactly")
            row["bpd"][c] = round(8 * n / rgb.size, 4)
            row["seconds"][c] = {"encode": round(enc_s, 3), "decode": round(dec_s, 3)}
            if totals[c] is not None:
                totals[c] += n
        rows.append(row)
        if not args.quiet:
            print(f"{name:60.60} " + " ".join(f"{c}={row['bpd'][c] if row['bpd'][c] is not None else 'n/a'}"
                                               for c in codecs))
    total = {"bpd": {c: (round(8 * v / dims, 4) if v is not None and dims else None) for c, v in totals.items()}}
    print("\n| codec | total bpd |\n|---|---|")
    for c in codecs:
        v = total["bpd"][c]
        print(f"| {c} | {v if v is not None else 'not installed'} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"images": rows, "total": total}, indent=1))
    return EXIT_FAILED if failed else EXIT_OK


def cmd_train(args, rest) -> int:
    import importlib
    mod = importlib.import_module(f"shvc_gui.train.{TRAIN_COMMANDS[args.what]}")
    return mod.main(rest) or 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="shvc", description="Lossless image compression with SHVC (bits-back ANS).")
    sub = p.add_subparsers(dest="command", required=True)

    def coding_opts(sp):
        sp.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
        sp.add_argument("--batch-size", type=int, default=None, help="patches per network call / coding group")
        sp.add_argument("--weights", help="a weights .pt file instead of the shipped model")

    c = sub.add_parser("compress", help="image(s) or folders -> .shvc")
    c.add_argument("inputs", nargs="+")
    g = c.add_mutually_exclusive_group()
    g.add_argument("-o", "--output")
    g.add_argument("--out-dir")
    c.add_argument("--variant", choices=["shvc", "arib", "det"])
    c.add_argument("--force", action="store_true", help="replace existing .shvc files")
    coding_opts(c)
    d = sub.add_parser("decompress", help=".shvc -> the original image (PNG by default)")
    d.add_argument("inputs", nargs="+")
    d.add_argument("-o", "--output")
    d.add_argument("--format", choices=["png", "tiff", "webp", "bmp"])
    d.add_argument("--force", action="store_true")
    coding_opts(d)
    i = sub.add_parser("info", help="show a .shvc header")
    i.add_argument("inputs", nargs="+")
    i.add_argument("--json", action="store_true")
    b = sub.add_parser("bench", help="compare shvc with PNG, WebP, JPEG-XL and FLIF")
    b.add_argument("inputs", nargs="+")
    b.add_argument("--codecs", default="shvc,png,webp,jxl,flif")
    b.add_argument("--json")
    b.add_argument("--tiles", action="store_true", help="bench every full 64x64 tile as its own image")
    b.add_argument("--variant", choices=["shvc", "arib", "det"])
    b.add_argument("--quiet", action="store_true")
    coding_opts(b)
    t = sub.add_parser("train", help="corpus | run | plot | export (see `shvc train WHAT --help`)", add_help=False)
    t.add_argument("what", choices=sorted(TRAIN_COMMANDS))
    return p


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl+C so that every temporary file is removed on the way out."""


def _on_sigterm(signum, frame):
    raise _Terminated()


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    previous = None
    try:
        try:
            previous = signal.signal(signal.SIGTERM, _on_sigterm)
        except ValueError:                       # not the main thread: leave signals alone
            pass
        return _main(argv)
    except _Terminated:
        _err("terminated; no partial file was left behind.")
        return EXIT_TERMINATED
    except KeyboardInterrupt:                    # also while the model stack is still loading
        _err("interrupted; no partial file was left behind.")
        return EXIT_INTERRUPTED
    except BrokenPipeError:                      # stdout closed early (`shvc info ... | head`)
        sys.stdout = None
        return EXIT_FAILED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: list) -> int:
    parser = build_parser()
    try:
        if argv[:1] == ["train"] and len(argv) > 1 and argv[1] in TRAIN_COMMANDS:
            return cmd_train(argparse.Namespace(what=argv[1]), argv[2:])
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code not in (0, None) else EXIT_OK
    try:
        if args.command != "info":
            from .core.codec import configure_threads
            configure_threads()
        return {"compress": cmd_compress, "decompress": cmd_decompress, "info": cmd_info,
                "bench": cmd_bench}[args.command](args)
    except ShvcError as exc:
        _err(str(exc))
        return EXIT_FAILED


if __name__ == "__main__":
    raise SystemExit(main())
