"""`callgate crm test`: the check a technician runs on site against the real back end.

It builds the back end from the config's [crm] exactly as `callgate run` does
(make_crm, ca_bundle included), then shows step by step what happens on the
way to a customer: the host's DNS answer, its TLS certificate (subject and
expiry, checked with the same trust as the connector), the token fetch, each
request (method and URL, keyed digits masked; secrets never appear: they live
in headers and bodies, which are not shown), its status and time, and the
mapped result. Each failure gets one plain sentence saying what to check.

Exit status: 0 found (and verified with --verify); 3 the back end answered but
found no one, several customers (or could not tell: pages left unread), no secret
on file, or refused the secret; 1 the back end failed (network, TLS, auth, a
malformed answer); 2 a bad config or bad arguments, found before any request (a
--phone that is no number, a --kind or --secret-kind without a configured field,
a directory file that does not exist: a check creates nothing).
"""

from __future__ import annotations

import argparse
import getpass
import re
import socket
import ssl
import sys
import time
from typing import Callable, TextIO
from urllib.parse import unquote, urlsplit

from ..printable import printable
from ..privacy import mask
from .base import ascii_digits

FOUND, BACKEND_FAILED, CONFIG, NOT_FOUND = 0, 1, 2, 3
CHECK_TIMEOUT = 5.0                    # seconds for the DNS and TLS checks of a host


class _Refused(Exception):
    """An argument or a config this back end cannot serve; str() is the one line to show."""


def add_parser(sub) -> None:
    top = sub.add_parser("crm", help="check the CRM connection (crm test)",
                         description="Check the customer back end of the config.")
    top.set_defaults(func=lambda args: (top.print_help(sys.stderr), CONFIG)[1])
    acts = top.add_subparsers(metavar="ACTION")
    t = acts.add_parser(
        "test", help="look a customer up as a call would, step by step",
        description="Make the requests a call would make with the config's [crm] and show "
                    "each step: DNS, TLS certificate, token, request, status, time, result, "
                    "and what to check when one fails. Exit status: 0 found (and verified "
                    "with --verify), 3 not found, several found or secret refused, 1 the "
                    "back end failed, 2 bad config or arguments.")
    t.add_argument("--config", metavar="FILE", help="TOML configuration (its [crm] table)")
    who = t.add_mutually_exclusive_group(required=True)
    who.add_argument("--phone", metavar="NUMBER", help="look up by calling number")
    who.add_argument("--identifier", metavar="DIGITS", help="look up by keyed identifier")
    t.add_argument("--kind", default="customer_id",
                   help="the identifier's kind, as in crm.identifier_fields (default: "
                        "customer_id)")
    t.add_argument("--verify", action="store_true",
                   help="then ask for the customer's secret (not echoed) and verify it")
    t.add_argument("--secret-kind", default="pin",
                   help="the kind of secret for --verify (default: pin)")
    t.set_defaults(func=cmd_crm_test)


def cmd_crm_test(args: argparse.Namespace, out: TextIO | None = None,
                 ask: Callable[[str], str] | None = None) -> int:
    """`ask` reads the secret for --verify: getpass (no echo) unless a caller gives one."""
    return SiteCheck(out or sys.stdout, ask or getpass.getpass).run(args)


class SiteCheck:
    def __init__(self, out: TextIO, ask: Callable[[str], str]) -> None:
        self.out = out
        self.ask = ask
        self.checked: set[tuple[str, int]] = set()
        self.exchanges: list = []
        self.hidden: list[str] = []         # texts to mask wherever they appear
        self.shown: list = []               # the exchanges of the last step shown
        self.auth_files: dict[str, str] = {}
        self.number: str | None = None      # --phone in E.164

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    # -- the run --

    def run(self, args: argparse.Namespace) -> int:
        from ..config import ConfigError, Table, load
        from . import make_crm

        if args.identifier is not None and not ascii_digits(args.identifier):
            self.say("callgate crm test: --identifier takes digits, as a caller keys them")
            return CONFIG
        try:
            crm = (load(args.config) if args.config else Table({})).sub("crm")
            kind = crm.get("kind", str, "directory")
            if kind == "directory":
                _directory_exists(crm.get("directory", str, None))
            backend = make_crm(crm, crm.get("directory", str, None))
        except (ConfigError, _Refused) as err:
            self.say(f"callgate crm test: {err}")
            return CONFIG
        try:
            self.number = _asked_for(args, backend)
            self.auth_files = _credential_files(crm)
            return self._run(args, backend, kind)
        except _Refused as err:
            self.say(f"callgate crm test: {err}")
            return CONFIG
        finally:
            backend.close()

    def _run(self, args, backend, kind: str) -> int:
        from .rest import RestConnector

        self.say(f"back end: {kind}")
        rest = isinstance(backend, RestConnector)
        if rest:
            base = backend.settings.base_url
            named_by = getattr(backend.auth, "api_base_from", None)
            self.say(f"base_url: {base}"
                     + (f"  (ca_bundle {backend.settings.ca_bundle})"
                        if backend.settings.ca_bundle else "")
                     + (f"; the API host is the token response's {named_by}"
                        if named_by else ""))
            # the API host a token response names (api_base_from) replaces base_url: it is
            # checked once the token has named it
            hosts = [] if named_by else [base]
            token_url = getattr(backend.auth, "token_url", None)
            if token_url:
                hosts.append(token_url)
            for url in hosts:
                if not self._check_host(url, backend.settings.ca_bundle):
                    return BACKEND_FAILED
            backend.observer = self.exchanges.append
        result = self._lookup(args, backend)
        if rest:
            api = backend.auth.api_base
            if api and not self._check_host(api, backend.settings.ca_bundle, "API host "
                                            "named by the token response"):
                return BACKEND_FAILED
        self._show_exchanges()
        if result.status == "error":
            self.say(f"result: back end failed: {result.error}")
            self.say(f"diagnosis: {self._diagnosis(result.error)}")
            return BACKEND_FAILED
        if result.status == "miss":
            self.say("result: no customer found")
            self.say("diagnosis: the back end answered and holds no customer for this "
                     + ("number in the fields searched" if args.phone else
                        f"{args.kind} (crm.identifier_fields.{args.kind})"))
            return NOT_FOUND
        if result.status == "ambiguous":
            who = ", ".join(self._who(c) for c in result.customers) or "no one yet"
            if result.error:            # pages left unread: one found may not be the only one
                self.say(f"result: undecided: {who}; {result.error}")
            else:
                self.say(f"result: several customers ({len(result.customers)}): {who}")
            self.say("diagnosis: the caller would be asked for an identifier")
            return NOT_FOUND
        customer = result.customers[0]
        self.say(f"result: customer found: {self._who(customer)}")
        if not args.verify:
            return FOUND
        return self._verify(backend, customer, args.secret_kind)

    def _lookup(self, args, backend):
        if args.phone is not None:
            self.hidden.append(args.phone)
            self._hide_number(self.number)
            self.say(f"lookup: by phone {self._mask_text(self.number)}")
            return backend.lookup_phone(self.number)
        # a number-typed field is sent the number (005001 as 5001): hide that form too
        self.hidden += [args.identifier, str(int(args.identifier))]
        if args.kind == "phone":        # may be looked up as a number, in all its forms
            self._hide_number(_phone_of(args.identifier, backend))
        self.say(f"lookup: by {args.kind} {self._mask_text(args.identifier)}")
        return backend.lookup_identifier(args.kind, args.identifier)

    def _hide_number(self, number: str | None) -> None:
        from .phone import phone_forms

        if number is not None:
            forms = phone_forms(number)
            self.hidden += [forms["e164"], forms["digits"], forms["national"],
                            forms["tail"]]      # the tail: candidate searches send it alone

    def _verify(self, backend, customer, kind: str) -> int:
        try:
            secret = self.ask(f"{kind} of this customer (not shown): ")
        except EOFError:                # --verify </dev/null: the input ended
            secret = ""
        if not secret:
            raise _Refused("--verify: no secret given")
        self.hidden += [secret, customer.id]   # the verify URL names the customer
        self.exchanges.clear()
        verdict = backend.verify(customer, kind, secret)
        self._show_exchanges()
        if verdict.status == "verified":
            self.say(f"verify: verified ({verdict.assurance} assurance) in "
                     f"{verdict.latency_ms:.0f} ms")
            return FOUND
        if verdict.status == "rejected":
            self.say(f"verify: refused: the {kind} does not match ({verdict.assurance} "
                     f"assurance)")
            return NOT_FOUND
        if verdict.status == "no_secret":
            self.say(f"verify: no {kind} on file for this customer (the field is empty): "
                     f"a call goes to an agent as identified only")
            return NOT_FOUND
        self.say(f"verify: back end failed: {verdict.error}")
        self.say(f"diagnosis: {self._diagnosis(verdict.error)}")
        return BACKEND_FAILED

    # -- DNS and TLS --

    def _check_host(self, url: str, ca_bundle: str | None, what: str = "") -> bool:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port or 443
        if (host, port) in self.checked:
            return True
        self.checked.add((host, port))
        label = f"{host}:{port}" + (f" ({what})" if what else "")
        t0 = time.monotonic()
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror:
            self.say(f"DNS  {label}: not found")
            self.say(f"diagnosis: cannot resolve {host}: check base_url (or token_url) and "
                     f"the appliance's DNS server")
            return False
        addresses = sorted({i[4][0] for i in infos})
        self.say(f"DNS  {label}: {', '.join(addresses)} in {_ms(t0):.0f} ms")
        return self._check_tls(host, port, label, ca_bundle)

    def _check_tls(self, host: str, port: int, label: str, ca_bundle: str | None) -> bool:
        import requests.certs

        context = ssl.create_default_context(cafile=ca_bundle or requests.certs.where())
        t0 = time.monotonic()
        try:
            with socket.create_connection((host, port), timeout=CHECK_TIMEOUT) as sock:
                with context.wrap_socket(sock, server_hostname=host) as tls:
                    cert = tls.getpeercert()
                    version = tls.version()
        except ssl.SSLCertVerificationError as err:
            why = err.verify_message or "not trusted"
            self.say(f"TLS  {label}: certificate refused: {why}")
            self.say(f"diagnosis: {_tls_diagnosis(why, ca_bundle)}")
            return False
        except (ssl.SSLError, OSError) as err:
            self.say(f"TLS  {label}: no TLS session ({_os_reason(err)})")
            self.say(f"diagnosis: {_connect_diagnosis(err, host, port)}")
            return False
        subject = dict(x[0] for x in cert.get("subject", ()))
        names = [v for k, v in cert.get("subjectAltName", ()) if k in ("DNS", "IP Address")]
        expires = ssl.cert_time_to_seconds(cert["notAfter"])
        days = int((expires - time.time()) // 86400)
        common = subject.get("commonName")
        self.say(f"TLS  {label}: {version}, certificate for "
                 f"{common or ', '.join(names[:4]) or '(no name)'}"
                 + (f" (names: {', '.join(names[:4])})" if common and names else "")
                 + f", expires {time.strftime('%Y-%m-%d', time.gmtime(expires))} "
                   f"(in {days} days) in {_ms(t0):.0f} ms")
        if days < 14:
            self.say("warning: the certificate expires within two weeks")
        return True

    # -- what to show --

    def _show_exchanges(self) -> None:
        self.shown = list(self.exchanges)
        for x in self.shown:
            what = "token  " if x.token else "request"
            answer = f"HTTP {x.status}" if x.status is not None else f"no answer ({x.error})"
            self.say(f"{what} {x.method} {self._mask_url(x.url)} -> {answer} in {x.ms:.0f} ms")
        self.exchanges.clear()

    def _mask_url(self, url: str) -> str:
        """The URL with hidden values masked in its path and query, never in its host
        (a keyed "1" must not turn 127.0.0.1 into *27.0.0.*)."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""
        return origin + self._mask_text(unquote(url[len(origin):]))

    def _mask_text(self, text: str) -> str:
        for value in sorted({h for h in self.hidden if h}, key=len, reverse=True):
            text = text.replace(value, mask(value) if len(value) > 4 else "*" * len(value))
        return text

    def _who(self, customer) -> str:
        return f"id {mask(customer.id)}" + (f", {printable(customer.name)}"
                                           if customer.name else "")

    def _diagnosis(self, error: str | None) -> str:
        return diagnose(error or "", self.shown, self.auth_files)


def _directory_exists(path: str | None) -> None:
    """A check creates nothing: a directory file that is not there is said so, not made."""
    from pathlib import Path

    from . import directory

    where = Path(path) if path else directory.DEFAULT_PATH
    if not where.exists():
        raise _Refused(f"the directory {where} does not exist (name it in [crm] directory "
                       f"with --config, or fill it with `callgate directory import`)")


def _asked_for(args: argparse.Namespace, backend) -> str | None:
    """Refuse, before any request, what the back end cannot be asked: a --phone that is no
    number, a --kind or --secret-kind the config names no field for. The caller's number
    in E.164 for --phone."""
    from .rest import RestConnector

    number = None
    if args.phone is not None:
        number = _phone_of(args.phone, backend)
        if number is None:
            raise _Refused("--phone: not a phone number")
    if isinstance(backend, RestConnector):
        if args.identifier is not None:
            problem = backend.identifier_kind_problem(args.kind)
            if problem:
                raise _Refused(f"--kind {args.kind}: {problem}")
        if args.verify:
            problem = backend.verify_kind_problem(args.secret_kind)
            if problem:
                raise _Refused(f"--secret-kind {args.secret_kind}: {problem}")
    return number


def _phone_of(text: str, backend) -> str | None:
    """`text` in E.164 as the back end reads numbers (its default country), or None."""
    from .phone import normalise_phone
    from .rest import RestConnector

    country = (backend.settings.default_country if isinstance(backend, RestConnector)
               else getattr(backend, "default_country", "US"))
    return normalise_phone(text, country)


def diagnose(error: str, exchanges: list, files: dict[str, str]) -> str:
    """One plain sentence for a failed step: what the technician should check."""
    secret = files.get("client_secret_file") or files.get("token_file") \
        or files.get("key_file") or files.get("password_file") or "the credential file"
    m = re.match(r"oauth2 token endpoint answered HTTP (\d+)(?: \((\S+)\))?", error)
    if m:
        status, code = m.group(1), m.group(2)
        if code == "invalid_grant" and "refresh_token_file" in files:
            return (f"{status} from the token endpoint ({code}): the refresh token in "
                    f"{files['refresh_token_file']} is expired or revoked; make a new one")
        return (f"{status} from the token endpoint" + (f" ({code})" if code else "")
                + f": check the client id and the secret in {secret}"
                + (" and the token_url" if status == "404" else ""))
    if error.startswith("oauth2 token endpoint sent no access_token"):
        code = re.search(r"\((\S+)\)", error)
        return ("the token endpoint answered without a token"
                + (f" ({code.group(1)})" if code else "")
                + f": check the client id, the secret in {secret}"
                + (f", the refresh token in {files['refresh_token_file']}"
                   if "refresh_token_file" in files else "")
                + " and the org id / scopes")
    if error.startswith("oauth2 token response has no usable"):
        return "the token response did not name an https:// API host: is token_url right?"
    if error.startswith("oauth2 token endpoint: "):
        return "the token endpoint could not be reached: " + \
            _transport_diagnosis(error[len("oauth2 token endpoint: "):])
    m = re.match(r"response has no '([^']+)'", error)
    if m:
        return (f"HTTP {_last_status(exchanges) or 200} but no field '{m.group(1)}' in the "
                f"answer: is base_url the API host (and the API version right)?")
    if "not JSON" in error:
        return ("the answer is not JSON: base_url probably points at a web site or a proxy "
                "page, not the API host")
    m = re.match(r"HTTP (\d+)", error)
    if m:
        return _status_diagnosis(int(m.group(1)), secret)
    if error.startswith("no field configured"):
        key = "crm.identifier_fields" if "identifier" in error else "crm.verify_fields"
        return f"name the CRM field for this kind in {key}"
    if error.startswith("no stored value"):
        return "the customer has nothing in the field named by crm.verify_fields"
    if error.startswith("stored value for verification kind"):
        return ("the field named by crm.verify_fields does not hold a hash made by "
                "`callgate directory hash-secret` (crm.verify_hashed says it should)")
    if error.startswith("response"):
        return "the answer is not shaped as configured: check results, id and name of the step"
    return _transport_diagnosis(error)


def _status_diagnosis(status: int, secret: str) -> str:
    if status == 401:
        return (f"401 from the API: the credentials were refused (check {secret}: expired, "
                f"revoked, for another account, or missing a scope)")
    if status == 403:
        return ("403 from the API: the credentials work but may not read contacts (scopes, "
                "the integration user's permissions)")
    if status == 404:
        return "404 from the API: is base_url the API host, and the API version right?"
    if status == 400:
        return ("400 from the API: the request was refused; check the field names "
                "(crm.identifier_fields) and their types (crm.identifier_types: a number "
                "field needs \"number\")")
    if status == 429:
        return "429: the back end is rate limiting us; wait and try again, or lower the load"
    if 300 <= status < 400:
        return f"{status}: a redirect (not followed): base_url should be the final API host"
    if status >= 500:
        return f"{status}: the back end had an internal error; try again, or ask its admin"
    return f"HTTP {status} from the API"


def _transport_diagnosis(error: str) -> str:
    if error.startswith("TLS"):
        return ("the TLS certificate was refused: name the business's CA in [crm] ca_bundle, "
                "or check base_url's host name")
    if "refused" in error:
        return "the connection was refused: wrong port, the service is down, or a firewall"
    if "host not found" in error:
        return "the host name does not resolve: check base_url and the appliance's DNS"
    if "budget" in error or "timed out" in error:
        return ("no answer in time: check the network and firewall, or raise [crm] budget "
                "(the caller waits that long)")
    if "circuit open" in error:
        return "too many failures in a row; the back end is given a rest (breaker_cooldown)"
    if "another host" in error:
        return "a next-page link pointed at another host; check the API host in base_url"
    return error


def _tls_diagnosis(why: str, ca_bundle: str | None) -> str:
    low = why.lower()
    if "expired" in low:
        return "the server's certificate has expired: the back end's admin must renew it"
    if "hostname" in low or "ip address mismatch" in low:
        return "the certificate is for another name: base_url must use the host it names"
    where = f"the CA in {ca_bundle}" if ca_bundle else "the system's CA list"
    return (f"the certificate is not signed by {where}: set [crm] ca_bundle to the "
            f"business's CA certificate (PEM)")


def _connect_diagnosis(err: BaseException, host: str, port: int) -> str:
    text = _os_reason(err)
    if "refused" in text:
        return (f"{host}:{port} refused the connection: wrong port in base_url, the service "
                f"is down, or a firewall")
    if "timed out" in text:
        return f"{host}:{port} did not answer: a firewall or routing problem"
    return f"no TLS session with {host}:{port}: is it an HTTPS port?"


def _os_reason(err: BaseException) -> str:
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    if isinstance(err, (TimeoutError, socket.timeout)):
        return "timed out"
    return type(err).__name__


def _last_status(exchanges: list) -> int | None:
    for x in reversed(exchanges):
        if x.status is not None and not x.token:
            return x.status
    return None


def _credential_files(crm) -> dict[str, str]:
    """The [crm.auth] keys naming credential files (presets name none), for the diagnosis."""
    auth = crm.data.get("auth", {})
    return {k: v for k, v in auth.items() if k.endswith("_file") and isinstance(v, str)} \
        if isinstance(auth, dict) else {}


def _ms(t0: float) -> float:
    return (time.monotonic() - t0) * 1000.0

