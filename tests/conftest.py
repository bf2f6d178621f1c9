"""Shared fixtures: tiny integer models (random init, fixed seeds) and the trained test model."""

from pathlib import Path

import pytest

from shvc_gui.core.model.testing import tiny_model as _tiny_model

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def tiny_model():
    """Latent-variable model (L=3, ArIB split 2) for 64x64 patches: variants 'shvc' and 'arib'."""
    return _tiny_model(latent_layers=3)


@pytest.fixture(scope="session")
def tiny_det_model():
    """Deterministic model (no latents) for 64x64 patches: variant 'det'."""
    return _tiny_model(latent_layers=0)


@pytest.fixture(scope="session")
def trained_model():
    """A model trained for a few hundred steps (tests/data/make_test_model.py), committed."""
    from shvc_gui.core.weights import load_integer_weights
    return load_integer_weights(DATA / "trained-tiny.pt")


@pytest.fixture(scope="session")
def trained_det_model():
    """The deterministic twin (heads, interpolated centres; tests/data/make_test_model.py det), committed:
    the model of the version-3 golden file."""
    from shvc_gui.core.weights import load_integer_weights
    return load_integer_weights(DATA / "trained-tiny-det.pt")


GOLDEN_MODELS = {1: "trained_model", 2: "trained_model", 3: "trained_det_model", 4: "trained_det_model",
                 5: "trained_det_model", 6: "trained_det_model"}


@pytest.fixture(scope="session")
def golden_model_of(request):
    """``golden_model_of(version)``: the model of tests/data/golden-v{version}.shvc (make_golden.py)."""
    return lambda version: request.getfixturevalue(GOLDEN_MODELS[version])


@pytest.fixture(scope="session")
def golden_model(golden_model_of):
    """The model of the current format version's golden file."""
    from shvc_gui.core import container
    return golden_model_of(container.VERSION)
