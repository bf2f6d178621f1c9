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
from pathlib import Path

from .core.errors import ShvcError
from .core.files import clashes as _clashes
from .core.files import walk_relative as _walk_relative

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143
TRAIN_COMMANDS = {"corpus": "corpus", "run": "loop", "plot": "plot", "export": "export", "eval": "evaluate"}


def _err(msg: str) -> None:
    print(f"shvc: error: {msg}", file=sys.stderr)


def _text(exc: BaseException) -> str:
    """The core's sentence, with the option that helps where there is one (the core names none)."""
    from .core.errors import DeviceError, ExistsError
    if isinstance(exc, ExistsError):
        return f"{exc} Use --force to replace it."
    if isinstance(exc, DeviceError):
        return f"{exc} (--device cpu or auto)"
    return str(exc)


def _bar(total: int, desc: str):
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="patch", unit_scale=True, leave=False, dynamic_ncols=True)


def _progress(bar):
    def cb(ev):
        if bar is not None and ev.stage in ("compress", "decompress"):
            bar.unit = (ev.message or bar.unit).split(" ")[0]          # "patch 3/20" or "pixel 4096/1000000"
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
    from .core import image_io, sizing
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
            r, written = sizing.compress_unless_larger(
                src, dst, skip_larger=args.skip_larger, model=model, variant=args.variant, device=args.device,
                batch_size=args.batch_size, force=args.force, progress=_progress(bar))
        except (ShvcError, ValueError) as exc:
            failed += 1
            _err(f"{src}: {_text(exc)}")
            continue
        finally:
            if bar is not None:
                bar.close()
        if not written:
            print(f"{src}: kept the original, no file written: {sizing.kept_note(src, r)}")
            continue
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
            _err(f"{src}: {_text(exc)}")
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
            _err(f"{name}: {_text(exc)}")
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
    from . import bench
    from .core import baselines
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
    return bench.run(args, codecs, model, _err)


def cmd_train(args, rest) -> int:
    import importlib
    mod = importlib.import_module(f"shvc_gui.train.{TRAIN_COMMANDS[args.what]}")
    return mod.main(rest) or 0


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: X)" after every option that has a default worth saying (not None/False:
    those options say in their help what happens without them)."""

    def _get_help_string(self, action):
        if action.default in (None, False):
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="shvc", description="Lossless image compression with SHVC (bits-back ANS).",
                                formatter_class=_Help)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def parser(name, **kw):
        return sub.add_parser(name, formatter_class=_Help, **kw)

    def coding_opts(sp):
        sp.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="where the networks run; auto: the GPU when there is one (never changes the bytes)")
        sp.add_argument("--batch-size", type=int, default=None,
                        help="latent variants: patches coded together in one group, recorded in the file "
                             "(default: 64); det: network tiles per call (never changes the bytes)")
        sp.add_argument("--weights", help="a weights .pt file instead of the shipped model (default: the "
                                          "shipped model, weights/manifest.json)")

    def variant_opt(sp):
        sp.add_argument("--variant", choices=["shvc", "arib", "det"],
                        help="model variant: plain bits-back, with ArIB, or deterministic (default: the "
                             "shipped model's own)")

    c = parser("compress", help="image(s) or folders -> .shvc", description="Compress images (folders are "
               "walked) into NAME.shvc files beside them or in --out-dir.")
    c.add_argument("inputs", nargs="+", help="image files or folders")
    g = c.add_mutually_exclusive_group()
    g.add_argument("-o", "--output", help="the .shvc file to write (one input only; default: NAME.shvc)")
    g.add_argument("--out-dir", help="folder for the .shvc files (default: beside each image)")
    variant_opt(c)
    c.add_argument("--force", action="store_true", help="replace existing .shvc files (default: refuse)")
    c.add_argument("--skip-larger", action="store_true",
                   help="keep the original and write nothing when the .shvc file would be larger; says "
                        "which codec would have been smallest")
    coding_opts(c)
    d = parser("decompress", help=".shvc -> the original image (PNG by default)",
               description="Decode .shvc files into the exact original pixels and metadata.")
    d.add_argument("inputs", nargs="+", help=".shvc files or folders")
    d.add_argument("-o", "--output", help="the image file to write (one input only; default: NAME.png or the "
                                          "first lossless format that holds the original's mode)")
    d.add_argument("--format", choices=["png", "tiff", "webp", "bmp"],
                   help="image format to write (default: from the suffix of -o, else PNG when it can hold "
                        "the image)")
    d.add_argument("--force", action="store_true", help="replace existing files (default: refuse)")
    coding_opts(d)
    i = parser("info", help="show a .shvc header", description="Show a .shvc file's header without decoding it.")
    i.add_argument("inputs", nargs="+", help=".shvc files")
    i.add_argument("--json", action="store_true", help="print JSON instead of aligned text")
    b = parser("bench", help="compare shvc with PNG, WebP, JPEG-XL and FLIF",
               description="Measure bits per dimension of each codec on the same pixels (every codec "
                           "decoded and checked pixel for pixel). Progress and the time left go to stderr, "
                           "the table to stdout.")
    b.add_argument("inputs", nargs="+", help="image files or folders")
    b.add_argument("--codecs", default="shvc,png,webp,jxl,flif",
                   help="comma-separated codecs (shvc, png, webp, jxl, jxl-e9, flif); those not installed "
                        "are reported and left out")
    b.add_argument("--json", help="also write the figures of every image to this JSON file (default: none)")
    b.add_argument("--tiles", action="store_true", help="bench every full 64x64 tile as its own image")
    variant_opt(b)
    b.add_argument("--quiet", action="store_true", help="print only the total row, no row per image")
    coding_opts(b)
    t = sub.add_parser("train", help="corpus | run | plot | export | eval (see `shvc train WHAT --help`)", add_help=False)
    t.add_argument("what", choices=sorted(TRAIN_COMMANDS), help="the training step")
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
            from .core.runtime import configure_threads
            configure_threads()
        return {"compress": cmd_compress, "decompress": cmd_decompress, "info": cmd_info,
                "bench": cmd_bench}[args.command](args)
    except ShvcError as exc:
        _err(_text(exc))
        return EXIT_FAILED


if __name__ == "__main__":
    raise SystemExit(main())
