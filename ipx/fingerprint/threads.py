"""Threads kept for the fingerprint and index stages' native work (OpenCV, FAISS and PDQ release the GIL).

A pool made per call paid for its new threads on every request: the first native calls on a fresh thread cost more
than on one that has made them before (a 12-MP photo's fingerprints 16.1-17.2 -> 14.6-14.9 ms with a kept helper
thread; the thumbnail-window search at 100k pictures 7.7 -> 3.7 ms on kept threads). So each pool is made once per
process, and forgotten in a forked child, which has none of its parent's threads.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

_lock = threading.Lock()
_pools: dict[str, ThreadPoolExecutor] = {}


def kept_pool(name: str, threads: int) -> ThreadPoolExecutor:
    """This process's pool called `name` (its threads' name prefix), made with `threads` threads on first use.

    Its tasks must not wait for other tasks of the same pool: callers share it, so that could wait forever.
    """
    with _lock:
        pool = _pools.get(name)
        if pool is None:
            pool = _pools[name] = ThreadPoolExecutor(threads, thread_name_prefix=name)
        return pool


def _forget_pools_after_fork() -> None:
    """In a forked child: the parent's pools have no threads here (and the lock may have been held at the fork)."""
    global _lock
    _lock = threading.Lock()
    _pools.clear()


os.register_at_fork(after_in_child=_forget_pools_after_fork)
