"""The generic HTTPS REST connector: templates in, customers and verdicts out.

One call step (a lookup or a verify) has an overall budget (default 3 s, the
time the caller hears "one moment"): the OAuth2 token fetch, every attempt and
every wait between attempts fit inside it, and each attempt runs in a worker so
that even a server dripping bytes cannot hold the caller past the budget.

A lookup may read several pages of an answer (`paging`, at most `max_pages`,
all within the same budget) and may compare each record locally before it
counts: `phone_fields` keeps a record only when one of its numbers, read as a
person typed it, is the caller's number once normalised to E.164 (a vendor's
search that cannot normalise numbers finds candidates, we decide); `match`
keeps it only when the identifier field holds exactly the keyed digits (some
searches match words or substrings). Whatever is left decides hit, miss or
ambiguous; an empty result is a miss, never an error, and pages left unread at
max_pages make it ambiguous (they may hold another customer with the number).

Lookups are idempotent and retried on 5xx, 429 (honouring Retry-After when it
fits in what is left of the budget) and refused connections. A verify is never
retried: the back end may count it as an attempt. A 401 with OAuth2 fetches a
new token and asks once more (the request was refused, not processed).

TLS verification is always on; a CA bundle may be named, nothing can turn it
off. Redirects are not followed (a redirect could carry an API-key header to
another host). Errors are one line and carry no URL, identifier or secret.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import logging
import random
import re
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor, TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Any, Callable
from urllib.parse import quote, urlencode, urlsplit

import requests

from ..config import ConfigError, Table
from . import hashed
from .auth import Auth, AuthFailed, make_auth
from .base import Customer, Lookup, Verdict, ascii_digits, lookup_of, mask
from .breaker import CircuitBreaker
from .https import MAX_BODY, REFUSED, check_headers, failure, retry_after, session
from .https import deadline as cut_at
from .jsonpath import Path
from .phone import normalise_phone, phone_forms, same_number
from .template import Template, body_names, compile_body, render_body

log = logging.getLogger("callgate.crm")

_FIELD_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_METHODS = ("GET", "POST", "PUT", "PATCH")

PHONE_NAMES = frozenset({"e164", "digits", "national", "country_code", "tail"})
FIELD_TYPES = ("text", "number")
HASHED = "hashed"                   # the assurance of a verify against a hash kept in the CRM
IDENT_NAMES = frozenset({"kind", "value", "field"})
VERIFY_NAMES = frozenset({"id", "kind", "secret", "field"})
WORKERS = 4                         # requests in flight at once
MAX_ABANDONED = 16                  # stuck workers kept at most; then requests fail at once


class _Fail(Exception):
    """A call step failed; str() is the one-line reason for Lookup/Verdict.error."""


# --- keep identifiers out of urllib3's debug lines --------------------------------------

def _redact_url(text: str) -> str:
    path, _, query = text.partition("?")
    path = re.sub(r"\d{3,}", lambda m: mask(m.group(0)), path)
    return path + ("?<redacted>" if query else "")


class _RedactUrls(logging.Filter):
    """urllib3 logs each request line at DEBUG; the path may hold a keyed identifier."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_url(a) if isinstance(a, str) and a.startswith("/") else a
                                for a in record.args)
        return True


_pool_log = logging.getLogger("urllib3.connectionpool")
if not any(isinstance(f, _RedactUrls) for f in _pool_log.filters):
    _pool_log.addFilter(_RedactUrls())


# --- configuration ---------------------------------------------------------------------

@dataclass
class Step:
    """One configured request and how to read its answer."""
    name: str
    method: str
    url: Template
    query: list[tuple[str, Template]]
    headers: dict[str, Template]
    body: Any
    miss_status: frozenset[int]
    results: Path | None = None
    id: Path | None = None
    name_paths: tuple[Path, ...] = ()
    secrets: Path | None = None       # the kinds of secret on file; None: the CRM does not say
    verified: Path | None = None
    value: str | None = None          # fetch-mode verify: path text, may hold {field}
    names: frozenset[str] = frozenset()   # every placeholder the request uses
    phone_fields: tuple[Path, ...] = ()   # lookup: numbers compared locally with the caller's
    match: str | None = None          # lookup: path text (may hold {field}) compared exactly
    paging: "Paging | None" = None


@dataclass
class Paging:
    """How an answer says there is a next page, and how to ask for it."""
    next_url: Path | None = None      # a link to GET (Dataverse, Salesforce)
    cursor: Path | None = None        # an opaque marker to send back (HubSpot, Pipedrive)
    more: Path | None = None          # a "more records" flag; pages are numbered (Zoho)
    where: str = ""                   # "query" or "body": where the cursor / page goes
    name: str = ""                    # the parameter's name there (param = "<where>.<name>")


@dataclass(frozen=True)
class NextPage:
    """How to ask for the next page: GET `url`, or send `marker` as the paging parameter."""
    url: str | None = None
    where: str = ""
    name: str = ""
    marker: str = ""


def _paging(t: Table) -> Paging | None:
    p = t.sub("paging")
    if not p.data:
        return None
    paths = {k: Path(p.get(k, str), p.key(k)) for k in ("next_url", "cursor", "more")
             if k in p.data}
    if len(paths) != 1:
        raise ConfigError(f"{p.path}: give exactly one of next_url, cursor or more")
    paging = Paging(**paths)
    if paging.next_url is None:
        param = p.get("param", str)
        where, _, name = param.partition(".")
        if where not in ("query", "body") or not name or (paging.more and where != "query"):
            raise ConfigError(f"{p.key('param')}: expected \"query.<name>\""
                              + ("" if paging.more else " or \"body.<name>\""))
        paging.where, paging.name = where, name
    p.reject_unknown()
    return paging


def _step(table: Table, name: str, allowed: frozenset[str], role: str) -> Step:
    t = table.sub(name)
    if not t.data:
        raise ConfigError(f"{t.path}: missing (the request for this step)")
    method = t.choice("method", _METHODS, "GET")
    url_text = t.get("url", str)
    if not url_text.startswith("/"):
        raise ConfigError(f"{t.key('url')}: must be a path starting with '/' (joined to base_url)")
    url = Template(url_text, allowed, t.key("url"))
    query = [(k, Template(_str(v, f"{t.key('query')}.{k}"), allowed, f"{t.key('query')}.{k}"))
             for k, v in t.get("query", dict, {}).items()]
    headers = {k: Template(_str(v, f"{t.key('headers')}.{k}"), allowed, f"{t.key('headers')}.{k}")
               for k, v in t.get("headers", dict, {}).items()}
    check_headers(headers, t.key("headers"))
    body = t.get("body", (dict, list), None)
    body = compile_body(body, allowed, t.key("body")) if body is not None else None
    if "secret" in url.names or any("secret" in q.names for _, q in query) \
            or any("secret" in h.names for h in headers.values()):
        raise ConfigError(f"{t.path}: {{secret}} may only appear in the body "
                          f"(URLs and headers end up in server logs)")
    if body is not None and method == "GET":
        raise ConfigError(f"{t.key('body')}: a GET request has no body")
    miss = t.get("miss_status", list, [404])
    if not all(isinstance(s, int) and 200 <= s < 500 for s in miss):
        raise ConfigError(f"{t.key('miss_status')}: expected a list of HTTP statuses")
    names = frozenset(url.names).union(body_names(body), *(q.names for _, q in query),
                                        *(h.names for h in headers.values()))
    step = Step(name, method, url, query, headers, body, frozenset(miss), names=names)
    if role == "lookup":
        step.results = Path(t.get("results", str), t.key("results"))
        step.id = Path(t.get("id", str, "id"), t.key("id"))
        names = t.get("name", (str, list), "name")
        names = [names] if isinstance(names, str) else names
        step.name_paths = tuple(Path(_str(n, t.key("name")), t.key("name")) for n in names)
        if name == "lookup_phone":
            fields = t.get("phone_fields", list, [])
            step.phone_fields = tuple(Path(_str(f, t.key("phone_fields")), t.key("phone_fields"))
                                      for f in fields)
        else:
            step.match = t.get("match", str, None)
            if step.match is not None:
                Path(step.match.replace("{field}", "x"), t.key("match"))
        step.paging = _paging(t)
        if step.paging and step.paging.where == "body" and body is None:
            raise ConfigError(f"{t.key('paging')}.param: this request has no body")
        secrets = t.get("secrets", str, "")
        step.secrets = Path(secrets, t.key("secrets")) if secrets else None
    else:
        mode = t.choice("mode", ("call", "fetch"), "call")
        if mode == "call":
            step.verified = Path(t.get("verified", str, "verified"), t.key("verified"))
        else:
            step.value = t.get("value", str)
            Path(step.value.replace("{field}", "x"), t.key("value"))
    bad = t.unknown()
    if bad:
        raise ConfigError(f"{bad[0]}: unknown key")
    return step


def _kinds(step: Step, record: dict) -> frozenset[str] | None:
    """The kinds of secret on file from a lookup record, if the CRM's answer says."""
    if step.secrets is None:
        return None
    found = step.secrets.first(record)
    if found is None:
        return None                   # not said for this record: ask, as before
    if not isinstance(found, list) or not all(isinstance(k, str) for k in found):
        raise _Fail(f"response: {step.secrets.text!r} is not a list of kinds")
    return frozenset(k.strip().lower() for k in found)


def _str(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value


def _types(table: Table) -> dict[str, str]:
    """[crm.identifier_types]: kind = "text" | "number", the type of the field it is
    kept in (a number is compared bare in SOQL and OData, a text quoted)."""
    out = table.get("identifier_types", dict, {})
    for kind, typ in out.items():
        if typ not in FIELD_TYPES:
            raise ConfigError(f"{table.key('identifier_types')}.{kind}: {typ!r} is not one of "
                              f"{', '.join(FIELD_TYPES)}")
    return dict(out)


def _fields(table: Table, name: str) -> dict[str, str]:
    out = table.get(name, dict, {})
    for kind, field in out.items():
        if not isinstance(field, str) or not _FIELD_NAME.match(field):
            raise ConfigError(f"{table.key(name)}.{kind}: {field!r} is not a field name")
    return dict(out)


@dataclass
class RestSettings:
    base_url: str
    ca_bundle: str | None
    connect_timeout: float
    read_timeout: float
    budget: float
    retries: int
    default_country: str
    headers: dict[str, str]
    identifier_fields: dict[str, str]
    verify_fields: dict[str, str]
    dob_format: str
    suffix_kinds: tuple[str, ...]
    identifier_types: dict[str, str] = dataclasses.field(default_factory=dict)
    verify_hashed: tuple[str, ...] = ()
    max_pages: int = 3


@dataclass(frozen=True)
class Exchange:
    """One HTTP exchange as `callgate crm test` reports it."""
    token: bool                 # the OAuth2 token request
    method: str
    url: str                    # may hold keyed digits: mask before showing
    status: int | None          # None: no answer (error says why)
    ms: float
    error: str | None


def _flat(values: list[Any]) -> list[Any]:
    """Values with lists opened one level, and {"value": x} entries read as x (Pipedrive
    keeps phones as a list of strings or of {"value", "label"} objects)."""
    out = []
    for v in values:
        for item in (v if isinstance(v, list) else [v]):
            out.append(item.get("value") if isinstance(item, dict) else item)
    return out


def _same_identifier(stored: Any, keyed: str, number: bool) -> bool:
    """The stored identifier is exactly the keyed digits (a number field: the same
    number, so 00123 keyed finds 123 stored)."""
    if isinstance(stored, bool) or stored is None:
        return False
    if number:
        if isinstance(stored, float) and stored.is_integer():
            stored = int(stored)
        text = str(stored).strip()
        return (ascii_digits(text) and ascii_digits(keyed)) \
            and int(text) == int(keyed)
    return isinstance(stored, (str, int)) and str(stored).strip() == keyed


def _check_ca_bundle(path: str, key: str) -> None:
    """The CA bundle loads as PEM now, at config time, not at the first call."""
    if not FilePath(path).is_file():
        raise ConfigError(f"{key}: {path} is not a readable file")
    try:
        ssl.create_default_context(cafile=path)
    except ssl.SSLError:
        raise ConfigError(f"{key}: {path} holds no PEM certificate") from None
    except OSError as err:
        raise ConfigError(f"{key}: {path}: {err.strerror or type(err).__name__}") from None


# --- the connector ---------------------------------------------------------------------

class RestConnector:
    """A `Crm` over HTTPS, shaped entirely by its [crm] table."""

    def __init__(self, table: Table, name: str = "rest",
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.name = name
        self.clock = clock
        self.sleep = sleep
        base_url = table.get("base_url", str)
        if not base_url.startswith("https://"):
            raise ConfigError(f"{table.key('base_url')}: must start with https:// "
                              f"(TLS is always on)")
        ca = table.get("ca_bundle", str, None)
        if ca is not None:
            _check_ca_bundle(ca, table.key("ca_bundle"))
        budget = table.number("budget", 3.0, 0.05, 30.0)
        headers = {k: _str(v, f"{table.key('headers')}.{k}")
                   for k, v in table.get("headers", dict, {}).items()}
        check_headers(headers, table.key("headers"))
        dob_format = table.get("dob_format", str, "MMDDYYYY")
        letters = dob_format.replace("YYYY", "Y").replace("MM", "M").replace("DD", "D")
        if sorted(letters) != ["D", "M", "Y"]:
            raise ConfigError(f"{table.key('dob_format')}: use YYYY, MM and DD once each, "
                              f"e.g. MMDDYYYY")
        self.settings = RestSettings(
            base_url=base_url.rstrip("/"),
            ca_bundle=ca,
            connect_timeout=table.number("connect_timeout", min(1.0, budget), 0.01, 30.0),
            read_timeout=table.number("read_timeout", budget, 0.01, 60.0),
            budget=budget,
            retries=int(table.number("retries", 2, 0, 5)),
            default_country=table.get("default_country", str, "US"),
            headers=headers,
            identifier_fields=_fields(table, "identifier_fields"),
            verify_fields=_fields(table, "verify_fields"),
            dob_format=dob_format,
            suffix_kinds=tuple(table.get("suffix_kinds", list, ["last_digits"])),
            identifier_types=_types(table),
            verify_hashed=tuple(_str(k, table.key("verify_hashed"))
                                for k in table.get("verify_hashed", list, [])),
            max_pages=int(table.number("max_pages", 3, 1, 20)),
        )
        self.auth: Auth = make_auth(table.sub("auth"), self.settings.base_url, clock=clock)
        self.steps = {
            "lookup_phone": _step(table, "lookup_phone", PHONE_NAMES, "lookup"),
            "lookup_identifier": _step(table, "lookup_identifier", IDENT_NAMES, "lookup"),
            "verify": _step(table, "verify", VERIFY_NAMES, "verify"),
        }
        self.breaker = CircuitBreaker(int(table.number("breaker_failures", 5, 1, 1000)),
                                      table.number("breaker_cooldown", 30.0, 0.0, 3600.0),
                                      clock=clock)
        table.get("kind", str, "rest")
        bad = table.unknown()
        if bad:
            raise ConfigError(f"{bad[0]}: unknown key")
        self._session = session()
        self._verify: str | bool = ca if ca is not None else True
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="callgate-crm")
        self._closed = False
        self._lock = threading.Lock()
        self.abandoned = 0                  # requests given up on while their worker ran
        self._stuck: dict[ThreadPoolExecutor, int] = {}
        self.observer: Callable[[Exchange], None] | None = None

    # -- the Crm interface --

    def lookup_phone(self, e164: str) -> Lookup:
        start = self.clock()
        number = normalise_phone(e164, self.settings.default_country)
        if number is None:
            return Lookup("miss", latency_ms=0.0)
        values = phone_forms(number)
        return self._lookup("lookup_phone", values, start, f"number={mask(number)}")

    def lookup_identifier(self, kind: str, digits: str) -> Lookup:
        start = self.clock()
        if kind == "phone" and "phone" not in self.settings.identifier_fields:
            number = normalise_phone(digits, self.settings.default_country)
            if number is None:
                return Lookup("miss")
            return self._lookup("lookup_phone", phone_forms(number), start,
                                f"kind=phone value={mask(digits)}")
        values = {"kind": kind, "value": digits,
                  "field": self.settings.identifier_fields.get(kind, kind)}
        problem = self.identifier_kind_problem(kind)
        if problem:
            return self._error_lookup(start, problem)
        if self._is_number(kind) and not ascii_digits(digits):
            return Lookup("miss", latency_ms=self._ms(start))
        return self._lookup("lookup_identifier", values, start,
                            f"kind={kind} value={mask(digits)}")

    def verify(self, customer: Customer, kind: str, secret: str) -> Verdict:
        start = self.clock()
        step = self.steps["verify"]
        field = self.settings.verify_fields.get(kind, kind)
        low = step.value is not None
        assurance = (HASHED if kind in self.settings.verify_hashed else "low") if low else "high"
        problem = self.verify_kind_problem(kind)
        if problem:
            return self._verdict("error", start, assurance, problem, customer)
        values = {"id": customer.id, "kind": kind, "secret": secret, "field": field}
        try:
            status, doc = self._exchange(step, values, idempotent=False)
            if status in step.miss_status:
                raise _Fail(f"HTTP {status}: customer not found at verify")
            if low:
                found = Path(step.value.replace("{field}", field), "verify.value").find(doc)
                if not found:
                    raise _Fail(f"response: no field for verification kind {kind!r}")
                stored = found[0]
                if stored is None or (isinstance(stored, str) and stored.strip() == ""):
                    result = "no_secret"   # an empty field: nothing on file to compare with
                elif assurance == HASHED:
                    result = self._compare_hash(kind, secret, stored)
                else:
                    result = self._compare(kind, secret, stored)
            else:
                flag = step.verified.first(doc)
                if not isinstance(flag, bool):
                    raise _Fail(f"response: {step.verified.text!r} is not true or false")
                result = "verified" if flag else "rejected"
        except _Fail as err:
            self.breaker.failure()
            return self._verdict("error", start, assurance, str(err), customer)
        self.breaker.success()
        return self._verdict(result, start, assurance, None, customer)

    def identifier_kind_problem(self, kind: str) -> str | None:
        """Why an identifier of `kind` cannot be looked up (no field named for it), if so."""
        if kind == "phone" and "phone" not in self.settings.identifier_fields:
            return None                 # looked up as a number, by lookup_phone
        step = self.steps["lookup_identifier"]
        if ("field" in step.names or step.match) and kind not in self.settings.identifier_fields:
            return f"no field configured for identifier kind {kind!r} (crm.identifier_fields)"
        return None

    def verify_kind_problem(self, kind: str) -> str | None:
        """Why a secret of `kind` cannot be verified (no field named for it), if so."""
        step = self.steps["verify"]
        if ("field" in step.names or step.value is not None) \
                and kind not in self.settings.verify_fields:
            return f"no field configured for verification kind {kind!r} (crm.verify_fields)"
        return None

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._session.close()

    # -- lookups --

    def _is_number(self, kind: str) -> bool:
        return self.settings.identifier_types.get(kind) == "number"

    def _lookup(self, step_name: str, values: dict[str, str], start: float, what: str) -> Lookup:
        step = self.steps[step_name]
        numbers = frozenset({"value"}) if self._is_number(values.get("kind", "")) else frozenset()
        try:
            customers, complete = self._pages(step, values, numbers)
        except _Fail as err:
            self.breaker.failure()
            return self._error_lookup(start, str(err), step_name, what)
        self.breaker.success()
        result = lookup_of(customers, self._ms(start))
        if not complete and result.status != "ambiguous":
            # the pages not read may hold (another) customer with the number: undecided
            result = Lookup("ambiguous", result.customers, result.latency_ms,
                            f"more than {self.settings.max_pages} page(s) of candidates, "
                            f"the rest not read (crm.max_pages)")
        log.info("crm %s %s -> %s (%d) in %.0f ms", step_name, what, result.status,
                 len(result.customers), result.latency_ms)
        return result

    def _pages(self, step: Step, values: dict[str, str], numbers: frozenset[str]
               ) -> tuple[list[Customer], bool]:
        """Every customer the answer's pages hold that the local comparison keeps, and
        whether every page was read; stops as soon as two are found (ambiguous whatever
        follows) or at max_pages."""
        deadline = self.clock() + self.settings.budget
        found: list[Customer] = []
        follow: NextPage | None = None
        for page in range(self.settings.max_pages):
            status, doc = self._exchange(step, values, idempotent=True, deadline=deadline,
                                         numbers=numbers, follow=follow)
            if status in step.miss_status:
                break
            found += self._customers(step, doc, values)
            follow = self._next_page(step.paging, doc, page)
            if follow is None or len({c.id for c in found}) > 1:
                break
        else:
            if follow is not None:
                log.warning("crm %s: more than %d pages of candidates; the rest not read",
                            step.name, self.settings.max_pages)
                return found, False
        return found, True

    def _next_page(self, paging: Paging | None, doc: Any, page: int) -> NextPage | None:
        """How to ask for the page after `page` (None when there is none)."""
        if paging is None:
            return None
        if paging.next_url is not None:
            link = paging.next_url.first(doc)
            return NextPage(url=link) if isinstance(link, str) and link else None
        if paging.cursor is not None:
            marker = paging.cursor.first(doc)
            ok = isinstance(marker, (str, int)) and not isinstance(marker, bool) and marker != ""
            return NextPage(where=paging.where, name=paging.name, marker=str(marker)) \
                if ok else None
        return NextPage(where=paging.where, name=paging.name, marker=str(page + 2)) \
            if paging.more.first(doc) is True else None

    def _customers(self, step: Step, doc: Any, values: dict[str, str]) -> list[Customer]:
        records = self._records(step, doc)
        keep = self._keep(step, values)
        out = []
        for record in records:
            if not isinstance(record, dict):
                raise _Fail(f"response: a record under {step.results.text!r} is not an object")
            cid = step.id.first(record)
            if isinstance(cid, bool) or not isinstance(cid, (str, int)) or cid == "":
                raise _Fail(f"response: a record has no usable {step.id.text!r}")
            if not keep(record):
                continue
            parts = [p.first(record) for p in step.name_paths]
            parts = [str(p).strip() for p in parts if isinstance(p, (str, int, float))
                     and not isinstance(p, bool) and str(p).strip()]
            out.append(Customer(str(cid), " ".join(parts) or None, _kinds(step, record)))
        return out

    def _records(self, step: Step, doc: Any) -> list[Any]:
        """The records under `results`; [] when the answer holds an empty list there.

        With a fan-out path (`data.items[*].item`) an empty list before the `[*]` is an
        empty result; a path that reaches nothing at all is an answer we do not know."""
        found = step.results.find(doc)
        if not found:
            if step.results.fans_out and step.results.before_fan_out().find(doc) == [[]]:
                return []
            raise _Fail(f"response has no {step.results.text!r}")
        if len(found) == 1 and not step.results.fans_out:
            return found[0] if isinstance(found[0], list) else ([] if found[0] is None else found)
        return found

    def _keep(self, step: Step, values: dict[str, str]) -> Callable[[dict], bool]:
        """The local comparison a record must pass: the caller's number in one of
        `phone_fields`, or the identifier field holding exactly the keyed digits (`match`).
        Built once for the lookup's values, not again for every record."""
        if step.phone_fields:
            e164, country = values["e164"], self.settings.default_country
            return lambda record: any(same_number(v, e164, country) for path in step.phone_fields
                                      for v in _flat(path.find(record)))
        if step.match is not None:
            match = Path(step.match.replace("{field}", values["field"]), "match")
            keyed, number = values["value"], self._is_number(values["kind"])
            return lambda record: any(_same_identifier(v, keyed, number)
                                      for v in _flat(match.find(record)))
        return lambda record: True

    def _error_lookup(self, start: float, reason: str, step_name: str = "lookup",
                      what: str = "") -> Lookup:
        result = Lookup("error", latency_ms=self._ms(start), error=reason)
        log.warning("crm %s %s -> error: %s (%.0f ms)", step_name, what, reason, result.latency_ms)
        return result

    # -- verify --

    def _compare_hash(self, kind: str, secret: str, stored: Any) -> str:
        """A keyed secret against the salted scrypt hash kept in the CRM (hashed.py)."""
        if not isinstance(stored, str):
            raise _Fail(f"no stored value for verification kind {kind!r}")
        try:
            return "verified" if hashed.check(secret, stored) else "rejected"
        except hashed.NotAHash as err:
            raise _Fail(f"stored value for verification kind {kind!r}: {err}") from None

    def _compare(self, kind: str, secret: str, stored: Any) -> str:
        """Compare a keyed secret with the stored value, in constant time."""
        if isinstance(stored, bool) or not isinstance(stored, (str, int)):
            raise _Fail(f"no stored value for verification kind {kind!r}")
        text = str(stored).strip()
        if kind == "dob":
            m = re.match(r"^(\d{4})-(\d{2})-(\d{2})", text)
            if m:
                y, mo, d = m.groups()
                text = (self.settings.dob_format.replace("YYYY", y).replace("MM", mo)
                        .replace("DD", d))
        digits = re.sub(r"\D", "", text)
        expected = digits if digits else text
        if kind in self.settings.suffix_kinds:
            if len(secret) < 2 or len(secret) > len(expected):
                hmac.compare_digest(b"x", b"y")
                return "rejected"
            expected = expected[-len(secret):]
        same = hmac.compare_digest(expected.encode("utf-8"), secret.encode("utf-8"))
        return "verified" if same else "rejected"

    def _verdict(self, status: str, start: float, assurance: str, error: str | None,
                 customer: Customer) -> Verdict:
        verdict = Verdict(status, assurance, self._ms(start), error)
        line = ("crm verify customer=%s -> %s (%s assurance) in %.0f ms"
                + (": %s" if error else ""))
        args = [mask(customer.id), status, verdict.assurance, verdict.latency_ms]
        if error:
            args.append(error)
        (log.warning if error else log.info)(line, *args)
        return verdict

    # -- HTTP --

    def _ms(self, start: float) -> float:
        return round((self.clock() - start) * 1000.0, 1)

    def _exchange(self, step: Step, values: dict[str, str], idempotent: bool,
                  deadline: float | None = None, numbers: frozenset[str] = frozenset(),
                  follow: NextPage | None = None) -> tuple[int, Any]:
        """Send the step's request within the budget; (status, parsed JSON or None).
        `follow` asks for a later page (_next_page)."""
        if self._closed:
            raise _Fail("back end closed")
        if not self.breaker.allow():
            raise _Fail("circuit open after repeated failures")
        s = self.settings
        link = follow.url if follow is not None else None
        if deadline is None:
            deadline = self.clock() + s.budget
        target = link or self._target(step, values, numbers, follow)
        headers = {"Accept": "application/json", "User-Agent": "callgate"}
        headers.update(s.headers)
        for k, t in step.headers.items():
            v = t.render(values)
            if any(ch in v for ch in "\r\n\0"):
                raise _Fail(f"header {k} would hold a line break")
            headers[k] = v
        data = None
        if step.body is not None and link is None:
            body = render_body(step.body, values)
            if follow is not None and follow.where == "body" and isinstance(body, dict):
                body[follow.name] = follow.marker
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        attempt = 0
        refreshed = False
        last = ""
        method = "GET" if link is not None else step.method
        while True:
            remaining = deadline - self.clock()
            if remaining <= 0:
                raise _Fail(f"no answer within the {s.budget:g} s budget"
                            + (f" ({last})" if last else ""))
            status, reply_headers, body, ctype = self._attempt(method, target, headers, data,
                                                               deadline)
            if status == 401 and self.auth.refreshable and not refreshed:
                self.auth.invalidate()
                refreshed = True
                continue
            retryable = status >= 500 or status == 429 or status == -1
            if retryable and idempotent and attempt < s.retries:
                last = "connection refused" if status == -1 else f"HTTP {status}"
                wait = retry_after(reply_headers.get("Retry-After"))
                if wait is None:
                    wait = min(0.1 * (2 ** attempt), 1.0) * (0.5 + random.random() / 2)
                if wait >= deadline - self.clock():
                    raise _Fail(f"{last}; retry-after {wait:g} s exceeds the budget")
                self.sleep(wait)
                attempt += 1
                continue
            if status == -1:
                raise _Fail("connection refused")
            return status, self._parse(status, body, ctype, step, attempt)

    def _target(self, step: Step, values: dict[str, str], numbers: frozenset[str],
                follow: NextPage | None) -> str:
        """The request's path and query (joined to the API base when sent)."""
        target = step.url.render(values, lambda v: quote(v, safe=""))
        later = {follow.name: follow.marker} \
            if follow is not None and follow.where == "query" else {}
        query = [(k, later.pop(k) if k in later else t.render(values, numbers=numbers))
                 for k, t in step.query] + list(later.items())
        if query:
            target += ("&" if "?" in target else "?") + urlencode(query, quote_via=quote, safe="$")
        return target

    def _parse(self, status: int, body: bytes, ctype: str, step: Step, attempt: int) -> Any:
        tries = f" after {attempt + 1} attempts" if attempt else ""
        if status in step.miss_status:
            return None
        if 300 <= status < 400:
            raise _Fail(f"HTTP {status}: redirects are not followed")
        if status == 429:
            raise _Fail(f"HTTP 429 rate limited{tries}")
        if status >= 400:
            raise _Fail(f"HTTP {status}{tries}")
        if status == 204 or not body:
            raise _Fail(f"HTTP {status} with an empty body")
        if "json" not in ctype.lower():
            raise _Fail(f"response is {ctype.split(';')[0].strip() or 'untyped'}, not JSON")
        try:
            return json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise _Fail("malformed JSON in response") from None

    def _attempt(self, method: str, url: str, headers: dict, data: bytes | None,
                 deadline: float) -> tuple[int, dict, bytes, str]:
        """One request in a worker, waited for no longer than the budget allows.

        A worker that outlives the wait is abandoned and counted (`abandoned`); its
        socket is cut at the deadline, which frees it. Should it still hold on, the
        connector starts a fresh set of workers rather than queue behind it, up to
        MAX_ABANDONED stuck at once; past that a request fails at once."""
        remaining = deadline - self.clock()
        pool = self._workers()
        try:
            future = pool.submit(self._send, method, url, headers, data, deadline)
        except RuntimeError:
            raise _Fail("back end closed") from None
        try:
            return future.result(timeout=max(0.0, remaining))
        except FutureTimeout:
            if not future.cancel():
                self._abandon(future, pool)
            raise _Fail(f"no answer within the {self.settings.budget:g} s budget") from None

    def _workers(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._closed:
                raise _Fail("back end closed")
            stuck = self._stuck.get(self._pool, 0)
            if stuck >= WORKERS:
                # every worker of this pool is held by an abandoned request
                if sum(self._stuck.values()) >= MAX_ABANDONED:
                    raise _Fail(f"back end stuck ({sum(self._stuck.values())} requests "
                                "abandoned and still running)")
                self._pool.shutdown(wait=False)
                self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="callgate-crm")
                log.warning("crm: every worker held by an abandoned request; fresh workers "
                            "started")
            return self._pool

    def _abandon(self, future, pool: ThreadPoolExecutor) -> None:
        with self._lock:
            self.abandoned += 1
            self._stuck[pool] = self._stuck.get(pool, 0) + 1
            count = self.abandoned
        log.warning("crm: a request outlived its budget; its worker is abandoned "
                    "(%d so far)", count)

        def freed(_f, pool=pool) -> None:
            with self._lock:
                self._stuck[pool] -= 1
                if not self._stuck[pool]:
                    del self._stuck[pool]

        future.add_done_callback(freed)

    @property
    def stuck(self) -> int:
        """Abandoned requests whose worker has not let go yet."""
        with self._lock:
            return sum(self._stuck.values())

    def _send(self, method: str, url: str, headers: dict, data: bytes | None,
              deadline: float) -> tuple[int, dict, bytes, str]:
        """Runs in a worker: auth, request, body read; every failure becomes a safe _Fail."""
        try:
            auth_headers = self.auth.headers(self._token_fetch, deadline)
        except AuthFailed as err:
            raise _Fail(str(err)) from None
        return self._http(method, self._url(url), {**headers, **auth_headers}, data, deadline)

    def _url(self, target: str) -> str:
        """`target` on the API host: the one the token response named (instance_url,
        api_domain) or base_url. A next-page link must stay on that host."""
        base = self.settings.base_url
        if self.auth.api_base:
            base = self.auth.api_base + urlsplit(base).path
        if target.startswith("/"):
            return base + target
        origin = urlsplit(base)
        link = urlsplit(target)
        if (link.scheme, link.netloc) != (origin.scheme, origin.netloc):
            raise _Fail("next-page link points to another host; not followed")
        return target

    def _observe(self, token: bool, method: str, url: str, status: int | None, sent: float,
                 error: str | None) -> None:
        """Tell `observer` (callgate crm test) about one exchange; the URL may hold keyed
        digits, so only the observer (which masks them) sees it, never a log."""
        if self.observer is not None:
            self.observer(Exchange(token, method, url, status,
                                   round((self.clock() - sent) * 1000.0, 1), error))

    def _token_fetch(self, url: str, form: dict, headers: dict, deadline: float
                     ) -> tuple[int, bytes, str]:
        body = urlencode(form).encode("ascii")
        headers = {**headers, "Content-Type": "application/x-www-form-urlencoded"}
        status, _h, data, ctype = self._http("POST", url, headers, body, deadline, token=True)
        return status, data, ctype

    def _http(self, method: str, url: str, headers: dict, data: bytes | None, deadline: float,
              token: bool = False) -> tuple[int, dict, bytes, str]:
        s = self.settings
        remaining = deadline - self.clock()
        if remaining <= 0:
            raise _Fail(f"no answer within the {s.budget:g} s budget")
        # the whole exchange, headers and body, is cut at the deadline (https.deadline):
        # a server that drips its answer cannot keep this worker
        with cut_at(remaining) as watch:
            try:
                return self._exchange_once(method, url, headers, data, deadline, token)
            except _Fail:
                if watch.cuts:
                    raise _Fail(f"no answer within the {s.budget:g} s budget") from None
                raise

    def _exchange_once(self, method: str, url: str, headers: dict, data: bytes | None,
                       deadline: float, token: bool) -> tuple[int, dict, bytes, str]:
        s = self.settings
        remaining = deadline - self.clock()
        what = "oauth2 token endpoint: " if token else ""
        sent = self.clock()
        try:
            resp = self._session.request(
                method, url, headers=headers, data=data, stream=True, allow_redirects=False,
                verify=self._verify,
                timeout=(min(s.connect_timeout, remaining), min(s.read_timeout, remaining)))
        except requests.exceptions.RequestException as err:
            why = failure(err, f"no answer within the {s.budget:g} s budget")
            self._observe(token, method, url, None, sent, why)
            if why == REFUSED and not token:
                return -1, {}, b"", ""         # retried like a 5xx when idempotent
            raise _Fail(what + why) from None
        try:
            chunks, size = [], 0
            for chunk in resp.iter_content(16384):
                size += len(chunk)
                if size > MAX_BODY:
                    raise _Fail(f"{what}response larger than {MAX_BODY} bytes")
                chunks.append(chunk)
                if self.clock() > deadline:
                    raise _Fail(f"no answer within the {s.budget:g} s budget")
            self._observe(token, method, url, resp.status_code, sent, None)
            return (resp.status_code, dict(resp.headers), b"".join(chunks),
                    resp.headers.get("Content-Type", ""))
        except requests.exceptions.RequestException as err:
            self._observe(token, method, url, resp.status_code, sent, "response broken off")
            raise _Fail(f"{what}response broken off ({type(err).__name__})") from None
        finally:
            resp.close()
