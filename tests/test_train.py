"""Training: a step lowers the loss, resume is exact, export/load checks sha256, torchrun with 2 CPUs."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from shvc_gui.core.errors import WeightsError
from shvc_gui.core.model.testing import synthetic_photo
from shvc_gui.core.weights import load_model
from shvc_gui.train.corpus import build_from_images
from shvc_gui.train.loop import Trainer, load_checkpoint, parse_args, hparams_from_args

TINY = ["--width", "8", "--depth", "2", "--latent-layers", "2", "--z-channels", "2", "--mixtures", "2",
        "--crop", "32", "--batch", "4", "--warmup", "2", "--steps", "50"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    src = d / "src"
    src.mkdir()
    paths = []
    for i in range(16):
        img = synthetic_photo(256, 288, seed=i)
        noisy = np.clip(img.astype(int) + np.random.default_rng(i).integers(-12, 13, img.shape), 0, 255)
        p = src / f"pic{i}.png"
        Image.fromarray(noisy.astype(np.uint8)).save(p)
        paths.append(p)
    build_from_images(paths, d / "pack", log=lambda s: None)
    return d / "pack"


def _trainer(tmp_path, extra=()):
    args = parse_args(["--out", str(tmp_path)] + TINY + list(extra))
    torch.manual_seed(0)
    return Trainer(args, hparams_from_args(args), torch.device("cpu")), args


def test_training_lowers_the_loss(tmp_path):
    tr, _ = _trainer(tmp_path, ["--lr", "5e-3"])
    imgs = [synthetic_photo(64, 64, seed=i) for i in range(4)]
    fixed = torch.stack([torch.from_numpy(im).permute(2, 0, 1)[:, :32, :32] for im in imgs])
    before = tr.validate(fixed)["bpd"]
    for _ in range(15):
        tr.step(imgs)
    tr.ema.load_state_dict(tr.model.state_dict())
    assert tr.validate(fixed)["bpd"] < before


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_train_step_lowers_the_loss_of_a_heads_model(precision):
    """The training step of the per-sub-image-head model with interpolated centres, QAT, in fp32
    and in bf16 autocast (channels_last)."""
    from shvc_gui.core.model.hparams import HParams
    from shvc_gui.train.loop import TrainStep
    torch.manual_seed(0)
    hp = HParams(patch=32, width=16, depth=3, latent_layers=0, mixtures=2, heads=True, interp=True)
    step = TrainStep(hp, lr=5e-3, quantize=True, precision=precision)
    x = torch.stack([torch.from_numpy(synthetic_photo(32, 32, seed=i)).permute(2, 0, 1) for i in range(4)])
    first = step(x)["bpd"]
    for _ in range(10):
        last = step(x)["bpd"]
    assert last < first


def test_resume_is_exact(tmp_path):
    imgs = [synthetic_photo(64, 64, seed=i) for i in range(4)]
    a, _ = _trainer(tmp_path)
    for _ in range(3):
        a.step(imgs)
    state = a.state()
    torch.save(state, tmp_path / "ck.pt")
    a.step(imgs)
    b, _ = _trainer(tmp_path)
    torch.manual_seed(999)                       # resume must restore every RNG itself
    b.load_state(load_checkpoint(tmp_path / "ck.pt"))
    b.step(imgs)
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)
    for pa, pb in zip(a.ema.parameters(), b.ema.parameters()):
        assert torch.equal(pa, pb)


def test_cli_run_resume_export_and_sha256(tmp_path, corpus):
    from shvc_gui.train import export, loop
    run = tmp_path / "run"
    assert loop.main(["--corpus", str(corpus), "--out", str(run), "--no-progress", "--val-every", "2",
                      "--val-crops", "8"] + TINY[:-2] + ["--steps", "3"]) == 0
    assert loop.main(["--corpus", str(corpus), "--out", str(run), "--no-progress", "--resume", "--val-crops", "8"]
                     + TINY[:-2] + ["--steps", "5"]) == 0
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 5
    log = (run / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,") and any(",val," in line for line in log)
    import csv
    rows = list(csv.DictReader(log))
    assert int(rows[-1]["pixels"]) == 5 * 4 * 32 * 32          # pixels seen add up across the resume
    assert load_checkpoint(run / "checkpoint.pt")["pixels"] == 5 * 4 * 32 * 32
    wdir = tmp_path / "weights"
    entry = export.export(run / "checkpoint.pt", "unit", corpus, wdir, val_tiles=4)
    assert entry["validation"]["coded"]["arib"]["bpd"] > 0
    model = load_model("unit", weights_dir=wdir)
    assert model.sha256 == entry["sha256"]
    path = wdir / entry["file"]
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        load_model("unit", weights_dir=wdir)
    from shvc_gui.train import plot
    assert plot.main([str(run)]) == 0 and (run / "curve.png").stat().st_size > 1000


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path, corpus):
    torchrun = Path(sys.executable).with_name("torchrun")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "shvc_gui.train.loop",
                        "--corpus", str(corpus), "--out", str(tmp_path / "ddp"), "--no-progress", "--device", "cpu",
                        "--val-crops", "4"] + TINY[:-2] + ["--steps", "2"],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert load_checkpoint(tmp_path / "ddp" / "checkpoint.pt")["step"] == 2


@pytest.mark.parametrize("quantize", [False, True])
def test_grown_model_computes_what_the_trained_one_did(quantize):
    """Wider heads and a wider first window start from exactly the trained model's loss, and then
    train the new units (their outgoing weights leave zero)."""
    from shvc_gui.core.model.hparams import HParams
    from shvc_gui.core.model.shvc import SHVC
    from shvc_gui.train.grow import grow_state
    from shvc_gui.train.loop import TrainStep
    old = HParams(patch=32, latent_layers=0, width=12, depth=3, mixtures=2, heads=True, interp=True, kernel=3)
    new = HParams(patch=32, latent_layers=0, width=20, depth=3, mixtures=2, heads=True, interp=True, kernel=5)
    x = torch.stack([torch.from_numpy(synthetic_photo(32, 32, seed=s)).permute(2, 0, 1) for s in range(4)])
    step = TrainStep(old, lr=3e-3, quantize=quantize)
    for _ in range(5):                            # trained a little: no weight is at its initial value
        step(x)
    small = step.model.eval()
    big = SHVC(new)
    big.load_state_dict(grow_state(small.state_dict(), old, new))
    big.quantize = quantize
    with torch.no_grad():
        assert float(big.loss(x)["bpd"]) == pytest.approx(float(small.loss(x)["bpd"]), abs=1e-5)
    assert sum(p.numel() for p in big.parameters()) > 1.5 * sum(p.numel() for p in small.parameters())
    grown = TrainStep(new, lr=3e-3, quantize=quantize)
    grown.model.load_state_dict(big.state_dict())
    hidden = grown.model.x_heads[1].layers[1].weight
    assert (hidden[:, 12:] == 0).all()
    before = float(grown(x)["bpd"])
    for _ in range(3):
        after = grown(x)["bpd"]
    assert after < before and (hidden[:, 12:] != 0).any()


def test_growth_refuses_what_it_cannot_preserve():
    from shvc_gui.core.model.hparams import HParams
    from shvc_gui.core.model.shvc import SHVC
    from shvc_gui.train.grow import grow_state
    old = HParams(patch=32, latent_layers=0, width=12, depth=3, mixtures=2, heads=True, interp=True)
    for bad in (dict(depth=4), dict(mixtures=3), dict(width=8), dict(interp=False)):
        with pytest.raises(ValueError):
            grow_state(SHVC(old).state_dict(), old, HParams(**{**old.to_dict(), **bad}))


def test_cli_init_grows_a_checkpoint_and_carries_its_pixels(tmp_path, corpus):
    from shvc_gui.train import loop
    small, big = tmp_path / "small", tmp_path / "big"
    heads = ["--latent-layers", "0", "--heads", "1", "--interp", "1", "--width", "8", "--depth", "3",
             "--mixtures", "2", "--crop", "32", "--batch", "4", "--warmup", "2", "--no-progress", "--val-crops", "4",
             "--corpus", str(corpus)]
    assert loop.main(["--out", str(small), "--steps", "3"] + heads) == 0
    assert loop.main(["--out", str(big), "--steps", "2", "--init", str(small / "checkpoint.pt"), "--width", "16",
                      "--kernel", "5", "--corpus", str(corpus), "--crop", "32", "--batch", "4", "--no-progress",
                      "--val-crops", "4"]) == 0
    with pytest.raises(SystemExit, match="depth"):            # one clear line, no traceback
        loop.main(["--out", str(tmp_path / "deeper"), "--init", str(small / "checkpoint.pt"), "--depth", "4",
                   "--corpus", str(corpus), "--crop", "32", "--no-progress"])
    st = load_checkpoint(big / "checkpoint.pt")
    assert st["hparams"]["width"] == 16 and st["hparams"]["kernel"] == 5 and st["hparams"]["heads"]
    assert st["step"] == 2 and st["pixels"] == 5 * 4 * 32 * 32
    import csv
    parent = list(csv.DictReader((small / "log.csv").open()))
    child = list(csv.DictReader((big / "log.csv").open()))
    assert child[:len(parent)] == parent and int(child[-1]["pixels"]) == 5 * 4 * 32 * 32   # one curve


def test_a_corpus_with_native_crops_logs_their_validation_too(tmp_path):
    from shvc_gui.train import loop, plot
    from shvc_gui.train.corpus import Rules
    src = tmp_path / "src"
    src.mkdir()
    for i in range(6):
        img = synthetic_photo(384, 512, seed=40 + i)
        noisy = np.clip(img.astype(int) + np.random.default_rng(i).integers(-12, 13, img.shape), 0, 255)
        Image.fromarray(noisy.astype(np.uint8)).save(src / f"pic{i}.jpg", quality=90)
    manifest = build_from_images(sorted(src.iterdir()), tmp_path / "pack", rules=Rules(native_crops=1, native_crop_side=128),
                                 log=lambda s: None)
    assert manifest["counts"]["val-native"] >= 1
    run = tmp_path / "run"
    assert loop.main(["--corpus", str(tmp_path / "pack"), "--out", str(run), "--no-progress", "--val-every", "2",
                      "--val-crops", "4"] + TINY[:-2] + ["--steps", "4"]) == 0
    import csv
    rows = list(csv.DictReader((run / "log.csv").read_text().splitlines()))
    val = [r for r in rows if r["split"] == "val"]
    native = [r for r in rows if r["split"] == "val-native"]
    assert len(val) == len(native) == 2 and all(float(r["bpd"]) > 0 for r in native)
    assert [r["bpd"] for r in val] != [r["bpd"] for r in native]
    assert plot.main([str(run)]) == 0


def test_eval_measures_checkpoints_on_the_same_crops(tmp_path, corpus, capsys):
    import json
    from shvc_gui.train import evaluate, loop
    ckpts = []
    for name, steps in (("short", 2), ("long", 40)):
        assert loop.main(["--corpus", str(corpus), "--out", str(tmp_path / name), "--no-progress",
                          "--val-crops", "4"] + TINY[:-2] + ["--steps", str(steps)]) == 0
        ckpts.append(str(tmp_path / name / "checkpoint.pt"))
    assert evaluate.main(ckpts + [ckpts[0], "--corpus", str(corpus), "--sizes", "32,64", "--crops", "6",
                                  "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["step"] for r in rows] == [2, 40, 2]
    assert set(rows[0]["bpd"]) == {"val@32", "val@64"}
    assert rows[2]["bpd"] == rows[0]["bpd"]                      # the same crops every time
    assert rows[1]["bpd"]["val@32"] < rows[0]["bpd"]["val@32"] - 0.05
    assert evaluate.main(ckpts + ["--corpus", str(corpus)]) == 0  # the Markdown table
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("| checkpoint |") and "short" in out and "long" in out
    with pytest.raises(SystemExit):
        evaluate.main(ckpts + ["--corpus", str(tmp_path / "nowhere")])
    assert "is not a corpus" in capsys.readouterr().err
