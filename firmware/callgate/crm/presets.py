"""Presets: the request shapes of common CRMs, as defaults for the REST connector.

A preset is a [crm] table with the requests filled in; whatever the business's
own [crm] table says wins (deep merge), so a field name, an API version or a
search template can be changed without writing the whole request. Credentials
always come from the business's table (files, never inline).

Verification: only our reference API has a verify call. The CRMs below can only
fetch a stored value, which the connector compares with hmac.compare_digest and
marks "low" assurance (or "hashed" when the field holds a salted scrypt hash,
[crm] verify_hashed); the field to fetch for each kind is named in
[crm.verify_fields] (e.g. pin = "ivr_pin__c"). An empty field (null or "") there
means no secret on file: the caller goes on as identified only, nothing counted.
Only the reference API's lookups say which secrets are on file ("secrets"), so
the caller is not even asked; the other presets leave `secrets` unset.

A search that finds no one answers an empty list (Zoho: 204), so for the CRMs
a 404 is not a miss but an error: it says the URL is wrong (a miss would hide
a bad base_url, and every caller would be asked for an identifier).

Phone numbers are kept as people typed them. Each preset finds the caller
however the number was written, then compares the numbers it got back locally
after E.164 normalisation (`phone_fields`), and compares an identifier exactly
(`match`). The shapes follow each vendor's published API documentation:

  HubSpot     POST /crm/v3/objects/contacts/search: filterGroups ORed; the calculated
              properties hs_searchable_calculated_phone_number / _mobile_number hold
              the number without formatting or country code, so EQ on the national
              digits finds any way it was typed. Paging: paging.next.after -> "after".
              developers.hubspot.com/docs/api/crm/search
  Salesforce  GET /services/data/vNN.0/parameterizedSearch (SOSL over the phone fields,
              which matches however the number was typed) and /query (SOQL, number
              fields compared bare); API calls go to the token response's instance_url;
              paging: nextRecordsUrl. developer.salesforce.com/docs/atlas.en-us.api_rest.meta
  Zoho CRM    GET /crm/v5/Contacts/search?criteria=...: "equals" behaves like "contains",
              so candidates come back and are compared exactly here; 204 when nothing
              matches; scopes ZohoCRM.modules.contacts.READ + ZohoSearch.securesearch.READ;
              accounts and API hosts per data centre; the token response's api_domain
              names the API host; paging: info.more_records -> page.
              www.zoho.com/crm/developer/docs/api/v5/search-records.html,
              www.zoho.com/accounts/protocol/oauth/multi-dc.html
  Pipedrive   GET /api/v2/persons/search?fields=phone&term=<last 4 digits> (candidates,
              paging by next_cursor -> cursor) and GET /v1/itemSearch/field for the one
              identifier field, exact; x-api-token header.
              developers.pipedrive.com/docs/api/v1/ItemSearch
  Dataverse   GET /api/data/v9.2/contacts?$filter=...: contains() on the last digits of
              telephone1 / mobilephone for candidates, an identifier with eq (a number bare);
              Prefer: odata.maxpagesize and @odata.nextLink for paging.
              learn.microsoft.com/power-apps/developer/data-platform/webapi/query-data-web-api
"""

from __future__ import annotations

import copy
from typing import Any

from ..config import ConfigError, Table

SALESFORCE_API = "v60.0"

PRESETS: dict[str, dict[str, Any]] = {
    # Our own reference API (docs/openapi.yaml): lookups and a real verify call.
    "reference": {
        "auth": {"kind": "bearer"},
        "lookup_phone": {
            "method": "GET", "url": "/customers/by-phone/{e164}",
            "results": "customers", "id": "id", "name": "name", "secrets": "secrets"},
        "lookup_identifier": {
            "method": "GET", "url": "/customers/by-identifier/{kind}/{value}",
            "results": "customers", "id": "id", "name": "name", "secrets": "secrets"},
        "verify": {
            "mode": "call", "method": "POST", "url": "/customers/{id}/verify",
            "body": {"kind": "{kind}", "secret": "{secret}"}, "verified": "verified"},
    },
    "hubspot": {
        "base_url": "https://api.hubapi.com",
        "auth": {"kind": "bearer"},                     # a private app's access token
        "identifier_fields": {"customer_id": "hs_object_id"},
        "lookup_phone": {
            "method": "POST", "url": "/crm/v3/objects/contacts/search",
            "body": {
                "filterGroups": [      # national digits; with the country code as well,
                    {"filters": [{"propertyName": "hs_searchable_calculated_phone_number",
                                  "operator": "EQ", "value": "{national}"}]},
                    {"filters": [{"propertyName": "hs_searchable_calculated_mobile_number",
                                  "operator": "EQ", "value": "{national}"}]},
                    {"filters": [{"propertyName": "hs_searchable_calculated_phone_number",
                                  "operator": "EQ", "value": "{digits}"}]},
                    {"filters": [{"propertyName": "hs_searchable_calculated_mobile_number",
                                  "operator": "EQ", "value": "{digits}"}]},
                ],                     # in case a portal keeps it (HubSpot allows 5 groups)
                "properties": ["firstname", "lastname", "phone", "mobilephone"],
                "limit": 10,
            },
            "miss_status": [], "results": "results", "id": "id",
            "name": ["properties.firstname", "properties.lastname"],
            "phone_fields": ["properties.phone", "properties.mobilephone"],
            "paging": {"cursor": "paging.next.after", "param": "body.after"}},
        "lookup_identifier": {
            "method": "POST", "url": "/crm/v3/objects/contacts/search",
            "body": {
                "filterGroups": [{"filters": [{"propertyName": "{field}", "operator": "EQ",
                                               "value": "{value}"}]}],
                "properties": ["firstname", "lastname", "{field}"],
                "limit": 10,
            },
            "miss_status": [], "results": "results", "id": "id",
            "name": ["properties.firstname", "properties.lastname"],
            "match": "properties.{field}"},
        "verify": {
            "mode": "fetch", "method": "GET", "url": "/crm/v3/objects/contacts/{id}",
            "query": {"properties": "{field}"}, "value": "properties.{field}"},
    },
    "salesforce": {
        # base_url: the org's My Domain, e.g. https://acme.my.salesforce.com (token);
        # the API calls go to the instance_url the token response names.
        "auth": {"kind": "oauth2", "token_url": "/services/oauth2/token",
                 "api_base_from": "instance_url"},
        "lookup_phone": {
            "method": "GET", "url": f"/services/data/{SALESFORCE_API}/parameterizedSearch",
            "query": {"q": "{national}", "sobject": "Contact", "in": "PHONE",
                      "Contact.fields": "Id,Name,Phone,MobilePhone,HomePhone,OtherPhone",
                      "Contact.limit": "10"},
            "miss_status": [], "results": "searchRecords", "id": "Id", "name": "Name",
            "phone_fields": ["Phone", "MobilePhone", "HomePhone", "OtherPhone"]},
        "lookup_identifier": {
            "method": "GET", "url": f"/services/data/{SALESFORCE_API}/query",
            "query": {"q": "SELECT Id, Name, {field} FROM Contact "
                           "WHERE {field} = {value|soql_literal} LIMIT 10"},
            "miss_status": [], "results": "records", "id": "Id", "name": "Name", "match": "{field}",
            "paging": {"next_url": "nextRecordsUrl"}},
        "verify": {
            "mode": "fetch", "method": "GET",
            "url": f"/services/data/{SALESFORCE_API}/sobjects/Contact/{{id}}",
            "query": {"fields": "{field}"}, "value": "{field}"},
    },
    "zoho": {
        # base_url and auth.token_url come from [crm] data_centre (see _zoho below)
        "auth": {"kind": "oauth2", "scheme": "Zoho-oauthtoken", "api_base_from": "api_domain",
                 "scope": "ZohoCRM.modules.contacts.READ,ZohoSearch.securesearch.READ"},
        "lookup_phone": {
            "method": "GET", "url": "/crm/v5/Contacts/search",
            "query": {"criteria": "((Phone:equals:{e164|zoho})or(Phone:equals:{national})"
                                  "or(Phone:equals:{tail})or(Mobile:equals:{e164|zoho})"
                                  "or(Mobile:equals:{national})or(Mobile:equals:{tail}))",
                      "fields": "id,Full_Name,Phone,Mobile", "per_page": "200"},
            "miss_status": [204], "results": "data", "id": "id", "name": "Full_Name",
            "phone_fields": ["Phone", "Mobile"],
            "paging": {"more": "info.more_records", "param": "query.page"}},
        "lookup_identifier": {
            "method": "GET", "url": "/crm/v5/Contacts/search",
            "query": {"criteria": "({field}:equals:{value|zoho})",
                      "fields": "id,Full_Name,{field}", "per_page": "200"},
            "miss_status": [204], "results": "data", "id": "id", "name": "Full_Name",
            "match": "{field}",
            "paging": {"more": "info.more_records", "param": "query.page"}},
        "verify": {
            "mode": "fetch", "method": "GET", "url": "/crm/v5/Contacts/{id}",
            "query": {"fields": "{field}"}, "value": "data[0].{field}"},
    },
    "pipedrive": {
        "base_url": "https://api.pipedrive.com",
        "auth": {"kind": "api_key", "header": "x-api-token"},
        "lookup_phone": {
            "method": "GET", "url": "/api/v2/persons/search",
            "query": {"term": "{tail}", "fields": "phone", "limit": "100"},
            "miss_status": [], "results": "data.items[*].item", "id": "id", "name": "name",
            "phone_fields": ["phones"],
            "paging": {"cursor": "additional_data.next_cursor", "param": "query.cursor"}},
        "lookup_identifier": {
            "method": "GET", "url": "/v1/itemSearch/field",
            "query": {"term": "{value}", "field_type": "personField", "field_key": "{field}",
                      "exact_match": "true", "return_item_ids": "true",
                      "return_field_key": "{field}", "limit": "10"},
            "miss_status": [], "results": "data", "id": "id", "name": "name", "match": "{field}"},
        "verify": {
            "mode": "fetch", "method": "GET", "url": "/api/v2/persons/{id}",
            "query": {"custom_fields": "{field}"}, "value": "data.custom_fields.{field}"},
    },
    "dataverse": {
        # base_url: the environment, e.g. https://acme.crm.dynamics.com
        # auth.token_url: https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token
        "auth": {"kind": "oauth2", "scope": "{base_url}/.default"},
        "headers": {"OData-MaxVersion": "4.0", "OData-Version": "4.0"},
        "lookup_phone": {
            "method": "GET", "url": "/api/data/v9.2/contacts",
            "headers": {"Prefer": "odata.maxpagesize=50"},
            "query": {"$select": "contactid,fullname,telephone1,mobilephone",
                      "$filter": "contains(telephone1,'{tail|odata}') or "
                                 "contains(mobilephone,'{tail|odata}')"},
            "miss_status": [], "results": "value", "id": "contactid", "name": "fullname",
            "phone_fields": ["telephone1", "mobilephone"],
            "paging": {"next_url": "[\"@odata.nextLink\"]"}},
        "lookup_identifier": {
            "method": "GET", "url": "/api/data/v9.2/contacts",
            "query": {"$select": "contactid,fullname,{field}",
                      "$filter": "{field} eq {value|odata_literal}", "$top": "10"},
            "miss_status": [], "results": "value", "id": "contactid", "name": "fullname",
            "match": "{field}"},
        "verify": {
            "mode": "fetch", "method": "GET", "url": "/api/data/v9.2/contacts({id})",
            "query": {"$select": "{field}"}, "value": "{field}"},
    },
}

# Zoho's data centres: (accounts server, API host), from Zoho's multi-DC documentation
# (www.zoho.com/accounts/protocol/oauth/multi-dc.html). The token response's
# api_domain names the API host in the end; this is where to start.
ZOHO_DATA_CENTRES = {
    "us": ("https://accounts.zoho.com", "https://www.zohoapis.com"),
    "eu": ("https://accounts.zoho.eu", "https://www.zohoapis.eu"),
    "in": ("https://accounts.zoho.in", "https://www.zohoapis.in"),
    "au": ("https://accounts.zoho.com.au", "https://www.zohoapis.com.au"),
    "jp": ("https://accounts.zoho.jp", "https://www.zohoapis.jp"),
    "ca": ("https://accounts.zohocloud.ca", "https://www.zohoapis.ca"),
    "sa": ("https://accounts.zoho.sa", "https://www.zohoapis.sa"),
    "cn": ("https://accounts.zoho.com.cn", "https://www.zohoapis.com.cn"),
}


def _zoho(table: Table) -> dict[str, Any]:
    """The Zoho preset for the table's data_centre and org_id (keys only Zoho has):
    hosts of that data centre, and soid=ZohoCRM.<org id>, which Zoho's client-credentials
    grant requires (a refresh token, the other grant, carries its organisation)."""
    dc = table.choice("data_centre", tuple(ZOHO_DATA_CENTRES), "us")
    accounts, api = ZOHO_DATA_CENTRES[dc]
    preset = copy.deepcopy(PRESETS["zoho"])
    preset["base_url"] = api
    preset["auth"]["token_url"] = accounts + "/oauth/v2/token"
    auth = table.data.get("auth", {})
    grant = auth.get("grant", "client_credentials") if isinstance(auth, dict) else None
    org = table.get("org_id", (str, int), None)
    if org is not None:
        if not str(org).isdigit():
            raise ConfigError(f"{table.key('org_id')}: expected the digits of the Zoho org ID")
        if grant != "client_credentials":
            raise ConfigError(f"{table.key('org_id')}: only for the client-credentials grant "
                              f"(a refresh token carries its organisation)")
        preset["auth"]["params"] = {"soid": f"ZohoCRM.{org}"}
    elif grant == "client_credentials" and "params" not in (auth or {}):
        raise ConfigError(f"{table.key('org_id')}: missing (Zoho's client-credentials grant "
                          f"needs the org ID; or use auth.grant = \"refresh_token\")")
    return preset


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k not in ("body", "query"):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def apply_preset(name: str, table: Table) -> Table:
    """The business's [crm] table laid over the preset `name`."""
    data = dict(table.data)
    if name == "zoho":
        preset = _zoho(table)
        data.pop("data_centre", None)
        data.pop("org_id", None)
    else:
        preset = PRESETS[name]
    return Table(_merge(preset, data), table.path)
