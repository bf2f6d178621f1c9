"""``shvc train plot RUN_DIR [-o curve.png]``: the learning curve (train/validation BPD) as a PNG;
a corpus with native crops adds their validation (``val-native``).

The x-axis is the training pixels seen (logarithmic) when the log has them, so that runs resumed
over several sessions add up; older logs without that column are drawn against steps."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


def read_log(path: Path) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {"train": [], "val": []}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            rows.setdefault(row["split"], []).append({k: float(v) for k, v in row.items() if k != "split"})
    return rows


def plot(log_path: Path, out_png: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_log(log_path)
    key = "pixels" if all("pixels" in x for r in rows.values() for x in r) and rows.get("train") else "step"
    fig, (ax, axz) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    for split, style in (("train", "-"), ("val", "o-"), ("val-native", "s--")):
        r = rows.get(split, [])
        if r:
            steps = [x[key] for x in r]
            ax.plot(steps, [x["bpd"] for x in r], style, label=f"{split} bpd", ms=3)
            axz.plot(steps, [x["bpd_z"] for x in r], style, label=f"{split} z part", ms=3)
            axz.plot(steps, [x["penalty"] for x in r], style, label=f"{split} ArIB penalty", ms=3, alpha=0.6)
    for a in (ax, axz):
        a.set_xlabel("training pixels seen" if key == "pixels" else "step")
        if key == "pixels":
            a.set_xscale("log")
    ax.set_ylabel("bits per dimension")
    ax.grid(alpha=0.3)
    ax.legend()
    axz.set_ylabel("bits per dimension")
    axz.grid(alpha=0.3)
    axz.legend()
    fig.suptitle(log_path.parent.name)
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)
    return out_png


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="shvc train plot", description=__doc__)
    p.add_argument("run", help="run folder holding log.csv")
    p.add_argument("-o", "--out", help="PNG to write (default RUN/curve.png)")
    args = p.parse_args(argv)
    run = Path(args.run)
    out = Path(args.out) if args.out else run / "curve.png"
    print(plot(run / "log.csv", out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
