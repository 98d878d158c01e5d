"""A tiny sd_notify client: tell systemd we are ready, alive, or stopping.

systemd passes a unix datagram socket in $NOTIFY_SOCKET to a Type=notify
service (a path, or a name in the abstract namespace written with a leading
'@'); each datagram is newline-separated KEY=VALUE lines such as READY=1,
WATCHDOG=1, STATUS=..., STOPPING=1 (sd_notify(3)). Without the variable (a
shell, a test, another init) every call is a quiet no-op, so the engine can
call it unconditionally.

With WatchdogSec= set, systemd puts the timeout in $WATCHDOG_USEC and kills
and restarts the service if WATCHDOG=1 does not arrive in time. `Watchdog`
says when to ping: every half of the timeout, as sd_watchdog_enabled(3)
advises. The engine feeds it from its frame loop, so a stuck loop (not just
a stuck process) stops the pings. The watchdog is on a wall clock by nature:
it watches the loop from outside the sample clock.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping


def _address(value: str) -> str | None:
    """The socket address of a $NOTIFY_SOCKET value; None for kinds we do not speak."""
    if value.startswith("@"):
        return "\0" + value[1:]          # abstract namespace
    if value.startswith("/"):
        return value
    return None                          # e.g. vsock: (VMs); not for an appliance


def notify(state: str, env: Mapping[str, str] = os.environ) -> bool:
    """Send `state` (e.g. "READY=1\\nSTATUS=listening") to systemd.

    True if it was sent; False when there is no $NOTIFY_SOCKET or sending
    failed (never raises: a missing supervisor must not stop the line).
    """
    value = env.get("NOTIFY_SOCKET", "")
    address = _address(value) if value else None
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.setblocking(False)          # the watchdog ping is sent from the audio loop
            sock.connect(address)
            sock.sendall(state.encode("utf-8"))
        return True
    except OSError:
        return False


def ready(status: str | None = None, env: Mapping[str, str] = os.environ) -> bool:
    """READY=1 (and a status line): start-up is done, the line is open."""
    return notify("READY=1" + (f"\nSTATUS={status}" if status else ""), env)


def status(text: str, env: Mapping[str, str] = os.environ) -> bool:
    """STATUS=...: one line shown by `systemctl status` (never a caller's digits)."""
    return notify("STATUS=" + " ".join(text.splitlines()), env)


def stopping(env: Mapping[str, str] = os.environ) -> bool:
    """STOPPING=1: we are shutting down on purpose."""
    return notify("STOPPING=1", env)


class Watchdog:
    """When to send WATCHDOG=1: every half of $WATCHDOG_USEC, if it is set for us."""

    def __init__(self, env: Mapping[str, str] = os.environ) -> None:
        self.env = env
        self.interval: float | None = None     # seconds between pings; None: no watchdog
        usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
        mine = not pid or (pid.isdigit() and int(pid) == os.getpid())
        if usec.isdigit() and int(usec) > 0 and mine and env.get("NOTIFY_SOCKET"):
            self.interval = int(usec) / 1e6 / 2.0
        self._last: float | None = None

    @property
    def enabled(self) -> bool:
        return self.interval is not None

    def due(self, now_monotonic: float) -> bool:
        """True when a ping should be sent now (the first call always, if enabled)."""
        if self.interval is None:
            return False
        return self._last is None or now_monotonic - self._last >= self.interval

    def ping(self, now_monotonic: float | None = None) -> bool:
        """Send WATCHDOG=1 and remember when; True if it was sent."""
        if self.interval is None:
            return False
        self._last = time.monotonic() if now_monotonic is None else now_monotonic
        return notify("WATCHDOG=1", self.env)

    def feed(self, now_monotonic: float) -> bool:
        """Ping if due: the one call the engine's loop makes per frame."""
        return self.ping(now_monotonic) if self.due(now_monotonic) else False
