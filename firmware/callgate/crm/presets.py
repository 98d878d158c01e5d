"""Presets: the request shapes of common CRMs, as defaults for the REST connector.

A preset is a [crm] table with the requests filled in; whatever the business's
own [crm] table says wins (deep merge), so a field name, an API version or a
search template can be changed without writing the whole request. Credentials
always come from the business's table (files, never inline).

Verification: only our reference API has a verify call. The CRMs below can only
fetch a stored value, which the connector compares with hmac.compare_digest and
marks "low" assurance; the field to fetch for each kind is named in
[crm.verify_fields] (e.g. pin = "ivr_pin__c"). An empty field (null or "") there
means no secret on file: the caller goes on as identified only, nothing counted.
Only the reference API's lookups say which secrets are on file ("secrets"), so
the caller is not even asked; the other presets leave `secrets` unset.

The shapes follow each vendor's public API documentation:
  HubSpot     POST /crm/v3/objects/contacts/search (filterGroups are ORed)
  Salesforce  GET  /services/data/vNN.0/parameterizedSearch (phone: SOSL over phone
              fields, which matches however the number was typed) and /query (SOQL)
  Zoho CRM    GET  /crm/v5/Contacts/search?phone=... | ?criteria=(Field:equals:value),
              204 No Content when nothing matches, "Zoho-oauthtoken" auth scheme
  Pipedrive   GET  /api/v2/persons/search?term=...&fields=phone&exact_match=true,
              x-api-token header
  Dataverse   GET  /api/data/v9.2/contacts?$filter=...&$select=..., OData headers
"""

from __future__ import annotations

import copy
from typing import Any

from ..config import Table

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
                "filterGroups": [
                    {"filters": [{"propertyName": "phone", "operator": "EQ", "value": "{e164}"}]},
                    {"filters": [{"propertyName": "mobilephone", "operator": "EQ",
                                  "value": "{e164}"}]},
                ],
                "properties": ["firstname", "lastname"],
                "limit": 5,
            },
            "results": "results", "id": "id",
            "name": ["properties.firstname", "properties.lastname"]},
        "lookup_identifier": {
            "method": "POST", "url": "/crm/v3/objects/contacts/search",
            "body": {
                "filterGroups": [{"filters": [{"propertyName": "{field}", "operator": "EQ",
                                               "value": "{value}"}]}],
                "properties": ["firstname", "lastname"],
                "limit": 5,
            },
            "results": "results", "id": "id",
            "name": ["properties.firstname", "properties.lastname"]},
        "verify": {
            "mode": "fetch", "method": "GET", "url": "/crm/v3/objects/contacts/{id}",
            "query": {"properties": "{field}"}, "value": "properties.{field}"},
    },
    "salesforce": {
        # base_url: the org's My Domain, e.g. https://acme.my.salesforce.com
        "auth": {"kind": "oauth2", "token_url": "/services/oauth2/token"},
        "lookup_phone": {
            "method": "GET", "url": f"/services/data/{SALESFORCE_API}/parameterizedSearch",
            "query": {"q": "{national}", "sobject": "Contact", "in": "PHONE",
                      "Contact.fields": "Id,Name", "Contact.limit": "5"},
            "results": "searchRecords", "id": "Id", "name": "Name"},
        "lookup_identifier": {
            "method": "GET", "url": f"/services/data/{SALESFORCE_API}/query",
            "query": {"q": "SELECT Id, Name FROM Contact WHERE {field} = '{value|soql}' LIMIT 5"},
            "results": "records", "id": "Id", "name": "Name"},
        "verify": {
            "mode": "fetch", "method": "GET",
            "url": f"/services/data/{SALESFORCE_API}/sobjects/Contact/{{id}}",
            "query": {"fields": "{field}"}, "value": "{field}"},
    },
    "zoho": {
        "base_url": "https://www.zohoapis.com",
        "auth": {"kind": "oauth2", "token_url": "https://accounts.zoho.com/oauth/v2/token",
                 "scheme": "Zoho-oauthtoken", "scope": "ZohoCRM.modules.contacts.READ"},
        "lookup_phone": {
            "method": "GET", "url": "/crm/v5/Contacts/search",
            "query": {"phone": "{e164}", "fields": "id,Full_Name"},
            "miss_status": [204], "results": "data", "id": "id", "name": "Full_Name"},
        "lookup_identifier": {
            "method": "GET", "url": "/crm/v5/Contacts/search",
            "query": {"criteria": "({field}:equals:{value|zoho})", "fields": "id,Full_Name"},
            "miss_status": [204], "results": "data", "id": "id", "name": "Full_Name"},
        "verify": {
            "mode": "fetch", "method": "GET", "url": "/crm/v5/Contacts/{id}",
            "query": {"fields": "{field}"}, "value": "data[0].{field}"},
    },
    "pipedrive": {
        "base_url": "https://api.pipedrive.com",
        "auth": {"kind": "api_key", "header": "x-api-token"},
        "lookup_phone": {
            "method": "GET", "url": "/api/v2/persons/search",
            "query": {"term": "{e164}", "fields": "phone", "exact_match": "true", "limit": "5"},
            "results": "data.items[*].item", "id": "id", "name": "name"},
        "lookup_identifier": {
            "method": "GET", "url": "/api/v2/persons/search",
            "query": {"term": "{value}", "fields": "custom_fields", "exact_match": "true",
                      "limit": "5"},
            "results": "data.items[*].item", "id": "id", "name": "name"},
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
            "query": {"$select": "contactid,fullname",
                      "$filter": "telephone1 eq '{e164|odata}' or mobilephone eq '{e164|odata}'",
                      "$top": "5"},
            "results": "value", "id": "contactid", "name": "fullname"},
        "lookup_identifier": {
            "method": "GET", "url": "/api/data/v9.2/contacts",
            "query": {"$select": "contactid,fullname",
                      "$filter": "{field} eq '{value|odata}'", "$top": "5"},
            "results": "value", "id": "contactid", "name": "fullname"},
        "verify": {
            "mode": "fetch", "method": "GET", "url": "/api/data/v9.2/contacts({id})",
            "query": {"$select": "{field}"}, "value": "{field}"},
    },
}


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
    return Table(_merge(PRESETS[name], table.data), table.path)
