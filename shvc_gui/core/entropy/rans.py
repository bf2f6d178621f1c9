"""Interleaved rANS over numpy lanes, fed one table point at a time (the coder of format version 2).

A stack of ``lanes`` independent 64-bit rANS states (the *heads*) over one shared stack of 32-bit
words (the *tail*). A run of S symbols is cut into chunks of ``lanes`` symbols; symbol i of a chunk
goes through lane i, so a chunk is coded with a handful of vectorised numpy operations. Pushing
takes the chunks last to first and popping first to last, so a pop returns the run in order.

Symbols are coded with the pointwise tables of the entropy model
:class:`shvc_gui.core.entropy.mixture.Mixture`: symbol v owns ``[C(v), C(v+1))`` of ``2^PREC``.
Pushing needs C at the symbol and the next one; popping finds the symbol by a search on C, all
lanes of a chunk at once (:meth:`Mixture.search`: binary for wide chunks, ``log2 n`` evaluations).

State bounds (the classic rANS with 32-bit renormalisation): heads live in ``[2^31, 2^63)``. Heads
start at ``2^31``; the decoder checks that they end there, so a damaged stream is reported.
Each lane costs about 48 bits of start-up and flush per stream (measured: 31 bits of the empty
start state and ~17 of the final flush), so the lane count is chosen from the stream's size
(:func:`lanes_for`, about ``per_lane`` symbols a lane: ``payload.symbols_per_lane``); small streams
(lane count 0) use the whole-table coder of :mod:`shvc_gui.core.entropy.ans` instead. Fewer lanes
cost fewer start-up bits but decode slower (numpy works a chunk of ``lanes`` symbols per call).
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import FormatError, UsageError
from .mixture import PREC, Mixture

RANS_L = np.uint64(1 << 31)
MASK = np.uint64((1 << PREC) - 1)
MIN_LANES, MAX_LANES = 32, 4096
SYMBOLS_PER_LANE = 4096          # lanes_for: start-up bits stay near 48 / (4096 x bits per symbol)


def lanes_for(symbols: int, per_lane: int = SYMBOLS_PER_LANE) -> int:
    """Lanes for a stream of about ``symbols`` coded symbols, about ``per_lane`` a lane: a power of
    two in [MIN_LANES, MAX_LANES], or 0 when the stream is too small for lanes to pay (numpy's
    per-call cost makes fewer than MIN_LANES lanes slower than whole tables, and the start-up bits
    would exceed ~0.3 %)."""
    want = symbols // per_lane
    if want < MIN_LANES:
        return 0
    return int(min(MAX_LANES, 1 << (want.bit_length() - 1)))


class _Words:
    """A growable stack of uint32 words that remembers how low it has been popped."""

    def __init__(self, words: np.ndarray | None = None, floor: int = 0):
        words = np.zeros(0, np.uint32) if words is None else np.asarray(words, dtype=np.uint32)
        self.buf = np.empty(max(1024, 2 * len(words)), dtype=np.uint32)
        self.buf[:len(words)] = words
        self.size = self.low = len(words)
        self.floor = floor             # a decoder never pops below the encoder's low-water mark (the cut seed)

    def push(self, w: np.ndarray) -> None:
        end = self.size + len(w)
        if end > len(self.buf):
            grown = np.empty(max(end, 2 * len(self.buf)), dtype=np.uint32)
            grown[:self.size] = self.buf[:self.size]
            self.buf = grown
        self.buf[self.size:end] = w
        self.size = end

    def pop(self, k: int) -> np.ndarray:
        if k > self.size - self.floor:
            raise FormatError("The compressed stream is corrupt (it ends before the data does).")
        self.size -= k
        self.low = min(self.low, self.size)
        return self.buf[self.size:self.size + k]

    def array(self) -> np.ndarray:
        return self.buf[:self.size].copy()


class RansStack:
    """A bits-back stack: ``push``/``pop`` runs of symbols with their mixture parameters.

    A :class:`shvc_gui.core.entropy.mixture.Coder`, as :class:`shvc_gui.core.entropy.ans.TableStack`:
    ``push(sym, model)`` returns the bits of each symbol, ``pop(model)`` returns (symbols, bits);
    both count ``pushed_bits`` / ``popped_bits``.
    """

    def __init__(self, lanes: int, tail: np.ndarray | None = None, heads: np.ndarray | None = None):
        if not 1 <= lanes <= MAX_LANES:
            raise FormatError("The compressed stream is corrupt (bad lane count).")
        self.lanes = lanes
        self.heads = np.full(lanes, RANS_L, dtype=np.uint64) if heads is None else heads.astype(np.uint64)
        self.tail = _Words(tail)
        self.pushed_bits = 0.0
        self.popped_bits = 0.0

    # --- one chunk ---------------------------------------------------------------------------
    def _encode(self, start: np.ndarray, freq: np.ndarray) -> None:
        c = len(start)
        h = self.heads[:c]
        f = freq.astype(np.uint64)
        over = h >= (f << np.uint64(63 - PREC))              # would leave [2^31, 2^63): shed 32 bits
        if over.any():
            self.tail.push((h[over] & np.uint64(0xFFFFFFFF)).astype(np.uint32))
            h[over] >>= np.uint64(32)
        self.heads[:c] = ((h // f) << np.uint64(PREC)) + h % f + start.astype(np.uint64)

    def _decode(self, m: Mixture) -> tuple[np.ndarray, np.ndarray]:
        c = len(m)
        h = self.heads[:c]
        slot = (h & MASK).astype(np.int64)
        lo, start, freq = m.search(slot)
        h = freq.astype(np.uint64) * (h >> np.uint64(PREC)) + (slot - start).astype(np.uint64)
        under = h < RANS_L
        k = int(np.count_nonzero(under))
        if k:
            h[under] = (h[under] << np.uint64(32)) | self.tail.pop(k).astype(np.uint64)
        self.heads[:c] = h
        return lo, freq

    # --- runs --------------------------------------------------------------------------------
    def push(self, sym: torch.Tensor, m: Mixture) -> torch.Tensor:
        """Push symbols (S,) so that :meth:`pop` with the same model returns them in order.
        Returns the bits of each symbol (S,) float64."""
        _check_bins(m.n)
        v = sym.cpu().numpy().astype(np.int64)
        start = m.scaled_cdf(v)
        freq = m.scaled_cdf(v + 1) - start
        for a in reversed(range(0, len(v), self.lanes)):
            self._encode(start[a:a + self.lanes], freq[a:a + self.lanes])
        bits = PREC - np.log2(freq)
        self.pushed_bits += float(bits.sum())
        return torch.from_numpy(bits)

    def pop(self, m: Mixture) -> tuple[torch.Tensor, torch.Tensor]:
        """Pop a run of ``len(m)`` symbols; returns (symbols int64, bits float64)."""
        _check_bins(m.n)
        syms, freqs = np.empty(len(m), np.int64), np.empty(len(m), np.int64)
        for a in range(0, len(m), self.lanes):
            syms[a:a + self.lanes], freqs[a:a + self.lanes] = self._decode(m.rows(a, a + self.lanes))
        bits = PREC - np.log2(freqs)
        self.popped_bits += float(bits.sum())
        return torch.from_numpy(syms), torch.from_numpy(bits)

    # --- whole stream ------------------------------------------------------------------------
    @classmethod
    def start(cls, seed: np.ndarray | None, lanes: int) -> "RansStack":
        """An encoder's stack: heads at 2^31 over the ``seed`` words (bits for the first pops)."""
        return cls(lanes, seed)

    def cut(self, seed_len: int) -> int:
        """Seed words no pop reached: the decoder never reads them, so they leave the file."""
        return min(self.tail.low, seed_len)

    def finish(self, prefix: int = 0) -> np.ndarray:
        """The stream's words: the tail above ``prefix`` words (a cut seed), then the heads."""
        heads = self.heads.astype("<u8").view(np.uint32)      # low word first, per lane
        return np.concatenate([self.tail.array()[prefix:], heads])

    @classmethod
    def resume(cls, words: np.ndarray, prefix: int, lanes: int) -> "RansStack":
        """The stack :meth:`finish` wrote, with ``prefix`` zero words under it for the cut seed."""
        if len(words) < 2 * lanes:
            raise FormatError("The compressed stream is truncated.")
        heads = np.ascontiguousarray(words[len(words) - 2 * lanes:]).astype("<u4").view("<u8")
        if (heads < RANS_L).any() or (heads >= np.uint64(1 << 63)).any():
            raise FormatError("The compressed stream is corrupt (bad coder state).")
        tail = np.concatenate([np.zeros(prefix, np.uint32), words[:len(words) - 2 * lanes]])
        st = cls(lanes, tail, heads)
        st.tail.floor = prefix         # the encoder never reached below the cut: a pop there is damage
        return st

    def check_finished(self, start_words: np.ndarray) -> None:
        """After decoding everything the stack is back where the encoder started (heads at 2^31 over
        ``start_words``); anything else is damage."""
        if (self.heads != RANS_L).any() or not np.array_equal(self.tail.array(), start_words):
            raise FormatError("The compressed stream is corrupt (the coder did not end where it started).")


def _check_bins(n: int) -> None:
    if n < 2 or n & (n - 1):
        raise UsageError("the pointwise coder needs a power-of-two alphabet")
