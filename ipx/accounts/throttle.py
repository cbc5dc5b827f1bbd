"""Failed log-ins counted per address, so a password cannot be guessed online at the speed of HTTP.

Per worker process and in memory: with N workers an address gets up to N x `attempts` tries per window, still
hours per thousand guesses instead of seconds. Counting by address, not by client address, also covers guesses
spread over many machines; the price is that anyone can lock an address out for one window by failing on purpose,
which is why the window is short and a success clears the count.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from ipx.errors import TooManyAttempts

FORGET_AFTER_ADDRESSES = 100_000  # past this many addresses with recent failures, the expired ones are dropped


class LoginThrottle:
    """At most `attempts` failed log-ins per address within `window_seconds`; then refused until the oldest ages out."""

    def __init__(self, attempts: int, window_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.attempts, self.window_seconds, self.clock = attempts, window_seconds, clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, address: str) -> None:
        """Raise TooManyAttempts while the address has used up its failed attempts."""
        now = self.clock()
        with self._lock:
            recent = self._recent(address, now)
            if len(recent) < self.attempts:
                return
            wait = math.ceil(recent[0] + self.window_seconds - now)
        raise TooManyAttempts(
            f"Too many failed log-ins for this address: try again in {_in_words(wait)}. If you forgot the password, "
            "ask an IPX administrator to set a new one.", retry_after_seconds=wait,
        )

    def failed(self, address: str) -> None:
        now = self.clock()
        with self._lock:
            if len(self._failures) >= FORGET_AFTER_ADDRESSES:
                for key in [key for key in self._failures if not self._recent(key, now)]:
                    del self._failures[key]
            self._failures.setdefault(address, deque()).append(now)

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)

    def _recent(self, address: str, now: float) -> deque[float]:
        recent = self._failures.get(address, deque())
        while recent and recent[0] <= now - self.window_seconds:
            recent.popleft()
        return recent


def _in_words(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} seconds"
    return f"{math.ceil(seconds / 60)} minutes"
