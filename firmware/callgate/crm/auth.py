"""Auth profiles for the REST connector: none, bearer, api_key, basic, oauth2.

Every credential comes from a file with tight permissions (0600 or stricter),
never from the config file itself; a file open to group or others is refused
at start with one line naming it. Credentials never appear in a log, an
exception message or an error string: reasons here name the profile and the
HTTP status, nothing more.
"""

from __future__ import annotations

import base64
import json
import re
import stat
import threading
import time
from pathlib import Path
from typing import Callable
from urllib.parse import urljoin, urlsplit

from ..config import ConfigError, Table

KINDS = ("none", "bearer", "api_key", "basic", "oauth2")
GRANTS = ("client_credentials", "refresh_token")
_ERROR_CODE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


class AuthFailed(Exception):
    """The credentials could not be obtained for this call; str() is one safe line."""


def read_secret_file(path_text: str, key: str) -> str:
    """The first line of a credential file, refused when group or others may open it."""
    path = Path(path_text).expanduser()
    try:
        st = path.stat()
    except OSError as err:
        raise ConfigError(f"{key}: cannot read {path} ({err.strerror or type(err).__name__})") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{key}: {path} is not a regular file")
    if st.st_mode & 0o077:
        raise ConfigError(f"{key}: {path} is open to group or others (mode "
                          f"{stat.S_IMODE(st.st_mode):04o}); chmod 600 it")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{key}: cannot read {path} ({type(err).__name__})") from None
    value = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not value:
        raise ConfigError(f"{key}: {path} is empty")
    return value


def _header_safe(value: str, key: str) -> str:
    if any(ch in value for ch in "\r\n\0"):
        raise ConfigError(f"{key}: the credential holds a line break")
    return value


# fetch(url, form, headers, deadline) -> (status, body bytes, content type)
Fetch = Callable[[str, dict, dict, float], tuple[int, bytes, str]]


class Auth:
    kind = "none"
    refreshable = False
    api_base: str | None = None        # the API host a token response named, if any

    def headers(self, fetch: Fetch, deadline: float) -> dict[str, str]:
        return {}

    def invalidate(self) -> None:
        """A 401 came back: forget what we hold so the next call gets it fresh."""


class BearerAuth(Auth):
    kind = "bearer"

    def __init__(self, token: str, scheme: str = "Bearer") -> None:
        self._value = f"{scheme} {token}" if scheme else token

    def headers(self, fetch: Fetch, deadline: float) -> dict[str, str]:
        return {"Authorization": self._value}

    def __repr__(self) -> str:
        return "BearerAuth(<hidden>)"


class ApiKeyAuth(Auth):
    kind = "api_key"

    def __init__(self, header: str, key: str, prefix: str = "") -> None:
        self.header = header
        self._value = f"{prefix}{key}"

    def headers(self, fetch: Fetch, deadline: float) -> dict[str, str]:
        return {self.header: self._value}

    def __repr__(self) -> str:
        return f"ApiKeyAuth({self.header}: <hidden>)"


class BasicAuth(Auth):
    kind = "basic"

    def __init__(self, username: str, password: str) -> None:
        raw = f"{username}:{password}".encode("utf-8")
        self._value = "Basic " + base64.b64encode(raw).decode("ascii")

    def headers(self, fetch: Fetch, deadline: float) -> dict[str, str]:
        return {"Authorization": self._value}

    def __repr__(self) -> str:
        return "BasicAuth(<hidden>)"


class OAuth2ClientCredentials(Auth):
    """OAuth 2.0 access tokens from client credentials (RFC 6749 section 4.4) or a
    refresh token (section 6), cached.

    The token is kept until shortly before `expires_in` runs out (a tenth of its
    life, at most 60 s, early); without `expires_in` it is kept until the API
    answers 401. A 401 drops it, and the connector asks once more with a new one.

    Some vendors say in the token response which host serves the API (Salesforce
    `instance_url`, Zoho `api_domain`): with `api_base_from` naming that field the
    connector sends its requests there. Only an https:// origin is taken.
    """

    kind = "oauth2"
    refreshable = True

    def __init__(self, token_url: str, client_id: str, client_secret: str, scope: str = "",
                 params: dict[str, str] | None = None, client_auth: str = "body",
                 scheme: str = "Bearer", clock: Callable[[], float] = time.monotonic,
                 refresh_token: str | None = None, api_base_from: str | None = None) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self._secret = client_secret
        self.scope = scope
        self.params = dict(params or {})
        self.client_auth = client_auth
        self.scheme = scheme
        self.clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires: float | None = None
        self._refresh = refresh_token
        self.grant = "refresh_token" if refresh_token is not None else "client_credentials"
        self.api_base_from = api_base_from
        self.api_base = None

    def __repr__(self) -> str:
        return f"OAuth2ClientCredentials({self.token_url}, client_id={self.client_id})"

    def invalidate(self) -> None:
        with self._lock:
            self._token = None
            self._expires = None

    def headers(self, fetch: Fetch, deadline: float) -> dict[str, str]:
        with self._lock:
            if self._token is None or (self._expires is not None and self.clock() >= self._expires):
                self._token, self._expires = self._fetch(fetch, deadline)
            return {"Authorization": f"{self.scheme} {self._token}"}

    def _fetch(self, fetch: Fetch, deadline: float) -> tuple[str, float | None]:
        form = {"grant_type": self.grant, **self.params}
        if self._refresh is not None:
            form["refresh_token"] = self._refresh     # its scope was fixed when it was made
        elif self.scope:
            form["scope"] = self.scope
        headers = {"Accept": "application/json"}
        if self.client_auth == "basic":
            raw = f"{self.client_id}:{self._secret}".encode("utf-8")
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode("ascii")
        else:
            form["client_id"] = self.client_id
            form["client_secret"] = self._secret
        status, body, _ctype = fetch(self.token_url, form, headers, deadline)
        try:
            doc = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            doc = None
        code = _error_code(doc)
        if status != 200:
            raise AuthFailed(f"oauth2 token endpoint answered HTTP {status}{code}")
        if doc is None:
            raise AuthFailed("oauth2 token endpoint sent malformed JSON")
        token = doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token or any(ch in token for ch in "\r\n"):
            raise AuthFailed(f"oauth2 token endpoint sent no access_token{code}")
        if self.api_base_from:
            self.api_base = _origin(doc.get(self.api_base_from), self.api_base_from)
        expires_in = doc.get("expires_in")
        try:
            life = float(expires_in) if expires_in is not None else None
        except (TypeError, ValueError):
            life = None
        expires = None
        if life is not None and life > 0:
            expires = self.clock() + life - min(60.0, life / 10)
        return token, expires


def _error_code(doc: object) -> str:
    """` (invalid_client)`: the OAuth error code of a token answer (RFC 6749 5.2), when it
    is a plain code; a description is never shown (it may echo what was sent)."""
    code = doc.get("error") if isinstance(doc, dict) else None
    return f" ({code})" if isinstance(code, str) and _ERROR_CODE.match(code) else ""


def _origin(value: object, field: str) -> str:
    """The https:// origin a token response named as the API host; AuthFailed otherwise."""
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme != "https" or not parts.hostname or parts.username \
            or parts.password or parts.query or parts.fragment or parts.path not in ("", "/"):
        raise AuthFailed(f"oauth2 token response has no usable {field} (an https:// host)")
    return f"https://{parts.netloc}"


def make_auth(table: Table, base_url: str, clock: Callable[[], float] = time.monotonic) -> Auth:
    """The profile an auth table ([crm.auth], [writeback.auth]) asks for; ConfigError naming
    the key (an unknown one too) otherwise."""
    auth = _profile(table, base_url, clock)
    bad = table.unknown()
    if bad:
        raise ConfigError(f"{bad[0]}: unknown key")
    return auth


def _profile(table: Table, base_url: str, clock: Callable[[], float]) -> Auth:
    kind = table.choice("kind", KINDS, "none")
    if kind == "none":
        return Auth()
    if kind == "bearer":
        token = read_secret_file(table.get("token_file", str), table.key("token_file"))
        return BearerAuth(_header_safe(token, table.key("token_file")),
                          table.get("scheme", str, "Bearer"))
    if kind == "api_key":
        header = table.get("header", str, "X-API-Key")
        if not header or any(ch in header for ch in " :\r\n"):
            raise ConfigError(f"{table.key('header')}: {header!r} is not a header name")
        key = read_secret_file(table.get("key_file", str), table.key("key_file"))
        return ApiKeyAuth(header, _header_safe(key, table.key("key_file")),
                          table.get("prefix", str, ""))
    if kind == "basic":
        username = table.get("username", str)
        if ":" in username:
            raise ConfigError(f"{table.key('username')}: may not hold ':'")
        password = read_secret_file(table.get("password_file", str), table.key("password_file"))
        return BasicAuth(username, password)
    token_url = table.get("token_url", str).replace("{base_url}", base_url.rstrip("/"))
    if token_url.startswith("/"):
        token_url = urljoin(base_url.rstrip("/") + "/", token_url.lstrip("/"))
    if not token_url.startswith("https://"):
        raise ConfigError(f"{table.key('token_url')}: must be an https:// URL")
    params = table.get("params", dict, {})
    for k, v in params.items():
        if not isinstance(v, str):
            raise ConfigError(f"{table.key('params')}.{k}: expected a string, got {v!r}")
    secret = read_secret_file(table.get("client_secret_file", str), table.key("client_secret_file"))
    refresh = None
    if table.choice("grant", GRANTS, "client_credentials") == "refresh_token":
        refresh = read_secret_file(table.get("refresh_token_file", str),
                                   table.key("refresh_token_file"))
    elif "refresh_token_file" in table.data:
        raise ConfigError(f"{table.key('refresh_token_file')}: only with "
                          f"grant = \"refresh_token\"")
    api_base_from = table.get("api_base_from", str, None)
    if api_base_from is not None and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", api_base_from):
        raise ConfigError(f"{table.key('api_base_from')}: {api_base_from!r} is not a field name")
    return OAuth2ClientCredentials(
        token_url, table.get("client_id", str), secret,
        scope=table.get("scope", str, "").replace("{base_url}", base_url.rstrip("/")),
        params=params, client_auth=table.choice("client_auth", ("body", "basic"), "body"),
        scheme=table.get("scheme", str, "Bearer"), clock=clock,
        refresh_token=refresh, api_base_from=api_base_from)
