"""The policy of one service line: what the ID&V flow asks, how often, and where calls go.

One TOML file holds several service lines, either as an array of tables

    [[service]]
    name = "support"

or as named tables (`[service.support]`). Every key is read through
`config.Table`, so a bad or unknown key is one ConfigError line that names it
(`service.support.security.retries: 0 is outside 1..10`).

Choices written down here (the issue leaves them open):

- `retries` is the number of tries in all: with 3 the caller is asked at
  most three times; no input and wrong input both use up a try.
- The opt-out key defaults to "*". An entry whose first key is the opt-out
  key is an opt-out (a digit opt-out key only counts as the whole entry);
  "*" pressed after digits clears the entry (see below).
- `[service.transfer] agent` is where every outcome goes unless the outcome
  has its own extension (verified, identified, not_identified, opted_out,
  locked, backend_down, no_secret). A no-secret caller is identified only, so
  without a `no_secret` extension they go to the `identified` one (then `agent`).
- When that extension does not take the call (busy, no answer, no recall
  dial tone, or the exchange refuses it: reorder, logged as a configuration
  fault), the `fallback` extensions are tried in order (default: `agent`),
  then `final`, the destination that always takes calls (a hunt group or
  the operator; none by default). Only when all of them fail does the caller
  hear "all our agents are busy, please call again later" and goodbye.
  `fallback` is a list for every outcome, or a table of lists per outcome.
- A customer the back end says has no secret of the asked kind on file is not
  asked for one: identified only, reason no_secret, nothing counted.
- `*` with nothing keyed in the entry (its first key, or the first after a
  clear) is the opt-out (with the default key); `*` after digits clears them. A variable-length entry with a
  terminator that runs past its maximum is one invalid try: its keys, up to
  the terminator or the inter-digit timeout, are thrown away unread.
- Every prompt is named in `[service.prompts]` (a name in prompts_wav/<lang>/);
  an empty string switches an optional prompt off. Greeting by name is a
  generic "welcome back": speaking names is out of scope.
- `[service.whisper]` (off by default) announces the outcome to the agent who
  answers a supervised transfer, before we let go of the call; it needs
  transfer.mode = "supervised". `read_identifier` (off by default) adds the
  identified customer's id digit by digit ("customer number", digit_0..9).
  Whisper prompts are only required (check-config, the engine) when it is on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import ConfigError, Table, is_name
from .hours import UTC, Hours, hours_from_table
from .keys import extension, is_extension
from .menu import Menu, menu_from_table
OUTCOMES = ("verified", "identified", "not_identified", "opted_out", "locked", "backend_down",
            "no_secret")
IDENTIFIER_KINDS = ("customer_id", "account", "tracking", "phone")
SECURITY_KINDS = ("pin", "last_digits", "dob", "postcode", "passcode")

# role -> (default prompt name, required)
PROMPT_ROLES: dict[str, tuple[str, bool]] = {
    "greeting": ("welcome", False),
    "identifier": ("enter_identifier", True),
    "opt_out_hint": ("opt_out_hint", False),
    "security": ("enter_pin", True),
    "no_input": ("no_input", True),
    "invalid": ("invalid", True),            # too short, too long, not digits
    "no_match": ("no_match", True),          # the identifier is not known
    "wrong_secret": ("wrong_pin", True),     # the secret did not verify
    "one_moment": ("one_moment", True),
    "welcome_back": ("welcome_back", False),
    "verified": ("verified_transfer", False),
    "opted_out": ("opted_out", False),
    "locked": ("locked", False),
    "backend_down": ("backend_down", False),
    "transferring": ("transferring", True),
    "agent_busy": ("agent_busy", True),
    "unavailable": ("call_back_later", True),     # every destination failed: what to do
    "goodbye": ("goodbye", True),
    "no_secret": ("", False),                # before the transfer of a no-secret caller
    "closed": ("closed", False),             # out of hours ([service.hours]: required)
    "call_in_hours": ("call_in_hours", False),   # closed, no after-hours extension: before
                                             # goodbye ("call again during opening hours")
    # the agent whisper ([service.whisper]): one per outcome, then the number read back
    "whisper_verified": ("whisper_verified", False),
    "whisper_identified": ("whisper_identified", False),
    "whisper_not_identified": ("whisper_not_identified", False),
    "whisper_locked": ("whisper_locked", False),
    "whisper_opted_out": ("whisper_opted_out", False),
    "whisper_backend_down": ("whisper_backend_down", False),
    "whisper_number": ("customer_number", False),
    **{f"digit_{d}": (f"digit_{d}", False) for d in range(10)},
}
WHISPER_STATUS_ROLES = ("whisper_verified", "whisper_identified", "whisper_not_identified",
                        "whisper_locked", "whisper_opted_out", "whisper_backend_down")
DIGIT_ROLES = tuple(f"digit_{d}" for d in range(10))
_NUMBER_ROLES = ("whisper_number", *DIGIT_ROLES)


@dataclass(frozen=True)
class Entry:
    """How one keyed entry is collected and how often it may be tried."""

    kind: str
    min_digits: int
    max_digits: int
    terminator: str = "#"
    first_timeout_ms: int = 6000
    inter_timeout_ms: int = 3000
    retries: int = 3


@dataclass(frozen=True)
class Security:
    enabled: bool = True
    entry: Entry = field(default_factory=lambda: Entry("pin", 4, 4))
    lockout_limit: int = 5             # failures in the window (per customer, per number)
    lockout_window_s: float = 86400.0


@dataclass(frozen=True)
class Whisper:
    """What the agent hears when they answer a supervised transfer, before we let go."""

    enabled: bool = False
    read_identifier: bool = False      # the identified customer's id, digit by digit
    pause_ms: int = 500                # after the answer, so the agent's "hello" is over


@dataclass(frozen=True)
class Policy:
    """One service line's ID&V policy."""

    name: str
    lines: tuple[str, ...] = ()
    ring_patterns: tuple[str, ...] = ()   # distinctive rings it answers (a second number)
    number_lookup: bool = True
    default_country: str = "US"
    identifier: Entry = field(default_factory=lambda: Entry("customer_id", 4, 16))
    security: Security = field(default_factory=Security)
    opt_out_key: str = "*"
    transfer_mode: str = "blind"
    agent: str = "200"
    extensions: dict = field(default_factory=dict)     # outcome -> extension (overrides)
    greet_by_name: bool = False
    prompts: dict = field(default_factory=lambda: {r: d for r, (d, _) in PROMPT_ROLES.items()})
    hold_ms: int = 300                 # silence before "one moment" (a fast back end skips it)
    backend_timeout_ms: int = 5000     # the flow's own limit on waiting for the back end
    simulated_latency_ms: int | None = 40   # back-end latency on the sample clock; None: measured
    whisper: Whisper = field(default_factory=Whisper)
    fallback: dict = field(default_factory=dict)        # outcome -> extensions, in order
    fallback_by_outcome: bool = False  # `fallback` was a table of outcomes (not one list)
    final: str = ""                    # the destination that always takes calls
    hours: Hours | None = None         # None: always open
    menu: Menu | None = None           # None: no menu after ID&V

    def extension(self, outcome: str) -> str:
        if outcome == "no_secret" and "no_secret" not in self.extensions:
            outcome = "identified"          # identified only: that is where they belong
        return self.extensions.get(outcome) or self.agent

    def offers_menu(self, outcome: str) -> bool:
        return self.menu is not None and outcome in self.menu.outcomes

    def chain(self, outcome: str, first: str | None = None) -> tuple[str, ...]:
        """Where a call of `outcome` is tried, in order: `first` (a menu's choice) or the
        outcome's extension, its fallbacks, then the final destination; once each."""
        fallback = self.fallback.get(outcome, (self.agent,))
        tried = [first or self.extension(outcome), *fallback, self.final]
        return tuple(dict.fromkeys(x for x in tried if x))

    def unreachable(self) -> list[str]:
        """Destinations set in the configuration that no call can reach, as
        "key: why" lines (check-config warns about each)."""
        out = []
        never = {}
        if not self.security.enabled:
            never.update(locked="security is off", no_secret="security is off")
        if not self.opt_out_key:
            never["opted_out"] = "there is no opt-out key"
        if not self.security.enabled:
            never["verified"] = "security is off: no caller is verified"
        for outcome, why in never.items():
            if outcome in self.extensions:
                out.append(f"service.{self.name}.transfer.{outcome}: no call can reach it "
                           f"({why})")
            if self.fallback_by_outcome and outcome in self.fallback:
                out.append(f"service.{self.name}.transfer.fallback.{outcome}: no call can "
                           f"reach it ({why})")
        if self.menu is not None:
            for outcome in sorted(set(self.extensions) & set(self.menu.outcomes) - set(never)):
                if self.menu.default:
                    out.append(f"service.{self.name}.transfer.{outcome}: no call can reach "
                               f"it (its callers get the menu, menu.default when no key is "
                               f"chosen)")
                else:
                    out.append(f"service.{self.name}.transfer.{outcome}: reached only when "
                               f"the caller chooses no key in the menu (menu.outcomes offers "
                               f"{outcome} the menu)")
        if self.transfer_mode == "blind" and (self.final or self.fallback):
            key = "fallback" if self.fallback else "final"
            out.append(f"service.{self.name}.transfer.{key}: never tried in blind mode (a "
                       f"blind transfer hears no busy, no answer or refusal, and no recall "
                       f"dial tone is the line's fault); transfer.mode = \"supervised\" "
                       f"tries it")
        return out

    def destinations(self) -> set[str]:
        """Every extension a call of this service line may be sent to."""
        out = {self.agent, *self.extensions.values(), self.final}
        for chain in self.fallback.values():
            out.update(chain)
        if self.hours is not None:
            out.add(self.hours.after_hours)
        if self.menu is not None:
            out.update(self.menu.extensions)
        return {x for x in out if x}

    def prompt(self, role: str) -> str | None:
        return self.prompts.get(role) or None

    def plays_role(self, role: str) -> bool:
        """Whether this policy may play the prompt of `role` at all."""
        if role == "welcome_back":
            return self.greet_by_name
        if role in WHISPER_STATUS_ROLES:
            return self.whisper.enabled
        if role in _NUMBER_ROLES:
            return self.whisper.enabled and self.whisper.read_identifier
        if role == "closed":
            return self.hours is not None
        if role == "call_in_hours":
            return self.hours is not None and not self.hours.after_hours
        return True

    def prompt_names(self) -> list[str]:
        """Every prompt this policy may play (what check-config and the engine need)."""
        names = {v for r, v in self.prompts.items() if v and self.plays_role(r)}
        if self.menu is not None:
            names.update(self.menu.prompts)
        return sorted(names)

    def prompt_key(self, name: str) -> str:
        """The configuration key that names prompt `name` (for a one-line error)."""
        if self.menu is not None and name in self.menu.prompts:
            if name == self.menu.prompt:
                return f"service.{self.name}.menu.prompt"
            key = next(c.key for c in self.menu.choices if c.prompt == name)
            return f"service.{self.name}.menu.keys.{key}"
        role = next((r for r, v in self.prompts.items() if v == name), name)
        return f"service.{self.name}.prompts.{role}"


def _one_key(table: Table, name: str, default: str) -> str:
    """One DTMF key (a terminator, the opt-out key), or "" for none."""
    value = table.get(name, str, default)
    if value and not (is_extension(value) and len(value) == 1):
        raise ConfigError(f"{table.key(name)}: {value!r} is not one DTMF key")
    return value


def _no_unknown(table: Table) -> None:
    unknown = table.unknown()
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown key")


def _entry(table: Table, kind_default: str, kinds: tuple[str, ...], lo: int, hi: int,
           opt_out_key: str) -> Entry:
    kind = table.get("kind", str, kind_default)
    if kind not in kinds:
        raise ConfigError(f"{table.key('kind')}: {kind!r} is not one of {', '.join(kinds)}")
    low = table.integer("min_digits", lo, 1, 32)
    high = table.integer("max_digits", hi, 1, 32)
    if low > high:
        raise ConfigError(f"{table.key('min_digits')}: {low} is more than max_digits ({high})")
    term = _one_key(table, "terminator", "#")
    if term and term == opt_out_key:
        raise ConfigError(f"{table.key('terminator')}: {term!r} is also the opt-out key")
    if term and term in "0123456789":
        raise ConfigError(f"{table.key('terminator')}: {term!r} is a digit of the entry")
    return Entry(kind, low, high, term,
                 table.integer("first_timeout_ms", 6000, 1000, 60000),
                 table.integer("inter_timeout_ms", 3000, 500, 30000),
                 table.integer("retries", 3, 1, 10))


def _latency(table: Table) -> int | None:
    """`simulated_latency_ms`: milliseconds, or "measured" (the wall time the request took)."""
    if table.data.get("simulated_latency_ms") == "measured":
        table.get("simulated_latency_ms", str)
        return None
    return table.integer("simulated_latency_ms", 40, 0, 60000)


def _whisper(wt: Table, mode: str, prompts: dict, pt: Table) -> Whisper:
    """[service.whisper]: enabled, read_identifier, pause_ms; its prompts must be set."""
    enabled = wt.get("enabled", bool, False)
    read = wt.get("read_identifier", bool, False)
    pause = wt.integer("pause_ms", 500, 0, 3000)
    _no_unknown(wt)
    if enabled and mode != "supervised":
        raise ConfigError(f"{wt.key('enabled')}: the whisper needs a supervised transfer "
                          f"(transfer.mode = \"supervised\", not {mode!r})")
    if enabled:
        needed = WHISPER_STATUS_ROLES + (DIGIT_ROLES if read else ())
        for role in needed:
            if not prompts[role]:
                raise ConfigError(f"{pt.key(role)}: the whisper needs this prompt")
    return Whisper(enabled, read, pause)


def _fallback(tt: Table) -> dict:
    """`fallback`: a list of extensions for every outcome, or a table of lists per outcome
    (an outcome left out falls back to `agent`)."""
    raw = tt.get("fallback", (list, dict), None)
    if raw is None:
        return {}

    def chain(items, key: str) -> tuple[str, ...]:
        if not isinstance(items, list) or not all(
                is_extension(x) for x in items):
            raise ConfigError(f"{key}: expected a list of extensions (DTMF digits), "
                              f"got {items!r}")
        return tuple(items)

    if isinstance(raw, list):
        one = chain(raw, tt.key("fallback"))
        return {o: one for o in OUTCOMES}
    ft = tt.sub("fallback")
    out = {}
    for outcome in list(ft.data):
        if outcome not in OUTCOMES:
            raise ConfigError(f"{ft.key(outcome)}: unknown outcome (known: "
                              f"{', '.join(OUTCOMES)})")
        out[outcome] = chain(ft.data[outcome], ft.key(outcome))
    return out


def policy_from_table(table: Table, name: str, default_country: str = "US",
                      default_zone=UTC) -> Policy:
    """One service line from its table; ConfigError names any bad or unknown key.
    `default_zone` ((tzinfo, name)) serves [service.hours] without a timezone."""
    if not is_name(name):
        raise ConfigError(f"{table.key('name')}: {name!r} must be letters A-Z, digits, - "
                          "and _")
    lines = table.get("lines", list, [])
    if not all(isinstance(x, str) and x for x in lines):
        raise ConfigError(f"{table.key('lines')}: expected a list of line names")
    patterns = table.get("ring_patterns", list, [])
    if not all(isinstance(x, str) and x.strip() for x in patterns):
        raise ConfigError(f"{table.key('ring_patterns')}: expected a list of ring patterns "
                          "as the line reports them (\"A\", \"1\", \"DRON=8\")")
    opt_out = _one_key(table, "opt_out_key", "*")
    country = table.get("default_country", str, default_country)
    if len(country) != 2 or not country.isalpha():
        raise ConfigError(f"{table.key('default_country')}: {country!r} is not a two-letter "
                          "country code")
    number_lookup = table.get("number_lookup", bool, True)
    greet = table.get("greet_by_name", bool, False)

    it = table.sub("identifier")
    ident = _entry(it, "customer_id", IDENTIFIER_KINDS, 4, 16, opt_out)
    _no_unknown(it)
    st = table.sub("security")
    enabled = st.get("enabled", bool, True)
    entry = _entry(st, "pin", SECURITY_KINDS, 4, 4, opt_out)
    limit = st.integer("lockout_limit", 5, 1, 100)
    window_h = st.number("lockout_window_h", 24.0, 0.1, 24 * 30)
    _no_unknown(st)
    security = Security(enabled, entry, limit, window_h * 3600.0)

    tt = table.sub("transfer")
    mode = tt.choice("mode", ("blind", "supervised"), "blind")
    agent = extension(tt, "agent", "200", allow_empty=False)
    extensions = {o: extension(tt, o) for o in OUTCOMES}
    fallback = _fallback(tt)
    final = extension(tt, "final")
    _no_unknown(tt)

    pt = table.sub("prompts")
    prompts = {}
    for role, (default, required) in PROMPT_ROLES.items():
        value = pt.get(role, str, default)
        if value and not is_name(value):
            raise ConfigError(f"{pt.key(role)}: {value!r} is not a prompt name "
                              "(letters A-Z, digits, - and _)")
        if required and not value:
            raise ConfigError(f"{pt.key(role)}: this prompt cannot be switched off")
        prompts[role] = value
    _no_unknown(pt)
    if greet and not prompts["welcome_back"]:
        raise ConfigError(f"{table.key('greet_by_name')}: needs prompts.welcome_back")
    whisper = _whisper(table.sub("whisper"), mode, prompts, pt)
    hours = hours_from_table(table.sub("hours"), default_zone)
    if hours is not None and not prompts["closed"]:
        raise ConfigError(f"{pt.key('closed')}: [service.hours] needs this prompt")
    menu = menu_from_table(table.sub("menu"), OUTCOMES)

    policy = Policy(
        name=name, lines=tuple(lines), ring_patterns=tuple(p.strip() for p in patterns),
        number_lookup=number_lookup, default_country=country,
        identifier=ident, security=security, opt_out_key=opt_out, transfer_mode=mode,
        agent=agent, extensions={k: v for k, v in extensions.items() if v},
        greet_by_name=greet, prompts=prompts,
        hold_ms=table.integer("hold_ms", 300, 0, 5000),
        backend_timeout_ms=table.integer("backend_timeout_ms", 5000, 500, 60000),
        simulated_latency_ms=_latency(table),
        whisper=whisper, fallback=fallback, final=final, hours=hours, menu=menu,
        fallback_by_outcome=isinstance(tt.data.get("fallback"), dict),
    )
    table.used.add("name")
    _no_unknown(table)
    return policy


def load_services(table: Table, default_country: str = "US",
                  default_zone=UTC) -> list[Policy]:
    """Every service line of the `service` value (array of tables or named tables).

    No `service` at all gives one service line "default" with every default.
    `default_zone` (tzinfo, name): the device's time zone, for [service.hours] that
    names none (found by the caller: callgate/localzone.py; the flow reads no files).
    """
    raw = table.data.get("service")
    table.used.add("service")
    if raw is None:
        return [Policy("default", default_country=default_country)]
    out: list[Policy] = []
    if isinstance(raw, list):
        for i, item in enumerate(raw):
            where = f"{table.key('service')}[{i}]"
            if not isinstance(item, dict):
                raise ConfigError(f"{where}: expected a table")
            sub = Table(item, where)
            name = sub.get("name", str)
            out.append(policy_from_table(Table(item, f"{table.key('service')}.{name}"), name,
                                         default_country, default_zone))
    elif isinstance(raw, dict):
        svc = table.sub("service")
        for name, item in raw.items():
            if not isinstance(item, dict):
                raise ConfigError(f"{svc.key(name)}: expected a table ([service.{name}])")
            sub = svc.sub(name)
            if "name" in item and item["name"] != name:
                raise ConfigError(f"{sub.key('name')}: {item['name']!r} differs from the "
                                  f"table name {name!r}")
            out.append(policy_from_table(sub, name, default_country, default_zone))
    else:
        raise ConfigError(f"{table.key('service')}: expected [[service]] or [service.NAME] tables")
    if not out:
        raise ConfigError(f"{table.key('service')}: no service line")
    names = [p.name for p in out]
    for n in names:
        if names.count(n) > 1:
            raise ConfigError(f"{table.key('service')}.{n}: service line defined twice")
    seen: dict[str, str] = {}
    for p in out:
        for line in p.lines:
            if line in seen:
                raise ConfigError(f"{table.key('service')}.{p.name}.lines: line {line!r} is "
                                  f"already served by {seen[line]!r}")
            seen[line] = p.name
    return out


def service_for_line(services: list[Policy], line: str,
                     ring_pattern: str | None = None) -> Policy:
    """The service line for a call on `line`: one that names the call's distinctive ring
    (and the line, or no line); else one that lists `line`, else the first one without
    `lines`; services kept for a ring pattern come last; else the first."""
    if ring_pattern is not None:
        for p in services:
            if (any(_same_ring(ring_pattern, want) for want in p.ring_patterns)
                    and (not p.lines or line in p.lines)):
                return p
    plain = [p for p in services if not p.ring_patterns] or services
    for p in plain:
        if line in p.lines:
            return p
    for p in plain:
        if not p.lines:
            return p
    return plain[0]


DRON_STEP_TOLERANCE = 1     # a modem measures a burst in 100 ms steps: 0.8 s is DRON=7..9


def _same_ring(heard: str, wanted: str) -> bool:
    """A distinctive ring as the line reported it against one a service names: the same
    letter or number ("A", "1"), or a DRON= burst length within one 100 ms step."""
    if heard.upper() == wanted.upper():
        return True
    h, w = heard.upper().partition("DRON="), wanted.upper().partition("DRON=")
    if h[:2] == w[:2] == ("", "DRON=") and h[2].isdigit() and w[2].isdigit():
        return abs(int(h[2]) - int(w[2])) <= DRON_STEP_TOLERANCE
    return False
