"""The work every client does, identical across clients: the commands and the export's shape."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["EXPORT_METHOD", "EXPORT_SELECT", "ENTITY_TYPE_ID", "IdChecker", "add_fields",
           "add_params"]

#: Deals, through the universal CRM methods.
ENTITY_TYPE_ID = 2
#: The list method of the export scenario (camelCase, typed values).
EXPORT_METHOD = "crm.item.list"
#: The columns exported: what a deals table in a warehouse would keep.
EXPORT_SELECT = ["id", "title", "stageId", "opportunity", "currencyId", "assignedById",
                 "createdTime", "updatedTime"]


def add_fields(tag: str, index: int) -> dict[str, Any]:
    """The fields of the ``index``-th new deal of run ``tag`` (its title is unique)."""
    return {
        "title": f"{tag}-{index}",
        "stageId": "NEW",
        "opportunity": 1000 + index % 997,
        "currencyId": "USD",
        "assignedById": 1 + index % 10,
    }


def add_params(tag: str, n: int) -> Iterator[dict[str, Any]]:
    """``crm.item.add`` parameters for ``n`` deals of run ``tag``."""
    for i in range(n):
        yield {"entityTypeId": ENTITY_TYPE_ID, "fields": add_fields(tag, i)}


class IdChecker:
    """Counts rows and repeated ids of an export in a bitmap (memory ~ max id / 8 bytes)."""

    __slots__ = ("_bits", "repeated", "rows")

    def __init__(self) -> None:
        self._bits = bytearray(1 << 17)
        self.rows = 0
        self.repeated = 0

    def add(self, ids: Iterable[Any]) -> None:
        """Record the ids of one page."""
        bits = self._bits
        for raw in ids:
            i = int(raw)
            byte, mask = i >> 3, 1 << (i & 7)
            if byte >= len(bits):
                bits.extend(bytes(max(byte + 1 - len(bits), len(bits))))
            if bits[byte] & mask:
                self.repeated += 1
            else:
                bits[byte] |= mask
            self.rows += 1

    @property
    def unique(self) -> int:
        """Distinct ids seen."""
        return self.rows - self.repeated
