"""Errors that reach the user: each carries one clear sentence."""


class ShvcError(Exception):
    """Base class: str(err) is a complete sentence fit for a dialog or stderr."""


class FormatError(ShvcError):
    """A .shvc file is truncated, corrupt, foreign or of an unsupported version."""


class WeightsError(ShvcError):
    """Weights are missing, or their sha256 does not match the manifest."""


class ImageError(ShvcError):
    """An input image cannot be read, or is too large."""


class IntegrityError(ShvcError):
    """Decoded pixels do not match the checksum stored in the file."""


class Cancelled(ShvcError):
    """The user cancelled a running job."""


class UsageError(ShvcError, ValueError):
    """The core was asked for something it cannot do: an unknown option value, arguments that do
    not fit together, an array of the wrong shape (also a ValueError, as Python callers expect)."""


class ExistsError(ShvcError):
    """An output file exists and replacing it was not allowed. ``path`` is that file; the sentence
    names no command-line option (the CLI and the GUI each say how to replace it)."""

    def __init__(self, path):
        self.path = path
        super().__init__(f"{path} already exists.")


class DeviceError(UsageError):
    """The device asked for is not there (no CUDA GPU)."""
