"""Device, threads and the default variant are decided in one place (core/runtime.py); the core's
messages name no command-line option and its errors are its own (core/errors.py)."""

import ast
from pathlib import Path

import pytest

from shvc_gui import cli
from shvc_gui.core import codec, runtime
from shvc_gui.core.errors import DeviceError, ExistsError, ShvcError, UsageError
from shvc_gui.core.model.hparams import HParams

CORE = Path(__file__).resolve().parents[1] / "shvc_gui" / "core"


def test_default_variant_follows_the_model():
    assert runtime.default_variant(HParams(latent_layers=0)) == "det"
    hp = HParams()
    assert runtime.default_variant(hp) == ("arib" if hp.split < hp.blocks else "shvc")
    assert runtime.variants_for(hp)[0] == runtime.default_variant(hp)
    assert codec.default_variant is runtime.default_variant


def test_threads_from_the_environment(monkeypatch):
    monkeypatch.setenv("SHVC_THREADS", "3")
    assert runtime.env_threads() == 3 == runtime.cpu_threads(leave=1)
    for bad in ("", "0", "-2", "two"):
        monkeypatch.setenv("SHVC_THREADS", bad)
        assert runtime.env_threads() is None and runtime.cpu_threads() >= 1


def test_device_choice(monkeypatch):
    import torch
    assert runtime.resolve_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runtime.resolve_device("auto") == runtime.resolve_device(None) == "cpu"
    with pytest.raises(DeviceError) as err:
        runtime.resolve_device("cuda")
    assert "--" not in str(err.value) and isinstance(err.value, ShvcError)
    assert "--device" in cli._text(err.value)


def test_exists_error_names_no_option_and_the_cli_adds_it(tmp_path):
    err = ExistsError(tmp_path / "a.shvc")
    assert str(err) == f"{tmp_path / 'a.shvc'} already exists." and err.path == tmp_path / "a.shvc"
    assert "--force" in cli._text(err)


def _raised_strings(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            for sub in ast.walk(node.exc):
                if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                    yield node.lineno, sub.value


def test_core_messages_name_no_cli_option_and_raise_no_bare_value_error():
    for path in CORE.rglob("*.py"):
        if path.parent.name == "model":                 # the network package keeps its own checks
            continue
        tree = ast.parse(path.read_text())
        for line, text in _raised_strings(tree):
            assert "--" not in text, f"{path.name}:{line} names an option: {text!r}"
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and node.exc is not None:
                call = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                assert getattr(call, "id", None) not in ("ValueError", "TypeError", "RuntimeError"), \
                    f"{path.name}:{node.lineno} raises a bare {call.id}"


def test_usage_errors_are_value_errors_too():
    assert issubclass(UsageError, ValueError) and issubclass(UsageError, ShvcError)
