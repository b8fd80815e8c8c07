"""The deterministic seeder: the same (entity, first id, n, seed) always gives the same rows.

Rows are built from a cheap integer hash of (id, seed) and pools of shared values, so a
million deals take a few seconds and share most of their objects (stages, prices, dates).
"""

from __future__ import annotations

from typing import Any

__all__ = ["BASE_TIME", "seed_rows"]

#: 2024-01-01T00:00:00Z: seeded records are created from here on, 61 s apart.
BASE_TIME = 1704067200

_DEAL_STAGES = ("NEW", "NEW", "PREPARATION", "PREPAYMENT_INVOICE", "EXECUTING", "FINAL_INVOICE",
                "WON", "WON", "LOSE", "APOLOGY")
_LEAD_STAGES = ("NEW", "NEW", "IN_PROCESS", "IN_PROCESS", "PROCESSED", "JUNK", "CONVERTED")
_TYPES = ("SALE", "COMPLEX", "GOODS", "SERVICES", "SERVICE")
_CURRENCIES = ("USD", "USD", "EUR", "RUB", "GBP")
_SOURCES = ("CALL", "EMAIL", "WEB", "ADVERTISING", "PARTNER", "RECOMMENDATION", "TRADE_SHOW",
            "WEBFORM", "CALLBACK", "OTHER")
_FIRST = ("Anna", "Boris", "Clara", "Dmitri", "Elena", "Farid", "Greta", "Hiro", "Ines", "Jonas",
          "Katya", "Lars", "Mila", "Nikolai", "Olga", "Pavel")
_LAST = ("Ivanov", "Schmidt", "Weber", "Rossi", "Garcia", "Kowalski", "Novak", "Smith", "Khan",
         "Tanaka", "Petrov", "Dubois", "Jensen")
_COMPANY_TYPES = ("CUSTOMER", "SUPPLIER", "COMPETITOR", "PARTNER", "OTHER")
_INDUSTRIES = ("IT", "TELECOM", "MANUFACTURING", "BANKING", "CONSULTING", "FINANCE", "OTHER")
_TAGS = ("urgent", "client", "internal", "q3", "review")
_PRICES = tuple(float(round(100 + (k * 7919) % 100000 + (k % 100) / 100, 2)) for k in range(10007))
_DAY = 86400
_DATES = tuple(BASE_TIME + d * _DAY for d in range(800))
_UPDATE_OFFSETS = tuple((k * 3571) % (_DAY * 30) for k in range(1009))


def _hash(i: int, seed: int) -> int:
    h = ((i ^ ((seed * 0x9E3779B1) & 0xFFFFFFFF)) * 2654435761) & 0xFFFFFFFF
    h ^= h >> 15
    return (h * 0x2C1B3C6D) & 0xFFFFFFFF


def seed_rows(entity: str, first_id: int, n: int, seed: int, fm_base: int) -> tuple[list[Any], int]:
    """Rows for ids ``first_id .. first_id+n-1``, and how many multi-field ids they used."""
    rows: list[Any] = []
    append = rows.append
    fm_id = fm_base
    if entity == "deal":
        mix = (seed * 0x9E3779B1) & 0xFFFFFFFF
        types, stages, currencies, prices = _TYPES, _DEAL_STAGES, _CURRENCIES, _PRICES
        dates, offsets, sources = _DATES, _UPDATE_OFFSETS, _SOURCES
        for i in range(first_id, first_id + n):
            h = ((i ^ mix) * 2654435761) & 0xFFFFFFFF
            h = ((h ^ (h >> 15)) * 0x2C1B3C6D) & 0xFFFFFFFF
            created = BASE_TIME + i * 61
            day = (i * 61) // _DAY % 800
            append((
                i, f"Deal #{i}", types[h % 5], stages[(h >> 3) % 10], currencies[(h >> 7) % 5],
                prices[(h >> 9) % 10007], (h >> 11) % 50, (h >> 13) % 200, (h >> 17) % 10 + 1, 1,
                (h >> 19) % 10 + 1, created, created + offsets[(h >> 5) % 1009], dates[day],
                dates[min(799, day + (h >> 21) % 60)], sources[(h >> 23) % 10], None,
            ))
    elif entity == "lead":
        for i in range(first_id, first_id + n):
            h = _hash(i, seed)
            created = BASE_TIME + i * 61
            first, last = _FIRST[h % 16], _LAST[(h >> 4) % 13]
            fm = [(fm_id, "PHONE", "WORK", f"+1555{i:07d}"),
                  (fm_id + 1, "EMAIL", "WORK", f"{first.lower()}.{i}@example.com")]
            fm_id += 2
            append((
                i, f"Lead #{i}", first, last, _LEAD_STAGES[(h >> 8) % 7], _CURRENCIES[(h >> 11) % 5],
                _PRICES[(h >> 9) % 10007], (h >> 17) % 10 + 1, 1, (h >> 19) % 10 + 1,
                created, created + _UPDATE_OFFSETS[(h >> 5) % 1009], _SOURCES[(h >> 23) % 10], fm,
                None,
            ))
    elif entity == "contact":
        for i in range(first_id, first_id + n):
            h = _hash(i, seed)
            created = BASE_TIME + i * 61
            first, last = _FIRST[h % 16], _LAST[(h >> 4) % 13]
            fm = [(fm_id, "PHONE", "MOBILE", f"+4930{i:07d}"),
                  (fm_id + 1, "EMAIL", "WORK", f"{first.lower()}.{last.lower()}{i}@example.com")]
            fm_id += 2
            append((
                i, first, last, (h >> 11) % 50, (h >> 17) % 10 + 1, 1, (h >> 19) % 10 + 1,
                created, created + _UPDATE_OFFSETS[(h >> 5) % 1009], fm, None,
            ))
    elif entity == "company":
        for i in range(first_id, first_id + n):
            h = _hash(i, seed)
            created = BASE_TIME + i * 61
            fm = [(fm_id, "PHONE", "WORK", f"+4420{i:07d}")]
            fm_id += 1
            append((
                i, f"{_LAST[h % 13]} & {_LAST[(h >> 4) % 13]} Ltd #{i}", _COMPANY_TYPES[(h >> 8) % 5],
                _INDUSTRIES[(h >> 11) % 7], (h >> 17) % 10 + 1, 1, (h >> 19) % 10 + 1,
                created, created + _UPDATE_OFFSETS[(h >> 5) % 1009], fm, None,
            ))
    elif entity == "task":
        for i in range(first_id, first_id + n):
            h = _hash(i, seed)
            created = BASE_TIME + i * 61
            append({
                "id": i, "title": f"Task #{i}", "description": "", "responsibleId": (h >> 17) % 10 + 1,
                "createdBy": 1, "createdDate": created, "changedBy": 1,
                "changedDate": created + _UPDATE_OFFSETS[(h >> 5) % 1009],
                "status": (2, 2, 3, 5, 6)[(h >> 3) % 5], "priority": (h >> 7) % 3,
                "deadline": None if h % 3 == 0 else created + 7 * _DAY, "groupId": 0,
                "closedDate": None, "auditors": [(h >> 9) % 10 + 1], "accomplices": [],
                "tags": [_TAGS[(h >> 13) % 5]],
                "guid": f"{{{h:08x}-{i % 65536:04x}-4{h % 4096:03x}-8{i % 4096:03x}-{i:012x}}}",
            })
    else:
        raise ValueError(f"unknown entity {entity!r}")
    return rows, fm_id - fm_base
