"""`shvc bench` output (progress, aligned table, best marked), --skip-larger, help with defaults."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from PIL import Image

from shvc_gui import cli
from shvc_gui.core import baselines
from shvc_gui.core.model.testing import synthetic_photo
from shvc_gui.core.sizing import SizeChange, smallest

W = ["--weights", str(Path(__file__).parent / "data" / "trained-tiny.pt")]


def test_bench_reports_progress_and_an_aligned_table(tmp_path, capsys):
    for i, (h, w) in enumerate([(40, 56), (48, 48)]):
        Image.fromarray(synthetic_photo(h, w, 70 + i)).save(tmp_path / f"p{i}.png")
    assert cli.main(["bench", str(tmp_path), "--codecs", "shvc,png,webp,flif"] + W) == 0
    out, err = capsys.readouterr()
    assert err.startswith("Benchmarking 2 images")
    assert re.search(r"\[1/2\] p0\.png: \d+ s so far, about \d+ s left", err)
    assert "[2/2] p1.png" in err
    if not baselines.available("flif"):
        assert "not installed: flif" in err
    lines = out.splitlines()
    table = lines[:lines.index("") if "" in lines else len(lines)]
    header, rows = table[0], [ln for ln in table[2:] if not ln.startswith("-")][:-1]     # last: the legend
    assert [r.split()[0] for r in rows] == ["p0.png", "p1.png", "total"]
    codecs = header.split()[1:]
    assert codecs[0] == "shvc" and ("flif" in codecs) == baselines.available("flif")
    for row in rows:
        assert len(row) == len(header), (row, header)                   # aligned
        values = re.findall(r"(\d+\.\d{3})(\*?)", row)
        assert len(values) == len(codecs)                                 # three decimals each
        best = min(float(v) for v, _ in values)
        assert [m for _, m in values].count("*") >= 1
        assert all((m == "*") == (float(v) == best) for v, m in values)  # the lowest is marked


def test_skip_larger_keeps_the_original_and_names_the_smallest(tmp_path, capsys):
    src = tmp_path / "small.jpg"
    Image.fromarray(synthetic_photo(48, 48, 80)).save(src, quality=30)
    assert cli.main(["compress", str(src), "--skip-larger"] + W) == 0
    out = capsys.readouterr().out
    assert not (tmp_path / "small.shvc").exists()
    assert "kept the original" in out and "grew by" in out and "Smallest: the original file" in out
    assert cli.main(["compress", str(src)] + W) == 0                      # without the flag it is written
    assert (tmp_path / "small.shvc").stat().st_size > src.stat().st_size


def test_size_change_words():
    assert SizeChange(1000, 951).text() == "saved 4.9 %"
    assert SizeChange(1000, 1383).text() == "grew by 38.3 %"
    assert SizeChange(1000, 4400).text() == "grew by 340 %"
    assert SizeChange(1000, 1000).text() == "same size"
    assert "-" not in SizeChange(100, 5000).describe()
    assert smallest({"original": 500, "shvc": 900, "png": 400, "flif": None}) == ("png", 400)
    assert smallest({"original": 400, "png": 400}) == ("original", 400)


def test_every_option_of_every_command_has_help_and_its_default():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sp in sub.choices.items():
        if name == "train":                 # its steps have their own parsers (shvc train WHAT --help)
            continue
        text = sp.format_help()
        for action in sp._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, (name, action.dest)
            if action.option_strings and action.default not in (None, False):
                assert f"(default: {action.default})" in " ".join(text.split()), (name, action.dest)
            elif action.option_strings and action.default is None:
                assert "default" in action.help, (name, action.dest)     # says what happens without it
