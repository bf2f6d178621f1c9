"""Threads and timing of the patch coder: streams on worker threads that share torch's CPU threads,
network calls in batches, thread-safe progress, and where the time went. Nothing here changes a bit
of the output."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import torch

NETWORK_SECONDS = "network_s"      # ``stats`` keys: thread-seconds in network calls, ...
STREAM_SECONDS = "stream_s"        # ... and in whole streams (network + tables + ANS), summed over threads


def stage_seconds(stats: dict, wall: float) -> dict:
    """Split ``wall`` seconds of an encode or decode into network and coding (tables + ANS) in the
    proportion of the thread-seconds in ``stats`` (streams run in parallel, so thread-seconds add
    up to more than the wall time)."""
    busy = stats.get(STREAM_SECONDS, 0.0)
    net = stats.get(NETWORK_SECONDS, 0.0)
    f = wall / busy if busy else 0.0
    return {"network": net * f, "coding": (busy - net) * f}


@contextmanager
def threads_split(workers: int):
    """Give each of ``workers`` stream threads an equal share of torch's CPU threads, so that
    workers x torch threads does not exceed the threads given (oversubscribed, 2 streams on 2 cores
    encoded 10-22 % slower); torch's setting is process-wide and is restored afterwards. Two coding
    calls at once in one process (the GUI's compress and open) may then see each other's share:
    that changes their speed, never their results."""
    total = torch.get_num_threads()
    share = max(1, total // max(1, workers))
    if share != total:
        torch.set_num_threads(share)
    try:
        yield
    finally:
        if share != total:
            torch.set_num_threads(total)


def default_workers(streams: int) -> int:
    """Worker threads for ``streams`` streams: as many as streams, at most torch's thread count
    (which SHVC_THREADS sets, :mod:`shvc_gui.core.runtime`)."""
    return min(streams, torch.get_num_threads())


def thread_map(fn, items, workers: int) -> list:
    if workers <= 1 or len(items) <= 1:
        return [fn(it) for it in items]
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


def timed_streams(stats: dict, fn, items, workers: int) -> list:
    """``fn(item, own_stats)`` for every stream on ``workers`` threads; their seconds add into ``stats``."""
    def run(item):
        own, t0 = {}, time.perf_counter()
        out = fn(item, own)
        own[STREAM_SECONDS] = time.perf_counter() - t0
        return out, own
    workers = max(1, min(workers, len(items)))
    with threads_split(workers):
        results = thread_map(run, items, workers)
    for _, own in results:
        for key, value in own.items():
            stats[key] = stats.get(key, 0.0) + value
    return [out for out, _ in results]


def batched(stats: dict, fn, net_batch: int, *tensors):
    """Apply ``fn`` to slices of the batch axis and concatenate; exact, so slicing is free.
    Adds the seconds spent to ``stats[NETWORK_SECONDS]``."""
    t0 = time.perf_counter()
    n = tensors[0].shape[0]
    if n <= net_batch:
        out = fn(*tensors)
    else:
        outs = [fn(*(t[a:a + net_batch] if t is not None else None for t in tensors))
                for a in range(0, n, net_batch)]
        if isinstance(outs[0], tuple):
            out = tuple(torch.cat(parts, dim=0) for parts in zip(*outs))
        else:
            out = torch.cat(outs, dim=0)
    if tensors[0].is_cuda:
        torch.cuda.synchronize()
    stats[NETWORK_SECONDS] = stats.get(NETWORK_SECONDS, 0.0) + time.perf_counter() - t0
    return out


class Progress:
    """Thread-safe progress across streams: ``add(k)`` patches done, reported as (done, total)."""

    def __init__(self, total: int, callback):
        self.total, self.callback, self.done, self.lock = total, callback, 0, threading.Lock()

    def add(self, k: int) -> None:
        if self.callback is None:
            return
        with self.lock:
            self.done += k
            done = self.done
        self.callback(done, self.total)
