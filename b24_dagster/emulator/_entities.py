"""Field definitions of the CRM entity types, and the two views of one canonical record.

One canonical record per entity, stored as a tuple: the *hot* fields in slots (what the
seeder fills and filters touch most), then one slot for a dict of the other stored fields
(``None`` when all are at their defaults). Values are typed: ints, floats, unix seconds for
dates, ``"Y"``/``"N"`` for booleans, lists for multiple fields. Two views render it:

* ``crm.item.*``: camelCase keys, typed values, dates as ISO 8601 with the portal's offset;
* ``crm.deal.*`` and the other legacy methods: UPPER_SNAKE keys, every scalar a string.

Field sets and key orders follow the fixtures (``crm_item_add.json``, ``crm_item_get.json``,
``crm_deal_get.json``); contacts and companies, which have no fixture, follow the same pattern.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ENTITIES", "ENTITY_BY_NAME", "Entity", "Field", "STAGES", "USERS",
    "coerce", "item_view", "legacy_view", "materialize", "to_row",
]

#: The portal's users: id -> (name, last name, email, work position).
USERS: dict[int, tuple[str, str, str, str]] = {
    1: ("John", "Doe", "john.doe@example.com", "Director"),
    2: ("Maria", "Ivanova", "maria@example.com", "Sales"),
    3: ("Klaus", "Weber", "klaus@example.com", "Sales"),
    4: ("Anna", "Schmidt", "anna@example.com", "Support"),
    5: ("Li", "Wang", "li@example.com", "Sales"),
    6: ("Samantha", "Johnson", "sam@example.com", "Accountant"),
    7: ("Pierre", "Martin", "pierre@example.com", "Marketing"),
    8: ("Olga", "Smirnova", "olga@example.com", "Sales"),
    9: ("Ahmed", "Khan", "ahmed@example.com", "Support"),
    10: ("Lucia", "Rossi", "lucia@example.com", "Tester"),
}

#: Stages (deal, category 0) and lead statuses, with their semantics (P, S, F).
STAGES: dict[str, dict[str, str]] = {
    "deal": {"NEW": "P", "PREPARATION": "P", "PREPAYMENT_INVOICE": "P", "EXECUTING": "P",
             "FINAL_INVOICE": "P", "WON": "S", "LOSE": "F", "APOLOGY": "F"},
    "lead": {"NEW": "P", "IN_PROCESS": "P", "PROCESSED": "P", "JUNK": "F", "CONVERTED": "S"},
}

_INT_TYPES = {"integer", "user", "crm_lead", "crm_company", "crm_contact", "crm_quote",
              "crm_category", "location", "crm_entity"}
_FLOAT_TYPES = {"double", "money"}
_DATE_TYPES = {"date", "datetime"}


@dataclass(frozen=True, slots=True)
class Field:
    """One field of an entity type."""

    camel: str | None          # crm.item name; None when only the legacy methods have it
    upper: str | None          # legacy name; None when only crm.item has it
    type: str                  # Bitrix type as *.fields reports it
    slot: int | None           # index in the stored tuple, None when kept in the extras dict
    default: Any = None
    required: bool = False
    read_only: bool = False
    multiple: bool = False
    constant: bool = False     # always the default (item-only placeholders such as searchContent)
    title: str = ""
    hidden: bool = False       # legacy: in *.fields and writable, never in get/list (CONTACT_IDS)
    legacy_read_only: bool = False  # read-only in crm.<entity>.* only (crm-deal-fields.md LEAD_ID)
    legacy_immutable: bool = False  # set on add, never changed by crm.<entity>.update (CATEGORY_ID)

    @property
    def kind(self) -> str:
        """How values are typed: int, float, date, fm, str."""
        if self.type == "crm_multifield":
            return "fm"
        if self.type in _INT_TYPES:
            return "int"
        if self.type in _FLOAT_TYPES:
            return "float"
        if self.type in _DATE_TYPES:
            return "date"
        return "str"


def _title(name: str) -> str:
    return name.replace("_", " ").capitalize()


class Entity:
    """A CRM entity type: its fields, slots, and the two views of a stored row."""

    def __init__(self, name: str, type_id: int, spec: str, legacy_order: str, hot: str,
                 defaults: dict[str, Any]) -> None:
        self.name = name
        self.type_id = type_id
        self.hot: list[str] = hot.split()
        self.extras_slot = len(self.hot)
        fields: list[Field] = []
        for line in spec.strip().splitlines():
            camel, upper, ftype, flags = (line.split() + ["."])[:4]
            camel_name = None if camel == "-" else camel
            upper_name = None if upper == "-" else upper
            key = camel_name or upper_name or ""
            default = defaults.get(key, [] if "m" in flags else None)
            if camel_name == "entityTypeId":
                default = type_id
            fields.append(Field(
                camel_name, upper_name, ftype,
                self.hot.index(key) if key in self.hot else None,
                default, "q" in flags, "r" in flags, "m" in flags, "c" in flags,
                _title(upper_name or key), "w" in flags, "R" in flags, "I" in flags,
            ))
        self.fields = fields
        self.by_camel = {f.camel: f for f in fields if f.camel}
        self.by_upper = {f.upper: f for f in fields if f.upper}
        order = legacy_order.split()
        legacy = [self.by_upper[u] for u in order]
        legacy += [f for f in fields if f.upper and f.upper not in order]
        self.legacy_fields = legacy
        #: What crm.<entity>.get/list can show: the legacy fields but the write-only ones.
        self.legacy_shown = [f for f in legacy if not f.hidden]
        self.item_fields = [f for f in fields if f.camel]
        self.stages = STAGES.get(name)
        self.derive: Callable[[dict[str, Any]], None] = _derive_common
        self.materializer: Callable[[tuple[Any, ...]], dict[str, Any]] | None = None
        self.item_viewer: Callable[..., dict[str, Any]] | None = None
        self.legacy_viewers: dict[tuple[str | None, ...], Callable[..., dict[str, Any]]] = {}

    def key(self, f: Field) -> str:
        """The canonical key of a field (its camel name, else its legacy name)."""
        return f.camel or f.upper or ""

    def resolve(self, name: str, *, item: bool) -> Field | None:
        """The field called ``name`` (camelCase for crm.item, UPPER for legacy; both accepted)."""
        if item:
            return self.by_camel.get(name) or self.by_upper.get(name)
        return self.by_upper.get(name) or self.by_upper.get(name.upper())


def _derive_common(rec: dict[str, Any]) -> None:
    created = rec.get("createdTime")
    if rec.get("movedTime") is None and "movedTime" in rec:
        rec["movedTime"] = created
    if rec.get("lastActivityTime") is None and "lastActivityTime" in rec:
        rec["lastActivityTime"] = created
    for by in ("movedBy", "lastActivityBy"):
        if by in rec and rec[by] is None:
            rec[by] = rec.get("createdBy")
    fm = rec.get("fm")
    if fm is not None:
        phones = [m for m in fm if m[1] == "PHONE"]
        emails = [m for m in fm if m[1] == "EMAIL"]
        if "hasPhone" in rec:
            rec["hasPhone"] = "Y" if phones else "N"
            rec["hasEmail"] = "Y" if emails else "N"
            rec["hasImol"] = "N"
        if "phone" in rec:
            rec["phone"] = phones[0][3] if phones else ""
            rec["email"] = emails[0][3] if emails else ""
            for typ, vt, key in (("PHONE", "MOBILE", "phoneMobile"), ("PHONE", "WORK", "phoneWork"),
                                 ("PHONE", "MAILING", "phoneMailing"), ("EMAIL", "HOME", "emailHome"),
                                 ("EMAIL", "WORK", "emailWork"), ("EMAIL", "MAILING", "emailMailing")):
                rec[key] = next((m[3] for m in fm if m[1] == typ and m[2] == vt), "")
            rec["imol"] = ""


def _derive_stage(rec: dict[str, Any], stages: dict[str, str], first: str) -> None:
    stage = rec.get("stageId") or ""
    if ":" in stage:   # a stage of deal pipeline N is "CN:<stage>", of a smart process "DT<T>_<N>:"
        stage = stage.split(":", 1)[1]
    sem = stages.get(stage, "P")
    rec["stageSemanticId"] = sem
    if "closed" in rec:
        rec["closed"] = "N" if sem == "P" else "Y"
    if "isNew" in rec:
        rec["isNew"] = "Y" if stage == first else "N"
    _derive_common(rec)


#: One line a field: crm.item name, legacy name (``-`` when a view lacks it), type as ``*.fields``
#: reports it, flags: ``q`` required, ``r`` read-only, ``m`` multiple, ``c`` constant, ``w``
#: write-only in the legacy view, ``R`` read-only and ``I`` immutable in the legacy view only.
#: The flags follow the answers of crm-deal-fields.md, crm-lead-fields.md, crm-contact-fields.md
#: and crm-company-fields.md (``tests/emulator/test_http_doc_pages.py`` compares them).
_DEAL_SPEC = """
id ID integer r
createdTime DATE_CREATE datetime r
dateCreateShort - datetime rc
updatedTime DATE_MODIFY datetime r
dateModifyShort - datetime rc
createdBy CREATED_BY_ID user r
updatedBy MODIFY_BY_ID user r
assignedById ASSIGNED_BY_ID user
opened OPENED char
leadId LEAD_ID crm_lead R
companyId COMPANY_ID crm_company
contactId CONTACT_ID crm_contact
quoteId QUOTE_ID crm_quote R
title TITLE string
productId - integer c
categoryId CATEGORY_ID crm_category I
stageId STAGE_ID crm_status
stageSemanticId STAGE_SEMANTIC_ID string r
isNew IS_NEW char r
isRecurring IS_RECURRING char
isReturnCustomer IS_RETURN_CUSTOMER char
isRepeatedApproach IS_REPEATED_APPROACH char
closed CLOSED char
typeId TYPE_ID crm_status
opportunity OPPORTUNITY double
isManualOpportunity IS_MANUAL_OPPORTUNITY char
taxValue TAX_VALUE double
currencyId CURRENCY_ID crm_currency
probability PROBABILITY integer
comments COMMENTS string
begindate BEGINDATE date
begindateShort - date rc
closedate CLOSEDATE date
closedateShort - date rc
eventDate - datetime rc
eventDateShort - datetime rc
eventId - string rc
eventDescription - string rc
locationId LOCATION_ID location
webformId - integer rc
sourceId SOURCE_ID crm_status
sourceDescription SOURCE_DESCRIPTION string
originatorId ORIGINATOR_ID string
originId ORIGIN_ID string
additionalInfo ADDITIONAL_INFO string
searchContent - string rc
orderStage - string rc
movedBy MOVED_BY_ID user r
movedTime MOVED_TIME datetime r
lastActivityBy LAST_ACTIVITY_BY user r
lastActivityTime LAST_ACTIVITY_TIME datetime r
isWork - char rc
isWon - char rc
isLose - char rc
receivedAmount - double rc
lostAmount - double rc
hasProducts - char rc
ufCrm_1721244707107 UF_CRM_1721244707107 double
ufCrm_1721244482250 UF_CRM_1721244482250 string
parentId1220 PARENT_ID_1220 crm_entity
utmSource UTM_SOURCE string
utmMedium UTM_MEDIUM string
utmCampaign UTM_CAMPAIGN string
utmContent UTM_CONTENT string
utmTerm UTM_TERM string
observers - user m
contactIds CONTACT_IDS crm_contact mw
entityTypeId - integer rc
"""
_DEAL_LEGACY = """ID TITLE TYPE_ID STAGE_ID PROBABILITY CURRENCY_ID OPPORTUNITY IS_MANUAL_OPPORTUNITY
TAX_VALUE LEAD_ID COMPANY_ID CONTACT_ID QUOTE_ID BEGINDATE CLOSEDATE ASSIGNED_BY_ID CREATED_BY_ID
MODIFY_BY_ID DATE_CREATE DATE_MODIFY OPENED CLOSED COMMENTS ADDITIONAL_INFO LOCATION_ID CATEGORY_ID
STAGE_SEMANTIC_ID IS_NEW IS_RECURRING IS_RETURN_CUSTOMER IS_REPEATED_APPROACH SOURCE_ID
SOURCE_DESCRIPTION ORIGINATOR_ID ORIGIN_ID MOVED_BY_ID MOVED_TIME LAST_ACTIVITY_TIME UTM_SOURCE
UTM_MEDIUM UTM_CAMPAIGN UTM_CONTENT UTM_TERM PARENT_ID_1220 LAST_ACTIVITY_BY UF_CRM_1721244482250"""
_DEAL_HOT = ("id title typeId stageId currencyId opportunity companyId contactId assignedById "
             "createdBy updatedBy createdTime updatedTime begindate closedate sourceId")
_DEAL_DEFAULTS = {"opened": "Y", "companyId": 0, "contactId": 0, "categoryId": 0, "stageId": "NEW",
                  "isRecurring": "N", "isReturnCustomer": "N", "isRepeatedApproach": "N",
                  "typeId": "SALE", "opportunity": 0, "isManualOpportunity": "N", "taxValue": 0,
                  "currencyId": "USD", "comments": "", "sourceId": "", "sourceDescription": "",
                  "closed": "N", "isNew": "Y", "stageSemanticId": "P"}

_LEAD_SPEC = """
id ID integer r
createdTime DATE_CREATE datetime r
dateCreateShort - datetime rc
updatedTime DATE_MODIFY datetime r
dateModifyShort - datetime rc
createdBy CREATED_BY_ID user r
updatedBy MODIFY_BY_ID user r
assignedById ASSIGNED_BY_ID user
opened OPENED char
companyId COMPANY_ID crm_company
contactId CONTACT_ID crm_contact
stageId STATUS_ID crm_status
isConvert - char rc
statusDescription STATUS_DESCRIPTION string
stageSemanticId STATUS_SEMANTIC_ID string r
productId - integer rc
opportunity OPPORTUNITY double
currencyId CURRENCY_ID crm_currency
sourceId SOURCE_ID crm_status
sourceDescription SOURCE_DESCRIPTION string
title TITLE string
name NAME string
lastName LAST_NAME string
secondName SECOND_NAME string
shortName - string rc
companyTitle COMPANY_TITLE string
post POST string
address ADDRESS string
comments COMMENTS string
webformId - integer rc
originatorId ORIGINATOR_ID string
originId ORIGIN_ID string
dateClosed DATE_CLOSED datetime r
birthdate BIRTHDATE date
honorific HONORIFIC crm_status
hasPhone HAS_PHONE char r
hasEmail HAS_EMAIL char r
hasImol HAS_IMOL char r
login - string rc
isReturnCustomer IS_RETURN_CUSTOMER char R
searchContent - string rc
isManualOpportunity IS_MANUAL_OPPORTUNITY char
movedBy MOVED_BY_ID user r
movedTime MOVED_TIME datetime r
lastActivityBy LAST_ACTIVITY_BY user r
lastActivityTime LAST_ACTIVITY_TIME datetime r
phoneMobile - string r
phoneWork - string r
phoneMailing - string r
emailHome - string r
emailWork - string r
emailMailing - string r
skype - string rc
icq - string rc
imol - string r
email - string r
phone - string r
fm - crm_multifield m
ufCrm_1720019876534 UF_CRM_1720019876534 string
parentId1222 - crm_entity rc
parentId1226 - crm_entity rc
parentId1228 - crm_entity rc
parentId1236 - crm_entity rc
parentId1238 - crm_entity rc
parentId1240 - crm_entity rc
parentId1244 - crm_entity rc
parentId1246 - crm_entity rc
parentId1254 - crm_entity rc
parentId1256 - crm_entity rc
utmSource UTM_SOURCE string
utmMedium UTM_MEDIUM string
utmCampaign UTM_CAMPAIGN string
utmContent UTM_CONTENT string
utmTerm UTM_TERM string
observers - user m
contactIds CONTACT_IDS crm_contact mw
entityTypeId - integer rc
- ADDRESS_2 string
- ADDRESS_CITY string
- ADDRESS_POSTAL_CODE string
- ADDRESS_REGION string
- ADDRESS_PROVINCE string
- ADDRESS_COUNTRY string
- ADDRESS_COUNTRY_CODE string
- ADDRESS_LOC_ADDR_ID integer
"""
_LEAD_LEGACY = """ID TITLE HONORIFIC NAME SECOND_NAME LAST_NAME COMPANY_TITLE COMPANY_ID CONTACT_ID
IS_RETURN_CUSTOMER BIRTHDATE SOURCE_ID SOURCE_DESCRIPTION STATUS_ID STATUS_DESCRIPTION POST COMMENTS
CURRENCY_ID OPPORTUNITY IS_MANUAL_OPPORTUNITY HAS_PHONE HAS_EMAIL HAS_IMOL ASSIGNED_BY_ID
CREATED_BY_ID MODIFY_BY_ID DATE_CREATE DATE_MODIFY DATE_CLOSED STATUS_SEMANTIC_ID OPENED
ORIGINATOR_ID ORIGIN_ID MOVED_BY_ID MOVED_TIME ADDRESS ADDRESS_2 ADDRESS_CITY ADDRESS_POSTAL_CODE
ADDRESS_REGION ADDRESS_PROVINCE ADDRESS_COUNTRY ADDRESS_COUNTRY_CODE ADDRESS_LOC_ADDR_ID UTM_SOURCE
UTM_MEDIUM UTM_CAMPAIGN UTM_CONTENT UTM_TERM LAST_ACTIVITY_TIME LAST_ACTIVITY_BY"""
_LEAD_HOT = ("id title name lastName stageId currencyId opportunity assignedById createdBy updatedBy "
             "createdTime updatedTime sourceId fm")
_LEAD_DEFAULTS = {"opened": "Y", "companyId": 0, "contactId": 0, "stageId": "NEW", "opportunity": 0,
                  "currencyId": "USD", "sourceId": "", "sourceDescription": "", "comments": "",
                  "isReturnCustomer": "N", "isManualOpportunity": "N", "hasPhone": "N",
                  "hasEmail": "N", "hasImol": "N", "stageSemanticId": "P"}

_CONTACT_SPEC = """
id ID integer r
createdTime DATE_CREATE datetime r
updatedTime DATE_MODIFY datetime r
createdBy CREATED_BY_ID user r
updatedBy MODIFY_BY_ID user r
assignedById ASSIGNED_BY_ID user
opened OPENED char
companyId COMPANY_ID crm_company
sourceId SOURCE_ID crm_status
sourceDescription SOURCE_DESCRIPTION string
name NAME string q
secondName SECOND_NAME string q
lastName LAST_NAME string q
post POST string
comments COMMENTS string
honorific HONORIFIC crm_status
birthdate BIRTHDATE date
typeId TYPE_ID crm_status
exported EXPORT char
hasPhone HAS_PHONE char r
hasEmail HAS_EMAIL char r
hasImol HAS_IMOL char r
originatorId ORIGINATOR_ID string
originId ORIGIN_ID string
leadId LEAD_ID crm_lead R
lastActivityBy LAST_ACTIVITY_BY user r
lastActivityTime LAST_ACTIVITY_TIME datetime r
fm - crm_multifield m
utmSource UTM_SOURCE string
utmMedium UTM_MEDIUM string
utmCampaign UTM_CAMPAIGN string
utmContent UTM_CONTENT string
utmTerm UTM_TERM string
observers - user m
companyIds COMPANY_IDS crm_company mw
entityTypeId - integer rc
- PHOTO file
- ORIGIN_VERSION string
- FACE_ID integer r
- ADDRESS string
- ADDRESS_2 string
- ADDRESS_CITY string
- ADDRESS_POSTAL_CODE string
- ADDRESS_REGION string
- ADDRESS_PROVINCE string
- ADDRESS_COUNTRY string
- ADDRESS_COUNTRY_CODE string
- ADDRESS_LOC_ADDR_ID integer
"""
_CONTACT_LEGACY = """ID POST COMMENTS HONORIFIC NAME SECOND_NAME LAST_NAME PHOTO LEAD_ID TYPE_ID
SOURCE_ID SOURCE_DESCRIPTION COMPANY_ID BIRTHDATE EXPORT HAS_PHONE HAS_EMAIL HAS_IMOL DATE_CREATE
DATE_MODIFY ASSIGNED_BY_ID CREATED_BY_ID MODIFY_BY_ID OPENED ORIGINATOR_ID ORIGIN_ID ORIGIN_VERSION
FACE_ID LAST_ACTIVITY_TIME ADDRESS ADDRESS_2 ADDRESS_CITY ADDRESS_POSTAL_CODE ADDRESS_REGION
ADDRESS_PROVINCE ADDRESS_COUNTRY ADDRESS_COUNTRY_CODE ADDRESS_LOC_ADDR_ID UTM_SOURCE UTM_MEDIUM
UTM_CAMPAIGN UTM_CONTENT UTM_TERM LAST_ACTIVITY_BY"""
_CONTACT_HOT = "id name lastName companyId assignedById createdBy updatedBy createdTime updatedTime fm"
_CONTACT_DEFAULTS = {"opened": "Y", "companyId": 0, "sourceId": "", "comments": "", "typeId": "CLIENT",
                     "exported": "N", "hasPhone": "N", "hasEmail": "N", "hasImol": "N"}

_COMPANY_SPEC = """
id ID integer r
createdTime DATE_CREATE datetime r
updatedTime DATE_MODIFY datetime r
createdBy CREATED_BY_ID user r
updatedBy MODIFY_BY_ID user r
assignedById ASSIGNED_BY_ID user
opened OPENED char
title TITLE string q
typeId COMPANY_TYPE crm_status
industry INDUSTRY crm_status
employees EMPLOYEES crm_status
revenue REVENUE double
currencyId CURRENCY_ID crm_currency
comments COMMENTS string
isMyCompany IS_MY_COMPANY char
hasPhone HAS_PHONE char r
hasEmail HAS_EMAIL char r
hasImol HAS_IMOL char r
originatorId ORIGINATOR_ID string
originId ORIGIN_ID string
leadId LEAD_ID crm_lead R
lastActivityBy LAST_ACTIVITY_BY user
lastActivityTime LAST_ACTIVITY_TIME datetime
fm - crm_multifield m
utmSource UTM_SOURCE string
utmMedium UTM_MEDIUM string
utmCampaign UTM_CAMPAIGN string
utmContent UTM_CONTENT string
utmTerm UTM_TERM string
observers - user m
contactIds CONTACT_ID crm_contact mw
entityTypeId - integer rc
- LOGO file
- BANKING_DETAILS string
- ORIGIN_VERSION string
- LAST_COMMUNICATION_TIME string r
- ADDRESS string
- ADDRESS_2 string
- ADDRESS_CITY string
- ADDRESS_POSTAL_CODE string
- ADDRESS_REGION string
- ADDRESS_PROVINCE string
- ADDRESS_COUNTRY string
- ADDRESS_COUNTRY_CODE string
- ADDRESS_LOC_ADDR_ID integer
- ADDRESS_LEGAL string
- REG_ADDRESS string
- REG_ADDRESS_2 string
- REG_ADDRESS_CITY string
- REG_ADDRESS_POSTAL_CODE string
- REG_ADDRESS_REGION string
- REG_ADDRESS_PROVINCE string
- REG_ADDRESS_COUNTRY string
- REG_ADDRESS_COUNTRY_CODE string
- REG_ADDRESS_LOC_ADDR_ID integer
"""
_COMPANY_LEGACY = """ID COMPANY_TYPE TITLE LOGO LEAD_ID HAS_PHONE HAS_EMAIL HAS_IMOL ASSIGNED_BY_ID
CREATED_BY_ID MODIFY_BY_ID BANKING_DETAILS INDUSTRY REVENUE CURRENCY_ID EMPLOYEES COMMENTS DATE_CREATE
DATE_MODIFY OPENED IS_MY_COMPANY ORIGINATOR_ID ORIGIN_ID ORIGIN_VERSION ADDRESS ADDRESS_2 ADDRESS_CITY ADDRESS_POSTAL_CODE
ADDRESS_REGION ADDRESS_PROVINCE ADDRESS_COUNTRY ADDRESS_COUNTRY_CODE ADDRESS_LOC_ADDR_ID ADDRESS_LEGAL REG_ADDRESS REG_ADDRESS_2
REG_ADDRESS_CITY REG_ADDRESS_POSTAL_CODE REG_ADDRESS_REGION REG_ADDRESS_PROVINCE REG_ADDRESS_COUNTRY REG_ADDRESS_COUNTRY_CODE REG_ADDRESS_LOC_ADDR_ID UTM_SOURCE UTM_MEDIUM UTM_CAMPAIGN UTM_CONTENT UTM_TERM
LAST_ACTIVITY_BY LAST_ACTIVITY_TIME LAST_COMMUNICATION_TIME"""
_COMPANY_HOT = "id title typeId industry assignedById createdBy updatedBy createdTime updatedTime fm"
_COMPANY_DEFAULTS = {"opened": "Y", "typeId": "CUSTOMER", "industry": "OTHER", "employees": "EMPLOYEES_1",
                     "revenue": 0, "currencyId": "USD", "comments": "", "isMyCompany": "N",
                     "hasPhone": "N", "hasEmail": "N", "hasImol": "N"}

DEAL = Entity("deal", 2, _DEAL_SPEC, _DEAL_LEGACY, _DEAL_HOT, _DEAL_DEFAULTS)
LEAD = Entity("lead", 1, _LEAD_SPEC, _LEAD_LEGACY, _LEAD_HOT, _LEAD_DEFAULTS)
CONTACT = Entity("contact", 3, _CONTACT_SPEC, _CONTACT_LEGACY, _CONTACT_HOT, _CONTACT_DEFAULTS)
COMPANY = Entity("company", 4, _COMPANY_SPEC, _COMPANY_LEGACY, _COMPANY_HOT, _COMPANY_DEFAULTS)
DEAL.derive = lambda rec: _derive_stage(rec, STAGES["deal"], "NEW")
LEAD.derive = lambda rec: _derive_stage(rec, STAGES["lead"], "NEW")

#: CRM entity types by ``entityTypeId``.
ENTITIES: dict[int, Entity] = {e.type_id: e for e in (LEAD, DEAL, CONTACT, COMPANY)}
#: CRM entity types by name (``deal``, ``lead``, ``contact``, ``company``).
ENTITY_BY_NAME: dict[str, Entity] = {e.name: e for e in ENTITIES.values()}


# ---------------------------------------------------------------------------------------------
# Rows <-> canonical records <-> views


def _compile_materialize(entity: Entity) -> Callable[[tuple[Any, ...]], dict[str, Any]]:
    """Generate ``row -> canonical record`` for one entity (a dict literal, no per-field loop)."""
    lines = ["def materialize(row):", f"    ex = row[{entity.extras_slot}] or _EMPTY", "    return {"]
    for f in entity.fields:
        key = f.camel or f.upper or ""
        if f.slot is not None:
            expr = f"row[{f.slot}]"
        elif f.constant:
            expr = repr(f.default)
        elif isinstance(f.default, list):
            expr = f"list(ex.get({key!r}, ()))"
        else:
            expr = f"ex.get({key!r}, {f.default!r})"
        lines.append(f"        {key!r}: {expr},")
    lines.append("    }")
    namespace: dict[str, Any] = {"_EMPTY": {}}
    exec("\n".join(lines), namespace)  # noqa: S102 - generated from the field table above
    return namespace["materialize"]  # type: ignore[no-any-return]


def materialize(entity: Entity, row: tuple[Any, ...]) -> dict[str, Any]:
    """The canonical record of a stored row: every field by its canonical key, typed, derived."""
    fn = entity.materializer
    if fn is None:
        fn = entity.materializer = _compile_materialize(entity)
    rec = fn(row)
    entity.derive(rec)
    return rec


def _compile_item_view(entity: Entity) -> Callable[[dict[str, Any], Callable[[float], str]], dict[str, Any]]:
    """Generate ``(record, fmt) -> crm.item view`` over all item fields."""
    lines = ["def view(rec, fmt):", "    return {"]
    for f in entity.item_fields:
        k = repr(f.camel)
        if f.kind == "date":
            expr = f"None if rec[{k}] is None else fmt(rec[{k}])"
        elif f.kind == "float":
            expr = f"None if rec[{k}] is None else _num(rec[{k}])"
        elif f.kind == "fm":
            expr = (f"[{{'id': m[0], 'valueType': m[2], 'value': m[3], 'typeId': m[1]}} "
                    f"for m in rec[{k}]] if rec[{k}] is not None else None")
        else:
            expr = f"rec[{k}]"
        lines.append(f"        {k}: {expr},")
    lines.append("    }")
    namespace: dict[str, Any] = {"_num": _num}
    exec("\n".join(lines), namespace)  # noqa: S102 - generated from the field table above
    return namespace["view"]  # type: ignore[no-any-return]


def to_row(entity: Entity, rec: dict[str, Any]) -> tuple[Any, ...]:
    """The stored tuple of a canonical record (non-hot fields at their default are not kept)."""
    extras: dict[str, Any] = {}
    for f in entity.fields:
        if f.slot is not None or f.constant or f.read_only and f.camel not in _STORED_RO:
            continue
        key = f.camel or f.upper or ""
        v = rec.get(key, f.default)
        if v != f.default:
            extras[key] = v
    for key in _STORED_RO:
        if key in rec and rec[key] is not None and key in entity.by_camel:
            extras[key] = rec[key]
    return tuple(rec.get(k) for k in entity.hot) + (extras or None,)


# Read-only fields the portal itself sets and keeps (when not derived from others).
_STORED_RO = ("movedBy", "movedTime", "lastActivityBy", "lastActivityTime", "dateClosed")


def _num(v: float) -> float | int:
    return int(v) if v == v and v == int(v) and abs(v) < 1e15 else v


def item_view(entity: Entity, rec: dict[str, Any], fmt: Callable[[float], str],
              fields: list[Field] | None = None) -> dict[str, Any]:
    """The crm.item view (camelCase, typed) of a canonical record, over ``fields`` (default all)."""
    if fields is None:
        fn = entity.item_viewer
        if fn is None:
            fn = entity.item_viewer = _compile_item_view(entity)
        return fn(rec, fmt)
    out: dict[str, Any] = {}
    for f in fields if fields is not None else entity.item_fields:
        v = rec[f.camel]  # type: ignore[index]
        if v is None:
            out[f.camel] = None  # type: ignore[index]
            continue
        kind = f.kind
        if kind == "date":
            v = fmt(v)
        elif kind == "float":
            v = _num(v)
        elif kind == "fm":
            v = [{"id": m[0], "valueType": m[2], "value": m[3], "typeId": m[1]} for m in v]
        out[f.camel] = v  # type: ignore[index]
    return out


def _compile_legacy_view(fields: list[Field]) -> Callable[..., dict[str, Any]]:
    """Generate ``(record, fmt) -> legacy view`` over ``fields`` (every scalar a string)."""
    lines = ["def view(rec, fmt):", "    return {"]
    for f in fields:
        k = repr(f.camel or f.upper)
        if f.multiple:
            expr = f"[str(x) for x in rec[{k}]] if rec[{k}] is not None else None"
        elif f.kind == "date":
            expr = f"None if rec[{k}] is None else fmt(rec[{k}])"
        elif f.kind == "float":
            expr = f"None if rec[{k}] is None else '%.2f' % rec[{k}]"
        elif f.kind == "str":
            expr = f"None if rec[{k}] is None else str(rec[{k}])"
        else:
            expr = f"None if rec[{k}] is None else str(rec[{k}])"
        lines.append(f"        {f.upper!r}: {expr},")
    lines.append("    }")
    namespace: dict[str, Any] = {}
    exec("\n".join(lines), namespace)  # noqa: S102 - generated from the field table
    return namespace["view"]  # type: ignore[no-any-return]


def _legacy_scalar(f: Field, v: Any, fmt: Callable[[float], str]) -> Any:
    if v is None:
        return None
    kind = f.kind
    if kind == "date":
        return fmt(v)
    if kind == "float":
        return f"{v:.2f}"
    if isinstance(v, list):
        return [str(x) for x in v]
    return str(v)


def legacy_view(entity: Entity, rec: dict[str, Any], fmt: Callable[[float], str],
                fields: list[Field] | None = None, *,
                multifields: Sequence[str] = ("PHONE", "EMAIL", "WEB", "IM")) -> dict[str, Any]:
    """The legacy view (UPPER_SNAKE, strings) of a canonical record, with the multi-fields
    named in ``multifields`` (crm-lead-get.md shows IM too)."""
    chosen = fields if fields is not None else entity.legacy_shown
    key = tuple(f.upper for f in chosen)
    fn = entity.legacy_viewers.get(key)
    if fn is None:
        fn = _compile_legacy_view(chosen)
        if len(entity.legacy_viewers) < 256:
            entity.legacy_viewers[key] = fn
    out = fn(rec, fmt)
    fm = rec.get("fm")
    if multifields and fm:
        for typ in multifields:
            vals = [{"ID": str(m[0]), "VALUE_TYPE": m[2], "VALUE": m[3], "TYPE_ID": m[1]}
                    for m in fm if m[1] == typ]
            if vals:
                out[typ] = vals
    return out


def coerce(f: Field, value: Any, parse_date: Callable[[Any], float | None]) -> Any:
    """Turn an input value into the field's stored type; raises ValueError when it cannot."""
    if f.multiple and f.kind != "fm":
        if value in (None, "", []):
            return []
        items = value if isinstance(value, list) else list(value.values()) if isinstance(value, dict) else [value]
        single = Field(f.camel, f.upper, f.type, None)
        return [coerce(single, v, parse_date) for v in items]
    if value is None or (value == "" and f.kind in ("int", "float", "date")):
        return None
    kind = f.kind
    if kind == "int":
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        text = str(value).strip()
        if text.isascii() and text.lstrip("-").isdigit():
            return int(text)
        raise ValueError(f"value '{value}' is not an integer")
    if kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        try:
            return float(str(value).strip())
        except ValueError:
            raise ValueError(f"value '{value}' is not a number") from None
    if kind == "date":
        ts = parse_date(value)
        if ts is None:
            raise ValueError(f"value '{value}' is not a date")
        return ts
    if f.type == "char":
        if value in (True, 1, "1", "Y", "y", "true"):
            return "Y"
        if value in (False, 0, "0", "N", "n", "false", ""):
            return "N"
        raise ValueError(f"value '{value}' is not Y or N")
    if isinstance(value, (dict, list)):
        raise ValueError("value is not a string")
    return str(value)
