"""GUI tests: the application sets torch's thread count for its worker (cores minus one); give the
rest of the suite its own setting back after each test."""

import pytest
import torch
from PySide6.QtCore import QSettings

from shvc_gui.qt.settings import Settings


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture
def settings(tmp_path):
    """Window settings in a file of the test's own: the comparison codecs, jobs start on their own."""
    s = Settings(QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat))
    s.codecs = ("png", "webp", "jxl", "flif")
    s.auto_start = True
    return s
