"""Failed log-ins counted per address, so a password cannot be guessed online at the speed of HTTP.

Per worker process and in memory: with N workers an address gets up to N x `attempts` tries per window, still
hours per thousand guesses instead of seconds. Counting by address, not by client address, also covers guesses
spread over many machines; the price is that anyone can lock an address out for one window by failing on purpose,
which is why the window is short and a success clears the count.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable

from ipx.errors import TooManyAttempts

MAX_ADDRESSES = 100_000  # addresses with recent attempts kept per worker; past it the oldest are forgotten first
LONGEST_ADDRESS = 254  # RFC 5321; anything longer is counted under its hash, so a key costs at most this much


FORGOTTEN_PASSWORD_ADVICE = (
    "If you forgot the password, choose a new one through “Forgot your password?” (/forgot-password)."
)


class LoginThrottle:
    """At most `attempts` log-in attempts per address within `window_seconds` unless one succeeds."""

    def __init__(self, attempts: int, window_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.attempts, self.window_seconds, self.clock = attempts, window_seconds, clock
        self._attempts: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def attempt(
        self, address: str, *, what: str = "failed log-ins for this address", advice: str = FORGOTTEN_PASSWORD_ADVICE
    ) -> None:
        """Count an attempt before the secret is checked, or raise TooManyAttempts: too many `what`, when to try
        again, then `advice`.

        Counted first and in one locked step: checking, then recording the failure after the slow password check,
        let a burst of parallel guesses all pass the check before any failure was recorded.
        """
        key, now = _key(address), self.clock()
        with self._lock:
            recent = self._recent(key, now)
            if len(recent) >= self.attempts:
                wait = math.ceil(recent[0] + self.window_seconds - now)
            else:
                if key not in self._attempts and len(self._attempts) >= MAX_ADDRESSES:
                    self._forget_oldest(now)
                self._attempts.setdefault(key, recent).append(now)
                return
        raise TooManyAttempts(f"Too many {what}: try again in {_in_words(wait)}. {advice}", retry_after_seconds=wait)

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._attempts.pop(_key(address), None)

    def _recent(self, key: str, now: float) -> deque[float]:
        recent = self._attempts.get(key, deque())
        while recent and recent[0] <= now - self.window_seconds:
            recent.popleft()
        return recent

    def _forget_oldest(self, now: float) -> None:
        """Drop expired addresses, then the oldest tenth: amortised, so a flood costs no scan per attempt."""
        cutoff = now - self.window_seconds
        for key in [key for key, times in self._attempts.items() if not times or times[-1] <= cutoff]:
            del self._attempts[key]
        for key in list(self._attempts)[: max(0, len(self._attempts) - MAX_ADDRESSES * 9 // 10)]:
            del self._attempts[key]


def _key(address: str) -> str:
    return address if len(address) <= LONGEST_ADDRESS else hashlib.sha256(address.encode()).hexdigest()


def _in_words(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} seconds"
    return f"{math.ceil(seconds / 60)} minutes"
