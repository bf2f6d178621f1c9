"""The coder of format version 1: constriction's AnsCoder fed whole integer tables.

Files written since format version 2 use :mod:`shvc_gui.core.entropy.rans` (pointwise tables, about
20x faster); this one stays so that version-1 files still decode (the golden file guards it).

Tables come from the entropy model, :meth:`shvc_gui.core.entropy.mixture.Mixture.tables` (rows sum
to 2**PREC, every entry >= 1). They are handed to constriction as float64 arrays of exact integers, so its
quantization sees identical input on every machine. The wrapper also counts the ideal code
length of what passes through it and the stack's low-water mark (for initial-bit accounting).
"""

from __future__ import annotations

import constriction
import numpy as np
import torch

from ..errors import FormatError
from .mixture import Mixture, table_bits

CHUNK = 8192                      # symbols per table build (bounds memory to ~CHUNK*256*8 bytes)
_FAMILY = constriction.stream.model.Categorical(perfect=False)
# A decoder whose pops were worth this many more bits than the words they took has run out of data
# (constriction keeps decoding from an empty stack); honest streams differ by a fraction of a bit
# per symbol (the coder's own quantization of the tables).
SLACK_BITS, SLACK_PER_SYMBOL = 4096, 0.25


class TableStack:
    """An ANS stack. ``push``/``pop`` take symbol runs with their distribution parameters.

    A :class:`shvc_gui.core.entropy.mixture.Coder`, as :class:`shvc_gui.core.entropy.rans.RansStack`
    (``start``, ``cut``, ``finish``, ``resume``, ``check_finished``); ``lanes`` means nothing here."""

    def __init__(self, words: np.ndarray | None = None):
        if words is None:
            self.coder = constriction.stream.stack.AnsCoder()
        else:
            self.coder = constriction.stream.stack.AnsCoder(np.ascontiguousarray(words, dtype=np.uint32))
        self.min_words = self.coder.num_words()
        self.pushed_bits = 0.0
        self.popped_bits = 0.0
        self.floor = None              # decoders (resume): words never popped, and the data budget
        self.unpaid, self.symbols = 0.0, 0

    def push(self, sym: torch.Tensor, m: Mixture) -> torch.Tensor:
        """Push symbols (S,) so that :meth:`pop` with the same model returns them in order.

        Returns the ideal bits of each symbol (S,) float64."""
        bits = torch.empty(sym.shape[0], dtype=torch.float64)
        starts = list(range(0, sym.shape[0], CHUNK))
        for a in reversed(starts):                         # last chunk first: LIFO
            b = a + CHUNK
            p = m.rows(a, b).tables()
            s = sym[a:b].to(torch.int64)
            bits[a:b] = table_bits(p, s).cpu()
            before = self.coder.num_valid_bits()
            self.coder.encode_reverse(s.cpu().numpy().astype(np.int32), _FAMILY,
                                      p.cpu().numpy().astype(np.float64))
            self.unpaid -= float(bits[a:b].sum()) - (self.coder.num_valid_bits() - before)
        self.pushed_bits += float(bits.sum())
        return bits

    def pop(self, m: Mixture) -> tuple[torch.Tensor, torch.Tensor]:
        """Pop a run of ``len(m)`` symbols; returns (symbols, bits)."""
        total = len(m)
        syms = torch.empty(total, dtype=torch.int64)
        bits = torch.empty(total, dtype=torch.float64)
        for a in range(0, total, CHUNK):
            b = a + CHUNK
            p = m.rows(a, b).tables()
            before = self.coder.num_valid_bits()
            s = torch.from_numpy(self.coder.decode(_FAMILY, p.cpu().numpy().astype(np.float64)).astype(np.int64))
            syms[a:b] = s
            bits[a:b] = table_bits(p, s.to(p.device)).cpu()
            self.min_words = min(self.min_words, self.coder.num_words())
            self._check_paid(float(bits[a:b].sum()) - (before - self.coder.num_valid_bits()), len(s))
        self.popped_bits += float(bits.sum())
        return syms, bits

    def _check_paid(self, unpaid: float, symbols: int) -> None:
        """Decoders only: the stack stays above the cut seed (the encoder never went lower), and the
        pops are paid for by words of the stream (so decoding time follows the bytes in the file)."""
        if self.floor is None:
            return
        self.unpaid += unpaid
        self.symbols += symbols
        if self.coder.num_words() < self.floor or self.unpaid > SLACK_BITS + SLACK_PER_SYMBOL * self.symbols:
            raise FormatError("The compressed stream is corrupt (it ends before the data does).")

    # --- whole stream ------------------------------------------------------------------------
    @classmethod
    def start(cls, seed: np.ndarray | None, lanes: int) -> "TableStack":
        return cls(seed)

    def cut(self, seed_len: int) -> int:
        """Seed words no pop reached (constriction's low-water mark is only known to a few words)."""
        return min(max(0, self.min_words - 3), seed_len)

    def finish(self, prefix: int = 0) -> np.ndarray:
        return self.coder.get_compressed()[prefix:]

    @classmethod
    def resume(cls, words: np.ndarray, prefix: int, lanes: int) -> "TableStack":
        words = np.concatenate([np.zeros(prefix, dtype=np.uint32), words])
        st = cls(words if len(words) else None)
        st.floor = prefix
        return st

    def check_finished(self, start_words: np.ndarray) -> None:
        """Nothing to check: this coder has no end state to compare."""
