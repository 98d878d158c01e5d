"""How often a sign-in may be tried: per account, per address, and per trusted browser.

Three counts of failed sign-ins, kept in the users file (they survive a restart):

- per account, from anywhere: after twice `signin_attempts` failures (so a few
  wrong tries from one place do not slow its owner elsewhere) every further try
  waits twice as long as the one before (1 s, 2 s, 4 s ...), up to the sign-in
  window (5 minutes by default). A try made too soon is refused without looking at
  the password, and so is one made while another try of the account is being
  checked (tries sent at once from many addresses get one check, not one each). The account is never locked: its owner can always try again once
  the delay has passed, and guessing from many addresses gains nothing.
- per name and address (`signin_attempts` in the window), and per address for all
  names (`signin_address_attempts`), so one machine can neither hammer one name nor
  spray many.
- a browser that signed in as this user before carries a signed device cookie
  (30 days); its tries are counted for that browser alone and skip the account's
  delay and the address counts, so an attacker behind the same NAT as the admin,
  or guessing from anywhere, cannot keep the admin out.

Failures are forgotten after a day, and on a successful sign-in. When a limit starts
refusing, the pattern is logged once (per limit and key, per window), not per try.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import threading
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

log = logging.getLogger("callgate.web")

KEEP_S = 86400.0               # failures older than this are forgotten
DEVICE_COOKIE = "callgate_device"
DEVICE_DAYS = 30


@dataclass(frozen=True)
class Asker:
    """Who is trying to sign in: the counted name (a digest for an unknown one), how it may
    be shown, the address, and the trusted browser's id when its cookie is valid."""

    name: str
    shown: str
    address: str
    device: str | None = None


def name_key(name: str, known: bool) -> str:
    """What a sign-in name is counted as: itself if it is a user's, else a digest (a password
    typed into the name field must reach neither the log nor the failure table)."""
    return name if known else "?" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:16]


class SigninLimits:
    def __init__(self, users, settings, secret_key: bytes) -> None:
        self.users, self.settings = users, settings
        self._devices = URLSafeTimedSerializer(secret_key, salt="callgate-device")
        self._noted: dict[str, float] = {}
        # accounts past their free tries with a try being checked: one at a time, else
        # tries sent at once from many addresses all pass the delay before any is counted
        self._trying: dict[str, Asker] = {}
        self._lock = threading.Lock()

    # -- the trusted browser ---------------------------------------------------------

    def device_of(self, cookie: str | None, user) -> str | None:
        """The device id in a valid cookie of `user` (name and password version), or None."""
        if not cookie or user is None:
            return None
        try:
            name, version, device = self._devices.loads(cookie, max_age=DEVICE_DAYS * 86400)
        except (BadSignature, ValueError, TypeError):
            return None
        return device if name == user.username and version == user.version else None

    def device_cookie(self, user, device: str | None) -> str:
        """The cookie value that marks this browser as one `user` signed in from."""
        return self._devices.dumps([user.username, user.version,
                                    device or secrets.token_urlsafe(16)])

    # -- the limits --------------------------------------------------------------------

    def _keys(self, who: Asker) -> tuple[str, ...]:
        if who.device:
            return (f"%{who.device}",)
        return (f"{who.name}|{who.address}", f"@{who.address}", f"#{who.name}")

    def account_delay(self, name: str, now: float) -> float:
        """The wait in force after the account's latest failure: 0 for the first
        2 x `signin_attempts`, then 1 s doubling at each failure, at most the window."""
        n = len(self.users.failures(f"#{name}", now - KEEP_S))
        free = 2 * self.settings.signin_attempts
        if n < free:
            return 0
        return min(self.settings.signin_window_s, 2.0 ** min(n - free, 32))

    def wait(self, who: Asker, now: float) -> int:
        """Seconds until `who` may try (0: now); notes the pattern once when it refuses."""
        s = self.settings
        window = s.signin_window_s
        if who.device:
            tries = self.users.failures(f"%{who.device}", now - window)
            if len(tries) >= s.signin_attempts:
                return self._refuse(now, f"%{who.device}", tries[0] + window - now,
                                    f"repeated failed sign-ins for {who.shown} from one "
                                    f"browser it signed in from before ({who.address})")
            return 0
        pair = self.users.failures(f"{who.name}|{who.address}", now - window)
        if len(pair) >= s.signin_attempts:
            return self._refuse(now, f"{who.name}|{who.address}", pair[0] + window - now,
                                f"repeated failed sign-ins for {who.shown} from "
                                f"{who.address}: refused from there for a while")
        spray = self.users.failures(f"@{who.address}", now - window)
        if len(spray) >= s.signin_address_attempts:
            return self._refuse(now, f"@{who.address}", spray[0] + window - now,
                                f"repeated failed sign-ins from {who.address} "
                                f"({len(spray)} in {window / 60:g} min, any names): "
                                f"refused from there for a while")
        delay = self.account_delay(who.name, now)
        if delay:
            last = self.users.failures(f"#{who.name}", now - KEEP_S)[-1]
            if now < last + delay or not self._take_turn(who):
                addresses = self.users.failure_keys(f"{who.name}|", now - KEEP_S)
                return self._refuse(now, f"#{who.name}", max(1, last + delay - now),
                                    f"repeated failed sign-ins for {who.shown} from "
                                    f"{addresses} address{'es' * (addresses != 1)}: each "
                                    f"further try waits up to {window:g} s (the account "
                                    f"is not locked)")
        return 0

    def _take_turn(self, who: Asker) -> bool:
        with self._lock:
            if who.name in self._trying:
                return False
            self._trying[who.name] = who
            return True

    def done(self, who: Asker) -> None:
        """`who`'s try is over and counted: the account's next try may be checked."""
        with self._lock:
            if self._trying.get(who.name) is who:
                del self._trying[who.name]

    def _refuse(self, now: float, key: str, wait_s: float, pattern: str) -> int:
        last = self._noted.get(key)
        if last is None or now - last >= self.settings.signin_window_s:
            if len(self._noted) > 10_000:            # a spray of keys: start again
                self._noted.clear()
            self._noted[key] = now
            log.warning("%s", pattern)
        return max(1, math.ceil(wait_s))

    def failed(self, who: Asker, now: float) -> None:
        keys = self._keys(who)
        self.users.add_failure(keys[0], now, KEEP_S, *keys[1:])

    def succeeded(self, who: Asker) -> None:
        """The account's and this browser's counts start again; the address's do not (one
        good password must not buy a spray of guesses at other names)."""
        self.users.clear_failures(f"{who.name}|{who.address}", f"#{who.name}",
                                  *([f"%{who.device}"] if who.device else []))
