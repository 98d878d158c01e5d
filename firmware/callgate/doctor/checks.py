"""A doctor check's result, and the two ways it is shown (one line each, or JSON)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
LABELS = {OK: "ok", WARN: "WARN", FAIL: "FAIL", SKIP: "skip"}


@dataclass(frozen=True)
class Check:
    """What was checked (`name`, on `line` if it is a line's), how it went and, when it
    did not go well, what to do about it."""

    name: str
    status: str
    detail: str
    fix: str | None = None
    line: str | None = None

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    def text(self) -> str:
        """One line: status, what, detail, and the fix of a failure or warning."""
        where = f"{self.line}: " if self.line else ""
        out = f"{LABELS[self.status]:<5} {where}{self.name}: {self.detail}"
        if self.fix and self.status in (FAIL, WARN):
            out += f" -- fix: {self.fix}"
        return out

    def as_dict(self) -> dict:
        return asdict(self)


def ok(name: str, detail: str, line: str | None = None) -> Check:
    return Check(name, OK, detail, None, line)


def warn(name: str, detail: str, fix: str, line: str | None = None) -> Check:
    return Check(name, WARN, detail, fix, line)


def fail(name: str, detail: str, fix: str, line: str | None = None) -> Check:
    return Check(name, FAIL, detail, fix, line)


def skip(name: str, detail: str, line: str | None = None) -> Check:
    return Check(name, SKIP, detail, None, line)


def summary(checks: list[Check]) -> str:
    counts = {s: sum(c.status == s for c in checks) for s in (OK, WARN, FAIL, SKIP)}
    return (f"doctor: {counts[OK]} ok, {counts[WARN]} warning{'s' * (counts[WARN] != 1)}, "
            f"{counts[FAIL]} failed, {counts[SKIP]} not applicable")
