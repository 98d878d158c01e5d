"""Each CRM preset's request shape, as a real HTTPS server on loopback records it,
and its response mapping on a realistic sample answer (shaped as the vendors'
public API documentation shows them)."""

from __future__ import annotations

import pytest

from callgate.config import Table
from callgate.crm import Customer, make_crm
from callgate.crm.presets import PRESETS
from https_server import HttpsServer, Reply, secret_file

PHONE = "+15551234567"


@pytest.fixture
def srv(tmp_path):
    with HttpsServer(tmp_path) as server:
        yield server


def backend(srv, tmp_path, kind, **over):
    data = {"kind": kind, "base_url": srv.url, "ca_bundle": str(srv.ca_path), **over}
    return make_crm(Table(data, "crm"))


def oauth(srv, tmp_path, **over):
    return {"token_url": srv.url + "/token", "client_id": "cg",
            "client_secret_file": secret_file(tmp_path, "cs", "cs-secret"), **over}


def token_route(expires_in=3600):
    doc = {"access_token": "AT-1", "token_type": "Bearer"}
    if expires_in is not None:
        doc["expires_in"] = expires_in
    return Reply.json(doc)


def test_the_presets_on_offer():
    assert set(PRESETS) == {"reference", "hubspot", "salesforce", "zoho", "pipedrive", "dataverse"}


def test_reference_shapes(srv, tmp_path):
    srv.route({
        ("GET", "/customers/by-phone/" + PHONE): Reply.json(
            {"customers": [{"id": "1001", "name": "Ada Lovelace"}]}),
        ("GET", "/customers/by-identifier/customer_id/1001"): Reply.json(
            {"customers": [{"id": "1001", "name": "Ada Lovelace"}]}),
        ("POST", "/customers/1001/verify"): Reply.json({"verified": True}),
    })
    b = backend(srv, tmp_path, "reference",
                auth={"kind": "bearer", "token_file": secret_file(tmp_path, "t", "ref-token")})
    assert b.lookup_phone(PHONE).customers == (Customer("1001", "Ada Lovelace"),)
    assert b.lookup_identifier("customer_id", "1001").status == "hit"
    v = b.verify(Customer("1001"), "pin", "2468")
    assert (v.status, v.assurance) == ("verified", "high")
    get, _, post = srv.sent()
    assert get.raw_path == "/customers/by-phone/%2B15551234567"
    assert get.headers["authorization"] == "Bearer ref-token"
    assert post.json == {"kind": "pin", "secret": "2468"}
    b.close()


HUBSPOT_CONTACT = {
    "id": "512", "properties": {"createdate": "2024-03-01T10:00:00.000Z", "firstname": "Ada",
                                "lastname": "Lovelace", "hs_object_id": "512",
                                "phone": "(555) 123-4567", "mobilephone": None,
                                "lastmodifieddate": "2024-03-02T10:00:00.000Z"},
    "createdAt": "2024-03-01T10:00:00.000Z", "updatedAt": "2024-03-02T10:00:00.000Z",
    "archived": False}


def test_hubspot_shapes(srv, tmp_path):
    srv.route({
        ("POST", "/crm/v3/objects/contacts/search"): [
            Reply.json({"total": 1, "results": [HUBSPOT_CONTACT]}),
            Reply.json({"total": 0, "results": []})],
        ("GET", "/crm/v3/objects/contacts/512"): Reply.json(
            {"id": "512", "properties": {"ivr_pin": "2468", "hs_object_id": "512"},
             "archived": False}),
    })
    b = backend(srv, tmp_path, "hubspot",
                auth={"kind": "bearer", "token_file": secret_file(tmp_path, "t", "pat-na1-x")},
                verify_fields={"pin": "ivr_pin"})
    assert b.lookup_phone(PHONE).customers == (Customer("512", "Ada Lovelace"),)
    assert b.lookup_identifier("customer_id", "512").status == "miss"
    v = b.verify(Customer("512"), "pin", "2468")
    assert (v.status, v.assurance) == ("verified", "low")
    phone, ident, fetch = srv.sent()
    assert phone.method == "POST" and phone.headers["authorization"] == "Bearer pat-na1-x"
    assert phone.headers["content-type"] == "application/json"
    assert phone.json == {
        "filterGroups": [
            {"filters": [{"propertyName": "hs_searchable_calculated_phone_number",
                          "operator": "EQ", "value": "5551234567"}]},
            {"filters": [{"propertyName": "hs_searchable_calculated_mobile_number",
                          "operator": "EQ", "value": "5551234567"}]},
            {"filters": [{"propertyName": "hs_searchable_calculated_phone_number",
                          "operator": "EQ", "value": "15551234567"}]},
            {"filters": [{"propertyName": "hs_searchable_calculated_mobile_number",
                          "operator": "EQ", "value": "15551234567"}]}],
        "properties": ["firstname", "lastname", "phone", "mobilephone"], "limit": 10}
    assert ident.json["filterGroups"] == [
        {"filters": [{"propertyName": "hs_object_id", "operator": "EQ", "value": "512"}]}]
    assert ident.json["properties"] == ["firstname", "lastname", "hs_object_id"]
    assert fetch.query == {"properties": "ivr_pin"}
    b.close()


def test_salesforce_shapes(srv, tmp_path):
    record = {"attributes": {"type": "Contact",
                             "url": "/services/data/v60.0/sobjects/Contact/003xx000004TmiQAAS"},
              "Id": "003xx000004TmiQAAS", "Name": "Ada Lovelace", "Phone": "(555) 123-4567",
              "MobilePhone": None, "Account_Number__c": "12'34"}
    srv.route({
        ("POST", "/services/oauth2/token"): Reply.json(
            {"access_token": "00Dxx!AQ4A", "instance_url": srv.url, "token_type": "Bearer",
             "issued_at": "1700000000000", "signature": "c2ln"}),
        ("GET", "/services/data/v60.0/parameterizedSearch"): Reply.json({"searchRecords": [record]}),
        ("GET", "/services/data/v60.0/query"): Reply.json(
            {"totalSize": 2, "done": True, "records": [record, {**record, "Id": "003B", "Name": "B"}]}),
        ("GET", "/services/data/v60.0/sobjects/Contact/003xx000004TmiQAAS"): Reply.json(
            {"attributes": record["attributes"], "Birthdate": "1985-12-10",
             "Id": "003xx000004TmiQAAS"}),
    })
    b = backend(srv, tmp_path, "salesforce",
                auth={"client_id": "cg", "client_secret_file": secret_file(tmp_path, "cs", "x")},
                identifier_fields={"account": "Account_Number__c"},
                verify_fields={"dob": "Birthdate"})
    assert b.lookup_phone(PHONE).customers == (Customer("003xx000004TmiQAAS", "Ada Lovelace"),)
    assert b.lookup_identifier("account", "12'34").status == "ambiguous"
    v = b.verify(Customer("003xx000004TmiQAAS"), "dob", "12101985")   # keyed MMDDYYYY
    assert (v.status, v.assurance) == ("verified", "low")
    assert b.verify(Customer("003xx000004TmiQAAS"), "dob", "10121985").status == "rejected"
    token, search, query, fetch, _ = srv.sent()
    assert token.form == {"grant_type": "client_credentials", "client_id": "cg",
                          "client_secret": "x"}
    assert search.query == {"q": "5551234567", "sobject": "Contact", "in": "PHONE",
                            "Contact.fields": "Id,Name,Phone,MobilePhone,HomePhone,OtherPhone",
                            "Contact.limit": "10"}
    assert search.headers["authorization"] == "Bearer 00Dxx!AQ4A"
    assert query.query == {"q": "SELECT Id, Name, Account_Number__c FROM Contact WHERE "
                                "Account_Number__c = '12\\'34' LIMIT 10"}
    assert fetch.query == {"fields": "Birthdate"}
    assert len(srv.sent("POST")) == 1            # no expires_in: kept until a 401
    b.close()


def test_zoho_shapes(srv, tmp_path):
    srv.route({
        ("POST", "/token"): Reply.json({"access_token": "AT-1", "api_domain": srv.url,
                                        "token_type": "Bearer", "expires_in": 3600}),
        ("GET", "/crm/v5/Contacts/search"): [
            Reply.json({"data": [{"id": "4150868000001234001", "Full_Name": "Ada Lovelace",
                                  "Phone": "555-123-4567", "Mobile": None}],
                        "info": {"per_page": 200, "count": 1, "page": 1, "more_records": False}}),
            Reply(204)],
        ("GET", "/crm/v5/Contacts/4150868000001234001"): Reply.json(
            {"data": [{"IVR_PIN": "2468", "id": "4150868000001234001"}]}),
    })
    b = backend(srv, tmp_path, "zoho", auth=oauth(srv, tmp_path), org_id="7",
                identifier_fields={"customer_id": "Customer_Number"},
                verify_fields={"pin": "IVR_PIN"})
    assert b.lookup_phone(PHONE).customers == (Customer("4150868000001234001", "Ada Lovelace"),)
    assert b.lookup_identifier("customer_id", "55(1),2").status == "miss"      # 204 No Content
    assert b.verify(Customer("4150868000001234001"), "pin", "1357").status == "rejected"
    token, phone, ident, fetch = srv.sent()
    assert token.form == {"grant_type": "client_credentials", "soid": "ZohoCRM.7",
                          "scope": "ZohoCRM.modules.contacts.READ,ZohoSearch.securesearch.READ",
                          "client_id": "cg", "client_secret": "cs-secret"}
    assert phone.headers["authorization"] == "Zoho-oauthtoken AT-1"
    assert phone.query == {
        "criteria": f"((Phone:equals:{PHONE})or(Phone:equals:5551234567)or(Phone:equals:4567)"
                    f"or(Mobile:equals:{PHONE})or(Mobile:equals:5551234567)"
                    f"or(Mobile:equals:4567))",
        "fields": "id,Full_Name,Phone,Mobile", "per_page": "200"}
    assert ident.query["criteria"] == "(Customer_Number:equals:55\\(1\\)\\,2)"
    assert fetch.query == {"fields": "IVR_PIN"}
    b.close()


def test_pipedrive_shapes(srv, tmp_path):
    def item(pid, name):
        return {"result_score": 1.2, "item": {"id": pid, "type": "person", "name": name,
                                              "phones": ["555 123 4567"], "emails": [],
                                              "organization": None, "owner": {"id": 1}}}
    srv.route({
        ("GET", "/api/v2/persons/search"): Reply.json(
            {"success": True, "data": {"items": [item(77, "Ada Lovelace")]},
             "additional_data": {"next_cursor": None}}),
        ("GET", "/v1/itemSearch/field"): Reply.json(
            {"success": True, "data": [{"id": 77, "c7e1": "12345"}, {"id": 78, "c7e1": "12345"}],
             "additional_data": {"pagination": {"start": 0, "limit": 10,
                                                "more_items_in_collection": False}}}),
        ("GET", "/api/v2/persons/77"): Reply.json(
            {"success": True, "data": {"id": 77, "name": "Ada Lovelace",
                                       "custom_fields": {"9f3a1c": "4111-1111-1111-4321"}}}),
    })
    b = backend(srv, tmp_path, "pipedrive",
                auth={"key_file": secret_file(tmp_path, "k", "pd-api-token")},
                identifier_fields={"customer_id": "c7e1"},
                verify_fields={"last_digits": "9f3a1c"})
    assert b.lookup_phone(PHONE).customers == (Customer("77", "Ada Lovelace"),)
    assert b.lookup_identifier("customer_id", "12345").status == "ambiguous"
    v = b.verify(Customer("77"), "last_digits", "4321")
    assert (v.status, v.assurance) == ("verified", "low")
    phone, ident, fetch = srv.sent()
    assert phone.headers["x-api-token"] == "pd-api-token" and "api_token" not in phone.query
    assert phone.query == {"term": "4567", "fields": "phone", "limit": "100"}
    assert ident.path == "/v1/itemSearch/field"
    assert ident.query == {"term": "12345", "field_type": "personField", "field_key": "c7e1",
                           "exact_match": "true", "return_item_ids": "true",
                           "return_field_key": "c7e1", "limit": "10"}
    assert fetch.query == {"custom_fields": "9f3a1c"}
    b.close()


def test_dataverse_shapes(srv, tmp_path):
    cid = "49b0be2e-d01c-ed11-b83e-000d3a572421"
    srv.route({
        ("POST", "/token"): token_route(),
        ("GET", "/api/data/v9.2/contacts"): Reply.json(
            {"@odata.context": srv.url + "/api/data/v9.2/$metadata#contacts(contactid,fullname)",
             "value": [{"@odata.etag": 'W/"4386781"', "contactid": cid, "fullname": "Ada Lovelace",
                        "telephone1": "555-123-4567", "mobilephone": None,
                        "new_accountnumber": "O'Neil"}]}),
        ("GET", f"/api/data/v9.2/contacts({cid})"): Reply.json(
            {"@odata.etag": 'W/"4386781"', "new_ivrpin": "2468", "contactid": cid}),
    })
    b = backend(srv, tmp_path, "dataverse", auth=oauth(srv, tmp_path),
                identifier_fields={"account": "new_accountnumber"},
                verify_fields={"pin": "new_ivrpin"})
    assert b.lookup_phone(PHONE).customers == (Customer(cid, "Ada Lovelace"),)
    assert b.lookup_identifier("account", "O'Neil").status == "hit"
    assert b.verify(Customer(cid), "pin", "2468").status == "verified"
    token, phone, ident, fetch = srv.sent()
    assert token.form["scope"] == srv.url + "/.default"
    assert phone.headers["odata-version"] == "4.0" and phone.headers["odata-maxversion"] == "4.0"
    assert phone.headers["authorization"] == "Bearer AT-1"
    assert phone.headers["prefer"] == "odata.maxpagesize=50"
    assert phone.query == {"$select": "contactid,fullname,telephone1,mobilephone",
                           "$filter": "contains(telephone1,'4567') or contains(mobilephone,'4567')"}
    assert "$filter=" in phone.target                    # OData option names sent as-is
    assert ident.query["$filter"] == "new_accountnumber eq 'O''Neil'"
    assert fetch.query == {"$select": "new_ivrpin"}
    b.close()


def test_fetch_presets_need_a_field_for_the_kind(srv, tmp_path):
    b = backend(srv, tmp_path, "hubspot",
                auth={"kind": "bearer", "token_file": secret_file(tmp_path, "t", "pat")})
    v = b.verify(Customer("512"), "pin", "2468")
    assert v.status == "error" and v.assurance == "low" and "crm.verify_fields" in v.error
    r = b.lookup_identifier("account", "1234")
    assert r.status == "error" and "crm.identifier_fields" in r.error
    assert srv.sent() == []
    b.close()


def test_an_empty_stored_value_is_no_secret_on_file(srv, tmp_path):
    srv.route({("GET", "/crm/v3/objects/contacts/512"): Reply.json(
        {"id": "512", "properties": {"ivr_pin": None}})})
    b = backend(srv, tmp_path, "hubspot",
                auth={"kind": "bearer", "token_file": secret_file(tmp_path, "t", "pat")},
                verify_fields={"pin": "ivr_pin"})
    v = b.verify(Customer("512"), "pin", "2468")
    assert (v.status, v.error) == ("no_secret", None)     # issue 15: nothing to compare
    b.close()


def test_user_table_overrides_the_preset(srv, tmp_path):
    srv.route({("POST", "/crm/v3/objects/contacts/search"):
               Reply.json({"total": 0, "results": []})})
    b = backend(srv, tmp_path, "hubspot",
                auth={"kind": "bearer", "token_file": secret_file(tmp_path, "t", "pat")},
                lookup_phone={"body": {"query": "{national}"}})
    assert b.lookup_phone(PHONE).status == "miss"
    assert srv.sent()[0].json == {"query": "5551234567"}
    b.close()
