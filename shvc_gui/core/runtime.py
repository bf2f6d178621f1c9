"""Where the work runs: the device, torch's CPU threads (``SHVC_THREADS``) and the default coding
variant, each decided here and nowhere else. None of them changes the bytes of a file.

torch is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import os

from .errors import DeviceError

DEVICES = ("auto", "cpu", "cuda")          # what a caller may ask for; "auto": the GPU when there is one
THREADS_ENV = "SHVC_THREADS"
VARIANTS = ("shvc", "arib", "det")         # how a model's latents are coded (docs/DESIGN.md)


def resolve_device(device: str | None = "auto") -> str:
    """The torch device to run on: ``"auto"`` (or None, "") is CUDA when available, else the CPU."""
    import torch
    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise DeviceError("No CUDA GPU is available; choose the CPU or the automatic device.")
    return device


def gpu_available() -> bool:
    import torch
    return torch.cuda.is_available()


def env_threads() -> int | None:
    """The thread count SHVC_THREADS asks for (a positive integer), else None."""
    n = os.environ.get(THREADS_ENV, "").strip()
    return int(n) if n.isdigit() and int(n) > 0 else None


def cpu_threads(leave: int = 0) -> int:
    """Threads for the networks on the CPU: SHVC_THREADS, else the cores minus ``leave`` (at least 1)."""
    return env_threads() or max(1, (os.cpu_count() or 2) - leave)


_threads_done = False


def configure_threads() -> None:
    """Honour SHVC_THREADS (torch's CPU threads for networks and tables) once per process."""
    global _threads_done
    if not _threads_done:
        n = env_threads()
        if n:
            import torch
            torch.set_num_threads(n)
        _threads_done = True


def default_variant(hp) -> str:
    """The variant a model codes with when none is asked for (``hp``: its HParams): deterministic
    models "det"; latent-variable models "arib" when trained with an ArIB split, else "shvc"."""
    if hp.deterministic:
        return "det"
    return "arib" if hp.split < hp.blocks else "shvc"


def variants_for(hp) -> list[str]:
    """Every variant a model of ``hp`` can code with, the default first."""
    if hp.deterministic:
        return ["det"]
    return ["arib", "shvc"] if hp.split < hp.blocks else ["shvc"]
