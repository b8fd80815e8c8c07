"""``crm.currency.{list,get,add,update,delete,fields}`` and ``crm.currency.base.{get,set}``.

Pages (bitrix24/b24restdocs, ``api-reference/crm/currency/``): ``crm-currency-list.md`` (every
currency, the language-dependent keys of the portal's language, ``"total": 0`` always, as the
page says), ``crm-currency-get.md`` (plus ``LANG`` with every localization),
``crm-currency-add.md`` (``CURRENCY``, ``AMOUNT_CNT``, ``AMOUNT`` required; answers the code;
a missing one is ``ERROR_CORE`` 'Undefined array key "AMOUNT"'), ``crm-currency-update.md``
(``ID`` and ``fields``; ``true``), ``crm-currency-delete.md`` (``id``; "Cannot delete base
currency."), ``crm-currency-fields.md``, ``crm-currency-base-get.md`` (the base code) and
``crm-currency-base-set.md`` (``true``). Every value is a string, as the pages show.

A new portal has USD (the base), EUR, RUB and GBP: the currencies the seeder uses
**[choice]**; its language is ``en`` **[choice]**. A code is three letters (the delete page's
"Currency identifier must consist of 3 characters"); an unknown code in get, update and
delete answers the get page's "Not found". Kept in memory only, like the other reference
data **[choice]**.
"""

from __future__ import annotations

from typing import Any

from ._methods_core import ApiError, Context, Result, method

__all__: list[str] = []

_LANGUAGE = "en"
#: The portal's languages: every currency has a localization in each (crm-currency-get.md's
#: ``LANG`` shows ``en`` and ``de``).
_LANGUAGES = ("en", "de")
_SINCE = 1690848000   # the DATE_UPDATE of a new portal's currencies
# code, amount, sort, full name, format string
_DEFAULTS = (("USD", 1.0, 100, "US Dollar", "$#"), ("EUR", 0.92, 200, "Euro", "&euro;#"),
             ("RUB", 90.0, 300, "Russian Ruble", "# &#8381;"), ("GBP", 0.79, 400, "Pound Sterling", "&pound;#"))
_LOCALIZED = ("FORMAT_STRING", "FULL_NAME", "DEC_POINT", "THOUSANDS_SEP", "DECIMALS")
# name, type, read-only, title: crm-currency-fields.md's answer
_FIELDS = (("CURRENCY", "string", False, "Currency"), ("AMOUNT_CNT", "int", False, "Face value"),
           ("AMOUNT", "double", False, "Exchange rate"), ("BASE", "char", True, "Base currency"),
           ("SORT", "int", False, "Sorting"), ("DATE_UPDATE", "datetime", True, "Date modified"),
           ("LID", "string", True, "Website"), ("FORMAT_STRING", "string", True, "Currency output format string"),
           ("FULL_NAME", "string", True, "Name"), ("DEC_POINT", "string", True, "Decimal point for output"),
           ("THOUSANDS_SEP", "string", True, "Custom thousands separator for output"),
           ("DECIMALS", "int", True, "Number of decimal places"),
           ("LANG", "currency_localization", False, "Language binding"))


def _localization(name: str, format_string: str) -> dict[str, Any]:
    return {"FORMAT_STRING": format_string, "FULL_NAME": name, "DEC_POINT": ".", "THOUSANDS_SEP": None,
            "DECIMALS": 2, "THOUSANDS_VARIANT": "C", "HIDE_ZERO": "Y"}


def _currencies(ctx: Context) -> dict[str, dict[str, Any]]:
    kept: dict[str, dict[str, Any]] = ctx.store.reference.currencies
    if not kept:
        for code, amount, sort, name, fmt in _DEFAULTS:
            kept[code] = {"CURRENCY": code, "AMOUNT_CNT": 1, "AMOUNT": amount, "SORT": sort,
                          "BASE": "Y" if code == "USD" else "N", "DATE_UPDATE": _SINCE,
                          "LANG": {lang: _localization(name, fmt) for lang in _LANGUAGES}}
    return kept


def _view(ctx: Context, c: dict[str, Any], *, langs: bool = False) -> dict[str, Any]:
    lang = c["LANG"].get(_LANGUAGE) or _localization(c["CURRENCY"], f"# {c['CURRENCY']}")
    out: dict[str, Any] = {"CURRENCY": c["CURRENCY"], "AMOUNT_CNT": str(c["AMOUNT_CNT"]),
                           "AMOUNT": f"{c['AMOUNT']:.4f}", "SORT": str(c["SORT"]), "BASE": c["BASE"],
                           "FULL_NAME": lang["FULL_NAME"], "LID": _LANGUAGE, "FORMAT_STRING": lang["FORMAT_STRING"],
                           "DEC_POINT": lang["DEC_POINT"], "THOUSANDS_SEP": lang["THOUSANDS_SEP"],
                           "DECIMALS": str(lang["DECIMALS"]), "DATE_UPDATE": ctx.fmt(c["DATE_UPDATE"])}
    if langs:
        out["LANG"] = {k: {**v, "DECIMALS": str(v["DECIMALS"])} for k, v in c["LANG"].items()}
    return out


def _code(value: Any) -> str:
    return str(value or "").strip().upper()


def _existing(ctx: Context, value: Any) -> dict[str, Any]:
    found = _currencies(ctx).get(_code(value))
    if found is None:
        raise ApiError(400, "", "Not found")
    return found


def _apply(c: dict[str, Any], fields: dict[str, Any], now: float) -> None:
    try:
        if "AMOUNT_CNT" in fields:
            c["AMOUNT_CNT"] = int(str(fields["AMOUNT_CNT"]))
        if "AMOUNT" in fields:
            c["AMOUNT"] = float(str(fields["AMOUNT"]))
        if "SORT" in fields:
            c["SORT"] = int(str(fields["SORT"]))
    except ValueError as exc:
        raise ApiError(400, "ERROR_CORE", str(exc)) from None
    langs = fields.get("LANG")
    if isinstance(langs, dict):
        for lang, values in langs.items():
            if isinstance(values, dict):
                base = c["LANG"].get(lang) or _localization(c["CURRENCY"], f"# {c['CURRENCY']}")
                c["LANG"][str(lang)] = {**base, **{k: v for k, v in values.items() if k in base}}
    c["DATE_UPDATE"] = int(now)


def _set_base(ctx: Context, code: str) -> None:
    for c in _currencies(ctx).values():
        c["BASE"] = "Y" if c["CURRENCY"] == code else "N"


@method("crm.currency.fields", "crm")
def currency_fields(ctx: Context, params: dict[str, Any]) -> Result:
    """The fields of a currency."""
    return Result({n: {"type": t, "isRequired": False, "isReadOnly": ro, "isImmutable": False,
                       "isMultiple": n == "LANG", "isDynamic": False, "title": title}
                   for n, t, ro, title in _FIELDS})


@method("crm.currency.list", "crm")
def currency_list(ctx: Context, params: dict[str, Any]) -> Result:
    """Every currency, by ``order`` (keys and directions in any case; default ``SORT``)."""
    rows = sorted(_currencies(ctx).values(), key=lambda c: (c["SORT"], c["CURRENCY"]))
    order = params.get("order") if isinstance(params.get("order"), dict) else {}
    for key, direction in reversed(list(order.items())):
        field = str(key).upper()
        if field in ("SORT", "CURRENCY", "AMOUNT", "AMOUNT_CNT", "BASE", "DATE_UPDATE"):
            rows.sort(key=lambda c, f=field: c[f], reverse=str(direction).upper() == "DESC")
    return Result([_view(ctx, c) for c in rows], total=0)


@method("crm.currency.get", "crm")
def currency_get(ctx: Context, params: dict[str, Any]) -> Result:
    """One currency with its localizations."""
    return Result(_view(ctx, _existing(ctx, params.get("id", params.get("ID"))), langs=True))


@method("crm.currency.add", "crm", writes=True)
def currency_add(ctx: Context, params: dict[str, Any]) -> Result:
    """Add a currency; answers its code."""
    fields = params.get("fields") if isinstance(params.get("fields"), dict) else {}
    fields = {str(k).upper(): v for k, v in fields.items()}
    for key in ("CURRENCY", "AMOUNT_CNT", "AMOUNT"):
        if fields.get(key) in (None, ""):
            raise ApiError(400, "ERROR_CORE", f'Undefined array key "{key}"')
    code = _code(fields["CURRENCY"])
    if len(code) != 3 or not code.isalpha():
        raise ApiError(400, "ERROR_CORE", "Currency identifier must consist of 3 characters")
    kept = _currencies(ctx)
    if code in kept:
        raise ApiError(400, "ERROR_CORE", f"Currency {code} already exists")
    currency = {"CURRENCY": code, "AMOUNT_CNT": 1, "AMOUNT": 1.0, "SORT": 100, "BASE": "N",
                "DATE_UPDATE": int(ctx.now),   # crm-currency-add.md: default localizations for the rest
                "LANG": {lang: _localization(code, f"# {code}") for lang in _LANGUAGES}}
    _apply(currency, fields, ctx.now)
    kept[code] = currency
    if str(fields.get("BASE", "N")).upper() == "Y":
        _set_base(ctx, code)
    return Result(code, wrote=True)


@method("crm.currency.update", "crm", writes=True)
def currency_update(ctx: Context, params: dict[str, Any]) -> Result:
    """Change a currency's rate, denomination, sort or localizations; ``true``."""
    currency = _existing(ctx, params.get("ID", params.get("id")))
    fields = params.get("fields") if isinstance(params.get("fields"), dict) else {}
    fields = {str(k).upper(): v for k, v in fields.items()}
    _apply(currency, fields, ctx.now)
    if str(fields.get("BASE", "")).upper() == "Y":
        _set_base(ctx, currency["CURRENCY"])
    return Result(True, wrote=True)


@method("crm.currency.delete", "crm", writes=True)
def currency_delete(ctx: Context, params: dict[str, Any]) -> Result:
    """Delete a currency other than the base one; ``true``."""
    code = _code(params.get("id", params.get("ID")))
    if len(code) != 3:
        raise ApiError(400, "", "")   # the page: an empty code and an empty text
    currency = _existing(ctx, code)
    if currency["BASE"] == "Y":
        raise ApiError(400, "", "Cannot delete base currency.")
    del _currencies(ctx)[code]
    return Result(True, wrote=True)


@method("crm.currency.base.get", "crm")
def currency_base_get(ctx: Context, params: dict[str, Any]) -> Result:
    """The base currency's code."""
    return Result(next(c["CURRENCY"] for c in _currencies(ctx).values() if c["BASE"] == "Y"))


@method("crm.currency.base.set", "crm", writes=True)
def currency_base_set(ctx: Context, params: dict[str, Any]) -> Result:
    """Make a currency the base one; ``true``."""
    currency = _existing(ctx, params.get("id", params.get("ID")))
    _set_base(ctx, currency["CURRENCY"])
    return Result(True, wrote=True)
