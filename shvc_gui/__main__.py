"""``python -m shvc_gui``: the desktop application."""

import sys

from .qt.app import main

sys.exit(main())
