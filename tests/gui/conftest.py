"""GUI tests: the application sets torch's thread count for its worker (cores minus one); give the
rest of the suite its own setting back after each test."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)
