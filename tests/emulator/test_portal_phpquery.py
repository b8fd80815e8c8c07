"""PHP ``parse_str`` decoding of query strings and form bodies (no HTTP)."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from b24_dagster.emulator._phpquery import build_query, parse_query


def test_nested_brackets_lists_and_operators() -> None:
    q = ("fields[TITLE]=My%20company&fields[PHONE][0][VALUE]=112233&fields[PHONE][0][VALUE_TYPE]=WORK"
         "&select[]=ID&select[]=NAME&filter[%3E%3DDATE_MODIFY]=2024-01-01&filter[%3EID]=5")
    assert parse_query(q) == {
        "fields": {"TITLE": "My company", "PHONE": [{"VALUE": "112233", "VALUE_TYPE": "WORK"}]},
        "select": ["ID", "NAME"],
        "filter": {">=DATE_MODIFY": "2024-01-01", ">ID": "5"},
    }


def test_plus_is_space_and_percent_decoding() -> None:
    assert parse_query("a=John+Smith&b=John%26Martin&c=%24result%5Bx%5D") == {
        "a": "John Smith", "b": "John&Martin", "c": "$result[x]"}


def test_duplicate_keys_last_wins_and_scalar_replaced_by_array() -> None:
    assert parse_query("a=1&a=2") == {"a": "2"}
    assert parse_query("a=1&a[x]=2") == {"a": {"x": "2"}}
    assert parse_query("a[x]=2&a=1") == {"a": "1"}


def test_numeric_keys_and_appends() -> None:
    # keys exactly 0..n-1 in order -> list, otherwise dict with string keys
    assert parse_query("a[0]=x&a[1]=y") == {"a": ["x", "y"]}
    assert parse_query("a[1]=x&a[0]=y") == {"a": {"1": "x", "0": "y"}}
    assert parse_query("a[5]=x&a[]=y") == {"a": {"5": "x", "6": "y"}}
    assert parse_query("a[01]=x") == {"a": {"01": "x"}}
    assert parse_query("0=123&1[POST_MESSAGE]=test") == {"0": "123", "1": {"POST_MESSAGE": "test"}}


def test_php_base_name_quirks() -> None:
    assert parse_query("a.b=1&c d=2") == {"a_b": "1", "c_d": "2"}
    assert parse_query("a[b=1") == {"a_b": "1"}
    assert parse_query("=x&[a]=1&&b") == {"b": ""}
    assert parse_query("a[b]c[d]=1") == {"a": {"b": "1"}}
    assert parse_query("empty[]=") == {"empty": [""]}


def test_flat_fast_path_matches_general_path() -> None:
    assert parse_query("entityTypeId=2&id=5") == {"entityTypeId": "2", "id": "5"}
    assert parse_query("a.b=1&x") == {"a_b": "1", "x": ""}


_ALPHABET = "abcXYZ_019-><=!%@&+ ./?$\u00e9\u0416"
_keys = st.text(alphabet=_ALPHABET, min_size=1, max_size=8).filter(
    lambda k: not k.isdigit() and not (k[0] == "-" and k[1:].isdigit()))
_leaf = st.text(alphabet=_ALPHABET + "[]#\n", max_size=12)
_tree = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=4),
        st.dictionaries(_keys, inner, min_size=1, max_size=4),
    ),
    max_leaves=12,
)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_keys.filter(lambda k: "." not in k and " " not in k), _tree, max_size=4))
def test_round_trip_with_http_build_query(params: dict[str, object]) -> None:
    assert parse_query(build_query(params)) == params


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True), _leaf, max_size=6))
def test_flat_agrees_with_urllib_encoding(params: dict[str, str]) -> None:
    assert parse_query(urlencode(params)) == params
    assert parse_query(urlencode(params, quote_via=quote)) == params


def test_non_ascii_digit_keys_stay_strings() -> None:
    # str.isdigit accepts "²" (int() rejects it) and "٣" (int() reads 3): neither is a PHP int key.
    parsed = parse_query("a[²]=1&a[٣]=2&a[-²]=3&a[]=4")
    assert parsed == {"a": {"²": "1", "٣": "2", "-²": "3", "0": "4"}}
