"""numpy <-> Qt image conversion (one place)."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage

_FORMATS = {1: QImage.Format_Grayscale8, 3: QImage.Format_RGB888, 4: QImage.Format_RGBA8888}


def to_qimage(arr: np.ndarray) -> QImage:
    """A QImage that owns a copy of an (H, W), (H, W, 1|3|4) uint8 array."""
    a = np.ascontiguousarray(arr, dtype=np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in _FORMATS:
        raise ValueError(f"cannot show an array of shape {arr.shape}")
    h, w, c = a.shape
    return QImage(a.data, w, h, w * c, _FORMATS[c]).copy()
