"""The portal's CRM reference data: directories (``crm.status.*``), pipelines (``crm.category.*``)
and user fields (``crm.<entity>.userfield.*``, with their values).

Directories are lists of statuses by ``ENTITY_ID`` (``DEAL_STAGE``, ``STATUS`` for lead
stages, ``SOURCE``, ``DEAL_TYPE``, ...); the stages of deal pipeline N live in
``DEAL_STAGE_N`` with ids prefixed ``CN:`` (``crm-status-add.md``). A new portal has the values
the seeder uses, with the names and colours of ``crm-status-list.md`` where it shows them
(the others are a cloud portal's English defaults **[choice]**). Kept in memory only, not in
the ``--state`` file **[choice]**.
"""

from __future__ import annotations

from typing import Any

from ._spa import SPA_STAGES, stage_directory, stage_prefix

__all__ = ["CATEGORY_ENTITY_TYPES", "CrmReference", "STAGE_ENTITIES"]

# (STATUS_ID, NAME, COLOR, SEMANTICS P/S/F, SYSTEM); SORT is 10, 20, ...
_DEAL_STAGES = (("NEW", "New", "#39A8EF", "P", True),
                ("PREPARATION", "Document preparation", "#2FC6F6", "P", False),
                ("PREPAYMENT_INVOICE", "Prepayment invoice", "#55D0E0", "P", False),
                ("EXECUTING", "In progress", "#47E4C2", "P", False),
                ("FINAL_INVOICE", "Final invoice", "#FFA900", "P", False),
                ("WON", "Deal successful", "#7BD500", "S", True),
                ("LOSE", "Deal failed", "#FF5752", "F", True),
                ("APOLOGY", "Failure reason analysis", "#FF5752", "F", False))
_LEAD_STAGES = (("NEW", "Unassigned", "#2FC6F6", "P", True),
                ("IN_PROCESS", "In progress", "#55D0E0", "P", False),
                ("PROCESSED", "Processed", "#FFA900", "P", False),
                ("CONVERTED", "Good lead", "#7BD500", "S", True),
                ("JUNK", "Junk lead", "#FF5752", "F", True))
_PLAIN: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "SOURCE": ("Sources", (("CALL", "Call"), ("EMAIL", "E-Mail"), ("WEB", "Website"),
                           ("ADVERTISING", "Advertising"), ("PARTNER", "Existing client"),
                           ("RECOMMENDATION", "By recommendation"),
                           ("TRADE_SHOW", "Show/Exhibition"), ("WEBFORM", "CRM form"),
                           ("CALLBACK", "Callback"), ("OTHER", "Other"))),
    "CONTACT_TYPE": ("Contact type", (("CLIENT", "Clients"), ("SUPPLIER", "Suppliers"),
                                      ("PARTNER", "Partners"), ("OTHER", "Other"))),
    "COMPANY_TYPE": ("Company type", (("CUSTOMER", "Client"), ("SUPPLIER", "Supplier"),
                                      ("COMPETITOR", "Competitor"), ("PARTNER", "Partner"),
                                      ("OTHER", "Other"))),
    "EMPLOYEES": ("Number of employees", (("EMPLOYEES_1", "less than 50"), ("EMPLOYEES_2", "50-250"),
                                          ("EMPLOYEES_3", "250-500"), ("EMPLOYEES_4", "over 500"))),
    "INDUSTRY": ("Industry", (("IT", "Information Technology"), ("TELECOM", "Telecommunication"),
                              ("MANUFACTURING", "Manufacturing"), ("BANKING", "Banking Services"),
                              ("CONSULTING", "Consulting"), ("FINANCE", "Finance"),
                              ("GOVERNMENT", "Government"), ("DELIVERY", "Delivery"),
                              ("ENTERTAINMENT", "Entertainment"), ("NOTPROFIT", "Non-profit"),
                              ("OTHER", "Other"))),
    "DEAL_TYPE": ("Deal type", (("SALE", "Sales"), ("COMPLEX", "Integrated sale"),
                                ("GOODS", "Merchandise sale"), ("SERVICES", "Service sale"),
                                ("SERVICE", "After-sale service"))),
    "HONORIFIC": ("Inquiries", (("HNR_EN_1", "Mr."), ("HNR_EN_2", "Mrs."), ("HNR_EN_3", "Ms."),
                                ("HNR_EN_4", "Dr."))),
}
#: Directories whose values are stages (with colours and semantics): entity -> CRM type id.
STAGE_ENTITIES = {"STATUS": 1, "DEAL_STAGE": 2}
#: CRM types with pipelines (crm.category.*): deals, contacts, companies.
CATEGORY_ENTITY_TYPES = (2, 3, 4)


class CrmReference:
    """Statuses (dicts in the legacy shape's keys, typed) and pipelines of one portal."""

    def __init__(self) -> None:
        self.statuses: list[dict[str, Any]] = []
        self.next_status_id = 1
        self.categories: dict[int, list[dict[str, Any]]] = {
            t: [{"id": 0, "name": "General", "sort": 300, "entityTypeId": t, "isDefault": "Y"}]
            for t in CATEGORY_ENTITY_TYPES}
        self.next_category_id = 1
        #: User fields (``crm.<entity>.userfield.*``) by entity name, and their values by record id.
        self.userfields: dict[str, list[dict[str, Any]]] = {n: [] for n in ("lead", "deal", "contact", "company")}
        self.uf_values: dict[str, dict[int, dict[str, Any]]] = {n: {} for n in self.userfields}
        self.next_userfield_id = 1
        self.next_enum_id = 1
        #: ``SORT`` of each deal-contact binding given by ``crm.deal.contact.*`` (deal -> contact -> sort).
        self.contact_sorts: dict[int, dict[int, int]] = {}
        #: Product rows by (entity name, owner id) (``crm.deal.productrows.*``, ``crm.lead...``).
        self.product_rows: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self.next_product_row_id = 1
        #: Smart-process types (``crm.type.*``) in creation order.
        self.types: list[dict[str, Any]] = []
        #: Currencies (``crm.currency.*``) by code; ``_methods_currency`` fills the defaults.
        self.currencies: dict[str, dict[str, Any]] = {}
        self.next_type_id = 1
        for entity, stages in (("STATUS", _LEAD_STAGES), ("DEAL_STAGE", _DEAL_STAGES)):
            self.add_stages(entity, "", None, stages)
        for entity, (_, values) in _PLAIN.items():
            for n, (status_id, name) in enumerate(values, 1):
                self.add_status({"ENTITY_ID": entity, "STATUS_ID": status_id, "NAME": name,
                                 "NAME_INIT": name, "SORT": 10 * n, "SYSTEM": "N",
                                 "CATEGORY_ID": None, "COLOR": None, "SEMANTICS": None})

    # ---- statuses ------------------------------------------------------------------
    def add_status(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Store a status (``ID`` assigned) and return it."""
        status = {"ID": self.next_status_id, **fields}
        self.next_status_id += 1
        self.statuses.append(status)
        return status

    def add_stages(self, entity: str, prefix: str, category_id: int | None,
                   stages: tuple[tuple[str, str, str, str, bool], ...] = _DEAL_STAGES) -> None:
        """The default stages of a pipeline (``prefix`` ``C1:`` for deal pipeline 1)."""
        for n, (code, name, color, semantics, system) in enumerate(stages, 1):
            self.add_status({"ENTITY_ID": entity, "STATUS_ID": prefix + code, "NAME": name,
                             "NAME_INIT": name if system else "", "SORT": 10 * n,
                             "SYSTEM": "Y" if system else "N", "CATEGORY_ID": category_id,
                             "COLOR": color, "SEMANTICS": None if semantics == "P" else semantics})

    def status(self, id_: int) -> dict[str, Any] | None:
        """The status with this ``ID``."""
        return next((s for s in self.statuses if s["ID"] == id_), None)

    def entity_ids(self) -> list[str]:
        """Every directory that exists (the fixed ones, one per deal pipeline, one per category
        of each smart process)."""
        deals = [f"DEAL_STAGE_{c['id']}" for c in self.categories[2] if c["id"]]
        spas = [stage_directory(t["entityTypeId"], c["id"]) for t in self.types
                for c in self.categories[t["entityTypeId"]]]
        return ["STATUS", *_PLAIN, *deals, "DEAL_STAGE", *spas]

    def entity_name(self, entity: str) -> str:
        """The directory's name, as ``crm.status.entity.types`` shows it."""
        if entity == "STATUS":
            return "Lead stages"
        if entity == "DEAL_STAGE":
            return "General deal stages"
        if entity in _PLAIN:
            return _PLAIN[entity][0]
        if entity.startswith("DYNAMIC_"):
            type_id, category_id = (int(x) for x in entity[8:].split("_STAGE_"))
            spa, category = self.type_by_entity_type_id(type_id), self.category(type_id, category_id)
            return f"{spa['title'] if spa else ''} ({category['name'] if category else ''})"
        category = self.category(2, int(entity.rsplit("_", 1)[1]))
        return f"{category['name'] if category else ''} deal stages"

    def items(self, entity: str) -> list[dict[str, Any]]:
        """The statuses of one directory in ``SORT`` order."""
        return sorted((s for s in self.statuses if s["ENTITY_ID"] == entity),
                      key=lambda s: (s["SORT"], s["ID"]))

    def pipeline(self, entity_type_id: int, category_id: int) -> dict[str, str] | None:
        """Stage -> semantics (P/S/F) of a lead or deal pipeline; None when it does not exist."""
        if entity_type_id == 1:
            entity = "STATUS"
        elif entity_type_id == 2:
            entity = "DEAL_STAGE" if not category_id else f"DEAL_STAGE_{category_id}"
            if category_id and self.category(2, category_id) is None:
                return None
        elif self.type_by_entity_type_id(entity_type_id) is not None:
            if self.category(entity_type_id, category_id) is None:
                return None
            entity = stage_directory(entity_type_id, category_id)
        else:
            return None
        return {s["STATUS_ID"]: s["SEMANTICS"] or "P" for s in self.items(entity)}

    # ---- pipelines -----------------------------------------------------------------
    def category(self, entity_type_id: int, id_: int) -> dict[str, Any] | None:
        """One pipeline of a CRM type, or None."""
        return next((c for c in self.categories.get(entity_type_id, []) if c["id"] == id_), None)

    # ---- smart processes -----------------------------------------------------------
    def type_by_entity_type_id(self, entity_type_id: int) -> dict[str, Any] | None:
        """The smart-process type with this ``entityTypeId``, or None."""
        return next((t for t in self.types if t["entityTypeId"] == entity_type_id), None)

    def add_spa_category(self, entity_type_id: int, name: str, sort: int, is_default: bool) -> dict[str, Any]:
        """A category of a smart process, with its stage directory (``DT<T>_<N>:`` stages)."""
        category = {"id": self.next_category_id, "name": name, "sort": sort,
                    "entityTypeId": entity_type_id, "isDefault": "Y" if is_default else "N",
                    "originId": "", "originatorId": ""}
        self.next_category_id += 1
        self.categories.setdefault(entity_type_id, []).append(category)
        self.add_stages(stage_directory(entity_type_id, category["id"]),
                        stage_prefix(entity_type_id, category["id"]), category["id"], SPA_STAGES)
        return category

    def default_category(self, entity_type_id: int) -> int:
        """The id of a type's default category (0 for deals, contacts, companies)."""
        return next((c["id"] for c in self.categories.get(entity_type_id, []) if c["isDefault"] == "Y"), 0)
