"""Login throttling: failed log-ins counted per user name and per client address.

After :attr:`LoginThrottle.per_user` failures for one name, or
:attr:`LoginThrottle.per_address` from one address, within
:attr:`LoginThrottle.window_s` seconds, further log-ins for that name or from
that address are refused (even with the right password) until the oldest of
those failures leaves the window. Names that do not exist are counted the same
way, so the answer never tells whether a user exists. The counts live in the
serving process (a restart clears them); a successful log-in clears its name's
count.

>>> t = LoginThrottle(per_user=2, per_address=10, window_s=60)
>>> t.fail("ana", "10.0.0.1", now=0.0); t.fail("ana", "10.0.0.1", now=1.0)
>>> t.retry_after("ana", "10.0.0.9", now=2.0)
58
>>> t.retry_after("ana", "10.0.0.9", now=61.0)
0
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field


@dataclass(kw_only=True)
class LoginThrottle:
    """Sliding-window failure counts per user name and per client address."""

    per_user: int = 5
    """Failures allowed per name in the window."""
    per_address: int = 20
    """Failures allowed per client address in the window."""
    window_s: float = 900.0
    """The window, in seconds."""
    _fails: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @staticmethod
    def _keys(username: str, address: str) -> tuple[str, str]:
        return "u:" + username.casefold()[:200], "a:" + address

    def _wait(self, key: str, limit: int, now: float) -> float:
        q = self._fails.get(key)
        if not q:
            return 0.0
        while q and q[0] <= now - self.window_s:
            q.popleft()
        if not q:
            del self._fails[key]
            return 0.0
        if len(q) < limit:
            return 0.0
        return q[-limit] + self.window_s - now

    def retry_after(self, username: str, address: str, *, now: float | None = None) -> int:
        """Seconds until a log-in for ``username`` from ``address`` is allowed (0: allowed now)."""
        t = time.monotonic() if now is None else now
        ku, ka = self._keys(username, address)
        with self._lock:
            w = max(self._wait(ku, self.per_user, t), self._wait(ka, self.per_address, t))
        return math.ceil(w) if w > 0 else 0

    def fail(self, username: str, address: str, *, now: float | None = None) -> None:
        """Count a failed log-in."""
        t = time.monotonic() if now is None else now
        with self._lock:
            for k in self._keys(username, address):
                q = self._fails[k]
                q.append(t)
                while len(q) > max(self.per_user, self.per_address):
                    q.popleft()

    def succeed(self, username: str) -> None:
        """A successful log-in clears the name's count (not the address's)."""
        with self._lock:
            self._fails.pop(self._keys(username, "")[0], None)

    def clear(self, username: str) -> None:
        """Forget a name's failures (an admin set its password or enabled it)."""
        self.succeed(username)
