"""The field semantics a sync compares and writes by (no portal needed: pure functions over the
shapes the doc pages give). The same behaviour over HTTP: tests/integration/test_sync_fields.py."""

from __future__ import annotations

from decimal import Decimal

from b24_dagster.client._fieldmodel import EntityFields, PortalField, comparable
from b24_dagster.client._multifield import (
    MultiValue,
    diff_values,
    item_fm_payload,
    legacy_payload,
    normal_form,
    portal_values,
    source_values,
)
from b24_dagster.client._recorddiff import diff_record

# crm-contact-update.md, "Working with Multiple Fields": the record's PHONE values.
HELD = [{"ID": "222", "VALUE_TYPE": "WORK", "VALUE": "111111", "TYPE_ID": "PHONE"},
        {"ID": "223", "VALUE_TYPE": "WORK", "VALUE": "222222", "TYPE_ID": "PHONE"},
        {"ID": "224", "VALUE_TYPE": "WORK", "VALUE": "333333", "TYPE_ID": "PHONE"}]  # fmt: skip


def test_normal_forms_compare_phones_by_digits_and_emails_without_case():
    assert normal_form("PHONE", "+7 (999) 123-45-67") == normal_form("PHONE", "79991234567")
    assert normal_form("EMAIL", " John@Example.COM ") == "john@example.com"
    assert normal_form("WEB", "https://Example.com/") == normal_form("WEB", "example.com")


def test_replace_keeps_equal_values_changes_by_id_deletes_and_adds():
    source = source_values("PHONE", ["(11) 11-11", {"VALUE": "444444", "VALUE_TYPE": "MOBILE"}])
    ops = diff_values(source, portal_values("PHONE", HELD))
    assert legacy_payload(ops) == [{"ID": 223, "VALUE": "444444", "VALUE_TYPE": "MOBILE"},
                                   {"ID": 224, "DELETE": "Y"}]  # 111111 stays: same digits
    grown = diff_values(source_values("PHONE", ["111111", "222222", "333333", "555"]), portal_values("PHONE", HELD))
    assert legacy_payload(grown) == [{"VALUE": "555", "VALUE_TYPE": "WORK"}]
    assert diff_values(source_values("PHONE", ["333333", "111111", "222222"]), portal_values("PHONE", HELD)) == []


def test_append_only_adds_what_the_record_lacks():
    ops = diff_values(source_values("PHONE", ["999", "111111"]), portal_values("PHONE", HELD), "append")
    assert legacy_payload(ops) == [{"VALUE": "999", "VALUE_TYPE": "WORK"}]


def test_a_plain_value_keeps_the_portals_type_and_a_typed_one_sets_it():
    held = [MultiValue("EMAIL", "a@x.io", "HOME", 7)]
    assert diff_values(source_values("EMAIL", ["A@x.io"]), held) == []
    ops = diff_values(source_values("EMAIL", [{"VALUE": "a@x.io", "VALUE_TYPE": "WORK"}]), held)
    assert legacy_payload(ops) == [{"ID": 7, "VALUE": "a@x.io", "VALUE_TYPE": "WORK"}]


def test_crm_item_fm_operations_are_keyed_as_the_tutorial_shows():
    """how-to-change-email-or-phone.md: a value's id changes or (empty value) deletes it; n0... add;
    typeId in every element."""
    held = [{"id": 8553, "typeId": "EMAIL", "valueType": "WORK", "value": "w@nomail.com"},
            {"id": 8555, "typeId": "EMAIL", "valueType": "HOME", "value": "h@nomail.com"}]  # fmt: skip
    ops = diff_values(source_values("EMAIL", ["new@nomail.com"]), portal_values("EMAIL", held))
    ops += diff_values(source_values("PHONE", ["+79995554433"]), portal_values("PHONE", held))
    assert item_fm_payload(ops) == {"8553": {"typeId": "EMAIL", "value": "new@nomail.com", "valueType": "WORK"},
                                    "8555": {"typeId": "EMAIL", "value": ""},
                                    "n0": {"typeId": "PHONE", "valueType": "WORK", "value": "+79995554433"}}


def test_values_compare_in_the_portals_meaning_of_their_type():
    assert comparable(PortalField("ASSIGNED_BY_ID", "user"), "5") == comparable(PortalField("X", "user"), 5)
    assert comparable(PortalField("OPENED", "char"), True) == comparable(PortalField("OPENED", "char"), "Y")
    assert comparable(PortalField("OPPORTUNITY", "double"), "100.00") == Decimal(100)
    assert comparable(PortalField("BEGINDATE", "date"), "2024-05-06T00:00:00+02:00") == "2024-05-06"
    moment = PortalField("DATE", "datetime")
    assert comparable(moment, "2024-07-18T14:00:14+02:00") == comparable(moment, "2024-07-18T12:00:14+00:00")
    tags = PortalField("UF_CRM_TAGS", "enumeration", multiple=True, items={"45": "Gold", "46": "Silver"})
    assert comparable(tags, ["Silver", "45"]) == comparable(tags, ["45", "46"])
    assert comparable(PortalField("TITLE", "string"), "") is None and comparable(None, []) is None


def test_a_diff_sends_only_what_differs_and_clears_what_the_row_emptied():
    model = EntityFields({"NAME": {"type": "string"}, "LAST_NAME": {"type": "string"},
                          "PHONE": {"type": "crm_multifield", "isMultiple": True}}, "crm.contact")  # fmt: skip
    record = {"ID": "3", "NAME": "Ann", "LAST_NAME": "Lee", "PHONE": HELD[:1]}
    diff = diff_record({"NAME": "Ann", "LAST_NAME": None, "PHONE": ["111111"]}, record, model)
    assert diff.fields == {"LAST_NAME": ""}
    assert [(c.field, c.old, c.new) for c in diff.changes] == [("LAST_NAME", "Lee", None)]


def test_a_mapping_is_checked_with_the_nearest_names_and_the_entitys_rules():
    model = EntityFields({"NAME": {"type": "string", "isRequired": True}, "SECOND_NAME": {"type": "string",
                          "isRequired": True}, "LAST_NAME": {"type": "string", "isRequired": True},
                          "EMAIL": {"type": "crm_multifield"}, "DATE_CREATE": {"type": "datetime", "isReadOnly": True},
                          "CATEGORY_ID": {"type": "crm_category", "isImmutable": True}}, "crm.contact")  # fmt: skip
    problems = model.check_mapping(["EMAIL_ADDR", "DATE_CREATE", "CATEGORY_ID"], creates=True, updates=True)
    assert problems[0].startswith("'EMAIL_ADDR' is not a field of crm.contact; did you mean 'EMAIL'")
    assert "read-only" in problems[1] and "immutable" in problems[2]
    assert "needs one of ['LAST_NAME', 'NAME', 'SECOND_NAME']" in problems[3]
    assert model.check_mapping(["LAST_NAME", "EMAIL"], creates=True, updates=True) == []
