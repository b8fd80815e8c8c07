"""The CRM entities a sync can write: each one's methods, id and key fields, in the portal's names.

A sync creates, reads, updates and deletes records of one entity, so it needs the whole method
family of that entity and nothing else. The family is named by the create method the user gives
(``crm.contact.add``, ``crm.item.add`` with an ``entityTypeId``); anything else is refused by
name, so a misspelt method (``crm.contact.ad``) cannot turn a sync into a one-shot send.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError

__all__ = ["LEGACY_MULTIFIELDS", "CrmEntity", "crm_entity_of", "sync_entities"]

#: The legacy multi-fields of leads, contacts and companies (crm/auxiliary/multifield/index.md).
LEGACY_MULTIFIELDS = ("PHONE", "EMAIL", "WEB", "IM", "LINK")
_LEGACY = ("lead", "deal", "contact", "company")
_WITH_COMMUNICATIONS = {"lead", "contact", "company"}
_ITEM_TYPES_WITH_COMMUNICATIONS = {1, 3, 4}


@dataclass(frozen=True)
class CrmEntity:
    """One CRM entity's method family (legacy ``crm.<name>.*`` or ``crm.item.*``).

    Attributes:
        prefix: ``crm.contact`` or ``crm.item``.
        entity_type_id: The ``entityTypeId`` of ``crm.item`` (None for legacy methods).
    """

    prefix: str
    entity_type_id: int | None = None

    @property
    def item(self) -> bool:
        """Whether this is ``crm.item.*`` (camelCase names, typed values)."""
        return self.prefix == "crm.item"

    def method(self, operation: str) -> str:
        """``crm.contact.update`` for ``update``."""
        return f"{self.prefix}.{operation}"

    @property
    def params(self) -> dict[str, Any]:
        """The constant params of every method of the family (``entityTypeId`` of crm.item)."""
        return {"entityTypeId": self.entity_type_id} if self.item else {}

    @property
    def id_field(self) -> str:
        """``ID`` (legacy) or ``id`` (crm.item)."""
        return "id" if self.item else "ID"

    @property
    def key_field(self) -> str:
        """The origin field rows are matched by: ``ORIGIN_ID`` or ``originId``."""
        return "originId" if self.item else "ORIGIN_ID"

    @property
    def multifields(self) -> tuple[str, ...]:
        """The multi-fields (phones, e-mails, ...) this entity has: ``PHONE``... or ``fm``."""
        if self.item:
            return ("fm",) if self.entity_type_id in _ITEM_TYPES_WITH_COMMUNICATIONS else ()
        return LEGACY_MULTIFIELDS if self.prefix.split(".")[1] in _WITH_COMMUNICATIONS else ()

    @property
    def label(self) -> str:
        """For messages: ``crm.contact`` or ``crm.item (entityTypeId 3)``."""
        return f"{self.prefix} (entityTypeId {self.entity_type_id})" if self.item else self.prefix


def sync_entities() -> list[str]:
    """The create methods a sync knows, for messages."""
    return [f"crm.{name}.add" for name in _LEGACY] + ["crm.item.add (with entityTypeId)"]


def crm_entity_of(create_method: str, params: Mapping[str, Any] | None = None) -> CrmEntity:
    """The entity whose create method is ``create_method``.

    Raises:
        ConfigurationError: not a create method of a CRM entity the project knows, or
            ``crm.item.add`` without a whole-number ``entityTypeId`` in ``params``.
    """
    prefix, _, operation = create_method.rpartition(".")
    if operation != "add" or prefix not in {f"crm.{n}" for n in _LEGACY} | {"crm.item"}:
        raise ConfigurationError(
            f"a sync writes one CRM entity through its create, update, list and delete methods; "
            f"{create_method!r} is not the create method of one (known: {', '.join(sync_entities())}). "
            "Use sync='send' to send other methods as they are.")
    if prefix != "crm.item":
        return CrmEntity(prefix)
    type_id = (params or {}).get("entityTypeId")
    if isinstance(type_id, str) and type_id.isdigit():
        type_id = int(type_id)
    if not isinstance(type_id, int) or isinstance(type_id, bool) or type_id <= 0:
        raise ConfigurationError(f"crm.item.add needs params={{'entityTypeId': N}}; got {type_id!r}")
    return CrmEntity(prefix, type_id)
