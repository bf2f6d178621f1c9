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
