"""Fake CRM vendors, each served over real HTTPS on loopback (https_server.py), that
behave as the vendor's published API documentation says: the paths, parameters,
field names, answer shapes, error bodies, empty results, rate limiting, expired
tokens and paging. The presets are tested against these contracts, not against a
restatement of themselves. The documentation each behaviour follows is cited beside it.

Every fake offers the same handle to the tests:
  add(name, phone=None, mobile=None, ident=None, pin=None) -> the record's id
  crm(tmp_path, **over) -> the [crm] table a business would write for this preset
  expire_tokens()  the tokens handed out so far now answer 401 (as an expired token)
  throttle(n, retry_after)  the next n API requests answer 429 (or the vendor's own)
  api_requests()  the requests the API host received
"""

from __future__ import annotations

import itertools
import re
import threading
import uuid
from typing import Any, Callable
from urllib.parse import quote, urlencode

import phonenumbers

from https_server import HttpsServer, Reply, Request, secret_file


def national_digits(text: str | None) -> str:
    """A stored phone number's national digits, however it was typed (US default)."""
    if not text:
        return ""
    try:
        return str(phonenumbers.parse(text, "US").national_number)
    except phonenumbers.NumberParseException:
        return re.sub(r"\D", "", text)


class FakeVendor:
    """What every fake shares: its servers, the tokens it handed out, throttling."""
    preset = ""

    def __init__(self, tmp_path, ca=None) -> None:
        self.tmp_path = tmp_path
        self.api = HttpsServer(tmp_path, ca=ca, handler=self._api)
        self.ca = self.api.ca
        # A vendor's other hosts (login, accounts), added by subclasses; all share self.ca.
        self.extra_servers: list[HttpsServer] = []
        self.records: list[dict] = []
        self.tokens: set[str] = set()
        self._throttle = 0
        self._retry_after = "0"
        self._ids = itertools.count(1)
        self.lock = threading.Lock()

    def __enter__(self):
        for server in self.extra_servers:
            server.__enter__()
        self.api.__enter__()
        return self

    def __exit__(self, *exc):
        self.api.__exit__(*exc)
        for server in reversed(self.extra_servers):
            server.__exit__(*exc)

    @property
    def ca_path(self):
        return self.api.ca_path

    def expire_tokens(self) -> None:
        self.tokens.clear()

    def throttle(self, n: int = 1, retry_after: str = "0") -> None:
        self._throttle, self._retry_after = n, retry_after

    def api_requests(self) -> list[Request]:
        return self.api.sent()

    def _new_token(self) -> str:
        token = f"tok-{uuid.uuid4().hex[:12]}"
        self.tokens.add(token)
        return token

    def _throttled(self) -> bool:
        with self.lock:
            if self._throttle > 0:
                self._throttle -= 1
                return True
        return False

    def _api(self, req: Request) -> Reply:
        raise NotImplementedError


# --- HubSpot -----------------------------------------------------------------------------
# CRM search: https://developers.hubspot.com/docs/api/crm/search (POST
#   /crm/v3/objects/{object}/search; filterGroups ORed, filters in a group ANDed; EQ; limit
#   up to 200; "after" cursor from paging.next.after; answer {total, results, paging}).
# Calculated phone properties hs_searchable_calculated_phone_number / _mobile_number: the
#   number without formatting or country code, made for search
#   (https://knowledge.hubspot.com/properties/hubspots-default-contact-properties).
# Private app tokens (Bearer): https://developers.hubspot.com/docs/api/private-apps
# Errors and limits: https://developers.hubspot.com/docs/api/error-handling,
#   https://developers.hubspot.com/docs/api/usage-details (429, policyName SECONDLY).

class FakeHubSpot(FakeVendor):
    preset = "hubspot"
    TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"

    def __init__(self, tmp_path, ca=None) -> None:
        super().__init__(tmp_path, ca)
        self.tokens = {self.TOKEN}

    def add(self, name, phone=None, mobile=None, ident=None, pin=None) -> str:
        rid = str(1000 + next(self._ids))
        first, _, last = name.partition(" ")
        props = {"firstname": first, "lastname": last, "phone": phone, "mobilephone": mobile,
                 "customer_number": ident, "ivr_pin": pin, "hs_object_id": rid,
                 "hs_searchable_calculated_phone_number": national_digits(phone) or None,
                 "hs_searchable_calculated_mobile_number": national_digits(mobile) or None}
        self.records.append({"id": rid, "properties": props})
        return rid

    def crm(self, tmp_path, **over) -> dict:
        return {"kind": "hubspot", "base_url": self.api.url, "ca_bundle": str(self.ca_path),
                "auth": {"kind": "bearer",
                         "token_file": secret_file(tmp_path, "hubspot-token", self.TOKEN)},
                "identifier_fields": {"customer_id": "customer_number"},
                "verify_fields": {"pin": "ivr_pin"}, **over}

    def _error(self, status, message, category) -> Reply:
        return Reply.json({"status": "error", "message": message,
                           "correlationId": str(uuid.uuid4()), "category": category}, status)

    def _api(self, req: Request) -> Reply:
        auth = req.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            return self._error(401, "Authentication credentials not found.",
                               "INVALID_AUTHENTICATION")
        if self._throttled():
            return Reply.json({"status": "error", "message": "You have reached your secondly "
                               "limit.", "errorType": "RATE_LIMIT",
                               "correlationId": str(uuid.uuid4()), "policyName": "SECONDLY"},
                              429, headers={"Retry-After": self._retry_after})
        if req.method == "POST" and req.path == "/crm/v3/objects/contacts/search":
            return self._search(req.json)
        m = re.fullmatch(r"/crm/v3/objects/contacts/(\d+)", req.path)
        if req.method == "GET" and m:
            for r in self.records:
                if r["id"] == m.group(1):
                    wanted = req.query.get("properties", "").split(",")
                    return Reply.json({"id": r["id"], "properties": self._props(r, wanted),
                                       "archived": False})
            return self._error(404, "Object not found.  objectId are usually numeric.",
                               "OBJECT_NOT_FOUND")
        return self._error(404, "Unable to infer object type from: " + req.path,
                           "OBJECT_NOT_FOUND")

    def _props(self, r: dict, wanted: list[str]) -> dict:
        keep = {"hs_object_id", "createdate", "lastmodifieddate", *wanted}
        return {k: v for k, v in r["properties"].items() if k in keep}

    def _search(self, body: dict) -> Reply:
        known = set(self.records[0]["properties"]) if self.records else set()
        groups = body.get("filterGroups", [])
        for g in groups:
            for f in g["filters"]:
                if known and f["propertyName"] not in known:
                    return self._error(400, f"There was a problem with the request.",
                                       "VALIDATION_ERROR")

        def matches(r):
            props = r["properties"]
            return any(all(f["operator"] == "EQ" and props.get(f["propertyName"]) is not None
                           and str(props[f["propertyName"]]).lower() == str(f["value"]).lower()
                           for f in g["filters"]) for g in groups)

        found = [r for r in self.records if matches(r)]
        start = int(body.get("after", 0) or 0)
        limit = min(int(body.get("limit", 10)), 200)
        page = found[start:start + limit]
        doc: dict[str, Any] = {"total": len(found), "results": [
            {"id": r["id"], "properties": self._props(r, body.get("properties", [])),
             "createdAt": "2024-03-01T10:00:00Z", "updatedAt": "2024-03-02T10:00:00Z",
             "archived": False} for r in page]}
        if start + limit < len(found):
            doc["paging"] = {"next": {"after": str(start + limit),
                                      "link": f"?after={start + limit}"}}
        return Reply.json(doc)


# --- Salesforce --------------------------------------------------------------------------
# OAuth 2.0 client credentials flow (token at the org's My Domain, answer with
#   instance_url): https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_client_credentials_flow.htm
# REST API query (SOQL; {totalSize, done, nextRecordsUrl, records}):
#   https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_query.htm
#   and the batch size (Sforce-Query-Options; 2000 by default):
#   https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_queryoptions.htm
# Parameterized search (SOSL; in=PHONE matches phone fields whatever their format):
#   https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_search_parameterized.htm
# SOQL literals (numbers bare, strings quoted):
#   https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_quotedstringescapes.htm
# Errors ([{message, errorCode}], INVALID_SESSION_ID on 401, REQUEST_LIMIT_EXCEEDED on 403:
#   the REST API documents no 429): https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm

class FakeSalesforce(FakeVendor):
    preset = "salesforce"
    CLIENT_ID, CLIENT_SECRET = "3MVG9-consumer-key", "consumer-secret-7f3a"
    FIELDS = {"Id": "id", "Name": "text", "Phone": "phone", "MobilePhone": "phone",
              "HomePhone": "phone", "OtherPhone": "phone", "Customer_Number__c": "double",
              "IVR_PIN__c": "text"}

    def __init__(self, tmp_path, ca=None) -> None:
        super().__init__(tmp_path, ca)
        self.login = HttpsServer(tmp_path, ca=self.ca, handler=self._token)   # My Domain
        self.extra_servers.append(self.login)
        self.batch_size = 2000
        self._pages: dict[str, list] = {}

    def add(self, name, phone=None, mobile=None, ident=None, pin=None) -> str:
        rid = f"003xx00000{next(self._ids):05d}AAA"
        self.records.append({"Id": rid, "Name": name, "Phone": phone, "MobilePhone": mobile,
                             "HomePhone": None, "OtherPhone": None,
                             "Customer_Number__c": float(ident) if ident else None,
                             "IVR_PIN__c": pin})
        return rid

    def crm(self, tmp_path, **over) -> dict:
        return {"kind": "salesforce", "base_url": self.login.url, "ca_bundle": str(self.ca_path),
                "auth": {"client_id": self.CLIENT_ID, "client_secret_file":
                         secret_file(tmp_path, "sf-secret", self.CLIENT_SECRET)},
                "identifier_fields": {"customer_id": "Customer_Number__c"},
                "identifier_types": {"customer_id": "number"},
                "verify_fields": {"pin": "IVR_PIN__c"}, **over}

    def _token(self, req: Request) -> Reply:
        if req.method != "POST" or req.path != "/services/oauth2/token":
            return Reply(404, b"<html>Page not found</html>", {"Content-Type": "text/html"})
        f = req.form
        if f.get("grant_type") != "client_credentials" or f.get("client_id") != self.CLIENT_ID \
                or f.get("client_secret") != self.CLIENT_SECRET:
            return Reply.json({"error": "invalid_client",
                               "error_description": "invalid client credentials"}, 400)
        return Reply.json({"access_token": "00Dxx0000001gPL!" + self._new_token(),
                           "signature": "c2lnbmF0dXJl", "scope": "api",
                           "instance_url": self.api.url, "token_type": "Bearer",
                           "id": f"{self.login.url}/id/00Dxx0000001gPL/005xx000001X8Uz",
                           "issued_at": "1700000000000"})

    def _errors(self, status, message, code) -> Reply:
        return Reply.json([{"message": message, "errorCode": code}], status)

    def _api(self, req: Request) -> Reply:
        auth = req.headers.get("authorization", "")
        if not auth.startswith("Bearer 00Dxx0000001gPL!") or auth[23:] not in self.tokens:
            return self._errors(401, "Session expired or invalid", "INVALID_SESSION_ID")
        if self._throttled():
            return self._errors(403, "TotalRequests Limit exceeded.", "REQUEST_LIMIT_EXCEEDED")
        base = "/services/data/v60.0"
        if req.path == base + "/parameterizedSearch":
            return self._sosl(req.query)
        if req.path == base + "/query":
            return self._soql(req.query.get("q", ""))
        if req.path.startswith(base + "/query/"):
            return self._more(req.path.rsplit("/", 1)[1])
        m = re.fullmatch(re.escape(base) + r"/sobjects/Contact/(\w+)", req.path)
        if m:
            for r in self.records:
                if r["Id"] == m.group(1):
                    fields = req.query.get("fields", "").split(",")
                    return Reply.json({"attributes": self._attrs(r), "Id": r["Id"],
                                       **{k: r[k] for k in fields if k in r}})
            return self._errors(404, "The requested resource does not exist", "NOT_FOUND")
        return self._errors(404, "The requested resource does not exist", "NOT_FOUND")

    def _attrs(self, r):
        return {"type": "Contact", "url": f"/services/data/v60.0/sobjects/Contact/{r['Id']}"}

    def _sosl(self, q: dict) -> Reply:
        if q.get("sobject") != "Contact" or q.get("in") != "PHONE":
            return self._errors(400, "unsupported search", "INVALID_SEARCH")
        digits = re.sub(r"\D", "", q.get("q", ""))
        fields = q.get("Contact.fields", "Id").split(",")
        found = [r for r in self.records
                 if digits and any(digits in re.sub(r"\D", "", r[k] or "")
                                   for k, t in self.FIELDS.items() if t == "phone")]
        limit = int(q.get("Contact.limit", "2000"))
        return Reply.json({"searchRecords": [
            {"attributes": self._attrs(r), **{k: r[k] for k in fields}} for r in found[:limit]]})

    _SOQL = re.compile(r"SELECT (.+?) FROM Contact WHERE (\w+) = ('(?:[^'\\]|\\.)*'|[\d.]+)"
                       r"(?: LIMIT (\d+))?$")

    def _soql(self, soql: str) -> Reply:
        m = self._SOQL.match(soql)
        if not m:
            return self._errors(400, "unexpected token", "MALFORMED_QUERY")
        fields = [f.strip() for f in m.group(1).split(",")]
        field, literal = m.group(2), m.group(3)
        typ = self.FIELDS.get(field)
        if typ is None or any(f not in self.FIELDS for f in fields):
            return self._errors(400, f"No such column '{field}' on entity 'Contact'",
                                "INVALID_FIELD")
        quoted = literal.startswith("'")
        if (typ == "double") == quoted:
            kind = "number" if typ == "double" else "string"
            return self._errors(400, f"value of filter criterion for field '{field}' must be "
                                     f"of type {kind}", "INVALID_FIELD")
        value: Any = re.sub(r"\\(.)", r"\1", literal[1:-1]) if quoted else float(literal)
        found = [r for r in self.records if r[field] is not None and r[field] == value]
        found = found[:int(m.group(4))] if m.group(4) else found
        self._pages = {"01gxx0000000001": [({k: r[k] for k in fields}, r) for r in found]}
        return self._more("01gxx0000000001-0", total=len(found))

    def _more(self, locator: str, total: int | None = None) -> Reply:
        key, _, start = locator.partition("-")
        rows = self._pages.get(key, [])
        start = int(start or 0)
        page = rows[start:start + self.batch_size]
        doc = {"totalSize": len(rows), "done": start + self.batch_size >= len(rows),
               "records": [{"attributes": self._attrs(r), **sel} for sel, r in page]}
        if not doc["done"]:
            doc["nextRecordsUrl"] = f"/services/data/v60.0/query/{key}-{start + self.batch_size}"
        return Reply.json(doc)


# --- Zoho CRM ----------------------------------------------------------------------------
# Search records v5+: https://www.zoho.com/crm/developer/docs/api/v5/search-records.html
#   (criteria (field:equals:value) or ...; parentheses and commas escaped with "\";
#   "equals" behaves like "contains" (v8 page says so plainly); fields; page/per_page up to
#   200; answer {data, info {per_page, count, page, more_records}}; 204 No Content when
#   nothing matches; scope ZohoCRM.modules.{module}.READ and ZohoSearch.securesearch.READ).
# OAuth: client credentials for a self client need soid=ZohoCRM.<org id>
#   (https://www.zoho.com/accounts/protocol/oauth/self-client/client-credentials-flow.html);
#   refresh token grant (https://www.zoho.com/crm/developer/docs/api/v5/refresh.html);
#   errors come as HTTP 200 {"error": "invalid_client" | "invalid_code"}; the answer names
#   api_domain; accounts server per data centre
#   (https://www.zoho.com/accounts/protocol/oauth/multi-dc.html).
# API errors {code, details, message, status}: INVALID_TOKEN / OAUTH_SCOPE_MISMATCH on 401,
#   TOO_MANY_REQUESTS on 429: https://www.zoho.com/crm/developer/docs/api/v5/status-codes.html

class FakeZoho(FakeVendor):
    preset = "zoho"
    ORG, CLIENT_ID, CLIENT_SECRET = "60012345678", "1000.ABCDEFXYZ", "zoho-secret-41c2"
    REFRESH = "1000.refresh.7d1e0c"

    def __init__(self, tmp_path, ca=None) -> None:
        super().__init__(tmp_path, ca)
        self.accounts = HttpsServer(tmp_path, ca=self.ca, handler=self._token)
        self.extra_servers.append(self.accounts)
        self.scopes: dict[str, set[str]] = {}

    def add(self, name, phone=None, mobile=None, ident=None, pin=None) -> str:
        rid = f"415086800000{next(self._ids):07d}"
        self.records.append({"id": rid, "Full_Name": name, "Phone": phone, "Mobile": mobile,
                             "Customer_Number": ident, "IVR_PIN": pin})
        return rid

    def crm(self, tmp_path, refresh: bool = False, **over) -> dict:
        auth = {"client_id": self.CLIENT_ID, "token_url": self.accounts.url + "/oauth/v2/token",
                "client_secret_file": secret_file(tmp_path, "zoho-secret", self.CLIENT_SECRET)}
        if refresh:
            auth.update(grant="refresh_token", refresh_token_file=secret_file(
                tmp_path, "zoho-refresh", self.REFRESH))
        table = {"kind": "zoho", "base_url": "https://www.zohoapis.com",   # replaced by api_domain
                 "ca_bundle": str(self.ca_path), "auth": auth,
                 "identifier_fields": {"customer_id": "Customer_Number"},
                 "verify_fields": {"pin": "IVR_PIN"}, **over}
        if not refresh:
            table.setdefault("org_id", self.ORG)
        return table

    def _token(self, req: Request) -> Reply:
        f = req.form
        if req.path != "/oauth/v2/token" or f.get("client_id") != self.CLIENT_ID \
                or f.get("client_secret") != self.CLIENT_SECRET:
            return Reply.json({"error": "invalid_client"})               # HTTP 200, as Zoho does
        if f.get("grant_type") == "client_credentials":
            if f.get("soid") != f"ZohoCRM.{self.ORG}":
                return Reply.json({"error": "invalid_client"})
            scopes = set(f.get("scope", "").split(","))
        elif f.get("grant_type") == "refresh_token":
            if f.get("refresh_token") != self.REFRESH:
                return Reply.json({"error": "invalid_code"})
            scopes = {"ZohoCRM.modules.contacts.READ", "ZohoSearch.securesearch.READ"}
        else:
            return Reply.json({"error": "unsupported_grant_type"})
        token = "1000." + self._new_token()
        self.scopes[token] = scopes
        return Reply.json({"access_token": token, "scope": " ".join(sorted(scopes)),
                           "api_domain": self.api.url, "token_type": "Bearer",
                           "expires_in": 3600})

    def _error(self, status, code, message) -> Reply:
        return Reply.json({"code": code, "details": {}, "message": message, "status": "error"},
                          status)

    def _api(self, req: Request) -> Reply:
        auth = req.headers.get("authorization", "")
        token = auth[len("Zoho-oauthtoken "):] if auth.startswith("Zoho-oauthtoken ") else ""
        if token[5:] not in self.tokens:
            return self._error(401, "INVALID_TOKEN", "invalid oauth token")
        if self._throttled():
            r = self._error(429, "TOO_MANY_REQUESTS", "The number of API requests has "
                            "exceeded the limit")
            r.headers["Retry-After"] = self._retry_after
            return r
        if req.path == "/crm/v5/Contacts/search":
            if not {"ZohoCRM.modules.contacts.READ", "ZohoSearch.securesearch.READ"} \
                    <= self.scopes.get(token, set()):
                return self._error(401, "OAUTH_SCOPE_MISMATCH",
                                   "invalid oauth scope to access this URL")
            return self._search(req.query)
        m = re.fullmatch(r"/crm/v5/Contacts/(\d+)", req.path)
        if m:
            for r in self.records:
                if r["id"] == m.group(1):
                    fields = req.query.get("fields", "").split(",")
                    return Reply.json({"data": [{"id": r["id"],
                                                 **{k: r.get(k) for k in fields}}]})
            return Reply(204)
        return self._error(404, "INVALID_URL_PATTERN", "Please check if the URL trying to "
                           "access is a correct one")

    def _search(self, q: dict) -> Reply:
        criteria = q.get("criteria", "")
        conds = re.findall(r"\((\w+):(equals|starts_with):((?:[^()\\]|\\.)*)\)", criteria)
        if not conds:
            return self._error(400, "INVALID_QUERY", "invalid query formed")
        for field, _op, _v in conds:
            if self.records and field not in self.records[0]:
                return self._error(400, "INVALID_QUERY", "invalid query formed")

        def hit(r):   # "equals" behaves like "contains" on v5+ (the documented quirk)
            return any(r.get(f) is not None and
                       (re.sub(r"\\(.)", r"\1", v) in str(r[f]) if op == "equals"
                        else str(r[f]).startswith(re.sub(r"\\(.)", r"\1", v)))
                       for f, op, v in conds)

        found = [r for r in self.records if hit(r)]
        if not found:
            return Reply(204)
        per_page, page = min(int(q.get("per_page", 200)), 200), int(q.get("page", 1))
        chunk = found[(page - 1) * per_page: page * per_page]
        if not chunk:
            return Reply(204)
        fields = q.get("fields", "").split(",")
        return Reply.json({"data": [{"id": r["id"], **{k: r.get(k) for k in fields}}
                                    for r in chunk],
                           "info": {"per_page": per_page, "count": len(chunk), "page": page,
                                    "more_records": page * per_page < len(found)}})


# --- Pipedrive ---------------------------------------------------------------------------
# Persons search v2: https://developers.pipedrive.com/docs/api/v1/Persons#searchPersons
#   (GET /api/v2/persons/search: term, fields=phone|custom_fields|..., exact_match, limit up
#   to 500, cursor; answer {success, data {items [{result_score, item {id, type, name,
#   phones, ...}}]}, additional_data {next_cursor}}; without exact_match the term may be
#   anywhere in the field's value).
# Search by one field: https://developers.pipedrive.com/docs/api/v1/ItemSearch#searchItemByField
#   (GET /v1/itemSearch/field: term, field_type=personField, field_key, exact_match,
#   return_item_ids, return_field_key; answer data [{id, <field key>: value}]).
# Person v2: https://developers.pipedrive.com/docs/api/v1/Persons#getPerson (custom_fields).
# Auth (x-api-token header) and errors: https://pipedrive.readme.io/docs/core-api-concepts-authentication,
#   rate limits (429): https://pipedrive.readme.io/docs/core-api-concepts-rate-limiting

class FakePipedrive(FakeVendor):
    preset = "pipedrive"
    API_TOKEN = "7a1b2c3d4e5f60718293a4b5c6d7e8f901234567"
    CUSTOMER_NUMBER, PIN = "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0", "f0e1d2c3b4a5968778695a4b3c2d1e0f9a8b7c6d"

    def __init__(self, tmp_path, ca=None) -> None:
        super().__init__(tmp_path, ca)
        self.tokens = {self.API_TOKEN}

    def add(self, name, phone=None, mobile=None, ident=None, pin=None) -> str:
        pid = next(self._ids) + 100
        phones = [{"value": v, "primary": i == 0, "label": lab}
                  for i, (v, lab) in enumerate([(phone, "work"), (mobile, "mobile")]) if v]
        self.records.append({"id": pid, "name": name, "phones": phones,
                             "custom_fields": {self.CUSTOMER_NUMBER: ident, self.PIN: pin}})
        return str(pid)

    def crm(self, tmp_path, **over) -> dict:
        return {"kind": "pipedrive", "base_url": self.api.url, "ca_bundle": str(self.ca_path),
                "auth": {"key_file": secret_file(tmp_path, "pd-token", self.API_TOKEN)},
                "identifier_fields": {"customer_id": self.CUSTOMER_NUMBER},
                "verify_fields": {"pin": self.PIN}, **over}

    def _api(self, req: Request) -> Reply:
        if req.headers.get("x-api-token") not in self.tokens:
            return Reply.json({"success": False, "error": "unauthorized access",
                               "errorCode": 401, "error_info": "Please check developers."
                               "pipedrive.com"}, 401)
        if self._throttled():
            return Reply.json({"success": False, "error": "Too many requests",
                               "errorCode": 429}, 429,
                              headers={"Retry-After": self._retry_after,
                                       "x-ratelimit-remaining": "0"})
        if req.path == "/api/v2/persons/search":
            return self._search(req.query)
        if req.path == "/v1/itemSearch/field":
            return self._by_field(req.query)
        m = re.fullmatch(r"/api/v2/persons/(\d+)", req.path)
        if m:
            for r in self.records:
                if r["id"] == int(m.group(1)):
                    keys = req.query.get("custom_fields", "").split(",")
                    return Reply.json({"success": True, "data": {
                        "id": r["id"], "name": r["name"], "phones": r["phones"],
                        "custom_fields": {k: r["custom_fields"].get(k) for k in keys}}})
            return Reply.json({"success": False, "error": "Person not found",
                               "errorCode": 404}, 404)
        return Reply.json({"success": False, "error": "Unknown method .", "errorCode": 404},
                          404)

    def _search(self, q: dict) -> Reply:
        term, exact = q.get("term", "").lower(), q.get("exact_match") == "true"
        if len(term) < (1 if exact else 2):
            return Reply.json({"success": False, "error": "term too short"}, 400)
        fields = q.get("fields", "custom_fields,email,name,notes,phone").split(",")

        def values(r):
            out = []
            if "phone" in fields:
                out += [p["value"] for p in r["phones"]]
            if "custom_fields" in fields:
                out += [v for v in r["custom_fields"].values() if v]
            if "name" in fields:
                out.append(r["name"])
            return [str(v).lower() for v in out]

        found = [r for r in self.records
                 if any((v == term) if exact else (term in v) for v in values(r))]
        start = int(q.get("cursor", "0") or 0)
        limit = min(int(q.get("limit", 100)), 500)
        page = found[start:start + limit]
        nxt = str(start + limit) if start + limit < len(found) else None
        return Reply.json({"success": True, "data": {"items": [
            {"result_score": 0.5, "item": {"id": r["id"], "type": "person", "name": r["name"],
                                           "phones": [p["value"] for p in r["phones"]],
                                           "emails": [], "visible_to": 3, "owner": {"id": 1},
                                           "organization": None, "custom_fields": [],
                                           "notes": []}} for r in page]},
            "additional_data": {"next_cursor": nxt}})

    def _by_field(self, q: dict) -> Reply:
        key, term = q.get("field_key", ""), q.get("term", "")
        if q.get("field_type") != "personField":
            return Reply.json({"success": False, "error": "field_type invalid"}, 400)
        exact = q.get("exact_match") == "true"
        found = [r for r in self.records
                 if (v := r["custom_fields"].get(key)) is not None
                 and ((str(v).lower() == term.lower()) if exact else term.lower() in str(v).lower())]
        out_key = q.get("return_field_key", "value")
        return Reply.json({"success": True, "data": [
            {"id": r["id"], out_key: r["custom_fields"][key]} for r in found],
            "additional_data": {"pagination": {"start": 0, "limit": 100,
                                               "more_items_in_collection": False}}})


# --- Microsoft Dataverse -----------------------------------------------------------------
# Client credentials on the Microsoft identity platform (scope <environment>/.default):
#   https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow
# Query data: https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query-data-web-api
#   ($select, $filter with eq / contains() / or, $top; answer {@odata.context, value}),
#   https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query/filter-rows
#   (an Edm.Int32 column compared with a string literal is refused with 400),
#   paging: https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query/page-results
#   (Prefer: odata.maxpagesize=n; @odata.nextLink with $skiptoken, absolute URL).
# Errors {error {code, message}}: .../webapi/compose-http-requests-handle-errors; service
#   protection limits (429 with Retry-After): https://learn.microsoft.com/power-apps/developer/data-platform/api-limits

class FakeDataverse(FakeVendor):
    preset = "dataverse"
    TENANT, CLIENT_ID, CLIENT_SECRET = "contoso.onmicrosoft.com", "0000-app-id", "dv-secret-9a"
    TYPES = {"contactid": "guid", "fullname": "string", "telephone1": "string",
             "mobilephone": "string", "new_customernumber": "int", "new_ivrpin": "string"}

    def __init__(self, tmp_path, ca=None) -> None:
        super().__init__(tmp_path, ca)
        self.login = HttpsServer(tmp_path, ca=self.ca, handler=self._token)
        self.extra_servers.append(self.login)

    def add(self, name, phone=None, mobile=None, ident=None, pin=None) -> str:
        rid = str(uuid.UUID(int=next(self._ids) + 0x49b0be2e))
        self.records.append({"contactid": rid, "fullname": name, "telephone1": phone,
                             "mobilephone": mobile,
                             "new_customernumber": int(ident) if ident else None,
                             "new_ivrpin": pin})
        return rid

    def crm(self, tmp_path, **over) -> dict:
        return {"kind": "dataverse", "base_url": self.api.url, "ca_bundle": str(self.ca_path),
                "auth": {"token_url": f"{self.login.url}/{self.TENANT}/oauth2/v2.0/token",
                         "client_id": self.CLIENT_ID, "client_secret_file":
                         secret_file(tmp_path, "dv-secret", self.CLIENT_SECRET)},
                "identifier_fields": {"customer_id": "new_customernumber"},
                "identifier_types": {"customer_id": "number"},
                "verify_fields": {"pin": "new_ivrpin"}, **over}

    def _token(self, req: Request) -> Reply:
        f = req.form
        if req.path != f"/{self.TENANT}/oauth2/v2.0/token":
            return Reply.json({"error": "invalid_tenant"}, 400)
        if f.get("client_id") != self.CLIENT_ID or f.get("client_secret") != self.CLIENT_SECRET:
            return Reply.json({"error": "invalid_client", "error_description":
                               "AADSTS7000215: Invalid client secret provided.",
                               "error_codes": [7000215]}, 401)
        if f.get("scope") != self.api.url + "/.default":
            return Reply.json({"error": "invalid_scope", "error_codes": [1002012]}, 400)
        return Reply.json({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                           "access_token": "eyJ0." + self._new_token()})

    def _error(self, status, code, message, headers=None) -> Reply:
        return Reply.json({"error": {"code": code, "message": message}}, status,
                          headers=headers or {})

    def _api(self, req: Request) -> Reply:
        auth = req.headers.get("authorization", "")
        if not auth.startswith("Bearer eyJ0.") or auth[12:] not in self.tokens:
            return Reply(401, b"", {"WWW-Authenticate": 'Bearer error="invalid_token", '
                                    'error_description="The access token is expired"'})
        if req.headers.get("odata-version") != "4.0":
            return self._error(400, "0x80060888", "OData-Version header missing")
        if self._throttled():
            return self._error(429, "0x80072322", "Number of requests exceeded the limit of "
                               "6000 over time window of 300 seconds.",
                               {"Retry-After": self._retry_after})
        if req.path == "/api/data/v9.2/contacts":
            return self._query(req)
        m = re.fullmatch(r"/api/data/v9.2/contacts\(([0-9a-f-]{36})\)", req.path)
        if m:
            for r in self.records:
                if r["contactid"] == m.group(1):
                    cols = req.query.get("$select", "").split(",")
                    return Reply.json({"@odata.etag": 'W/"4386781"', "contactid": r["contactid"],
                                       **{c: r.get(c) for c in cols}})
            return self._error(404, "0x80040217", "Entity 'contact' With Id = "
                               f"{m.group(1)} Does Not Exist")
        return self._error(404, "0x8006088a", "Resource not found for the segment")

    _TERM = re.compile(r"^(?:(\w+) eq ('(?:[^']|'')*'|-?\d+)|contains\((\w+),'((?:[^']|'')*)'\))$")

    def _query(self, req: Request) -> Reply:
        q = req.query
        cols = q.get("$select", "contactid").split(",")
        tests = []
        for term in q.get("$filter", "").split(" or "):
            m = self._TERM.match(term.strip())
            if not m:
                return self._error(400, "0x80060888", "Syntax error in $filter")
            field = m.group(1) or m.group(3)
            typ = self.TYPES.get(field)
            if typ is None:
                return self._error(400, "0x80060888", f"Could not find a property named "
                                   f"'{field}' on type 'Microsoft.Dynamics.CRM.contact'.")
            if m.group(1):
                lit = m.group(2)
                if (typ == "int") == lit.startswith("'"):
                    return self._error(400, "0x80060888", "A binary operator with "
                                       "incompatible types was detected. Found operand types "
                                       f"'Edm.{'Int32' if typ == 'int' else 'String'}' and "
                                       f"'Edm.{'String' if lit.startswith(chr(39)) else 'Int32'}'"
                                       " for operator kind 'Equal'.")
                value = lit[1:-1].replace("''", "'") if lit.startswith("'") else int(lit)
                tests.append(lambda r, f=field, v=value: r.get(f) == v)
            else:
                needle = m.group(4).replace("''", "'").lower()
                tests.append(lambda r, f=field, n=needle: n in str(r.get(f) or "").lower())
        found = [r for r in self.records if any(t(r) for t in tests)]
        if "$top" in q:
            found = found[:int(q["$top"])]
        size = 5000
        pref = re.search(r"odata\.maxpagesize=(\d+)", req.headers.get("prefer", ""))
        if pref:
            size = int(pref.group(1))
        start = int(q.get("$skiptoken", "0"))
        page = found[start:start + size]
        doc = {"@odata.context": f"{self.api.url}/api/data/v9.2/$metadata#contacts"
                                 f"({','.join(cols)})",
               "value": [{"@odata.etag": 'W/"4386781"', **{c: r.get(c) for c in cols}}
                         for r in page]}
        if start + size < len(found):
            keep = urlencode([(k, v) for k, v in q.items() if k != "$skiptoken"]
                             + [("$skiptoken", str(start + size))], quote_via=quote, safe="$")
            doc["@odata.nextLink"] = f"{self.api.url}/api/data/v9.2/contacts?{keep}"
        return Reply.json(doc)


VENDORS: dict[str, Callable[..., FakeVendor]] = {
    "hubspot": FakeHubSpot, "salesforce": FakeSalesforce, "zoho": FakeZoho,
    "pipedrive": FakePipedrive, "dataverse": FakeDataverse}
