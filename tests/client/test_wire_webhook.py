"""Webhook URL parsing and the redaction of the code everywhere it could show."""

from __future__ import annotations

import logging

import pytest

from b24_dagster._redaction import RedactingFilter, redact_url, register_secret, scrub
from b24_dagster.client import WebhookUrl
from b24_dagster.errors import ConfigurationError

CODE = "w8x1q2z9k3m4n5p6"


@pytest.mark.parametrize("url", [
    f"https://portal.bitrix24.com/rest/7/{CODE}/",
    f"https://portal.bitrix24.com/rest/7/{CODE}",
    f"https://portal.bitrix24.com/rest/api/7/{CODE}/",
    f"https://Portal.Bitrix24.com/rest/api/7/{CODE}",
    f"https://portal.bitrix24.com/rest/7/{CODE}/profile.json",
    f"https://portal.bitrix24.com/rest/7/{CODE}/crm.deal.list",
    f"  https://portal.bitrix24.com/rest/7/{CODE}/  ",
])
def test_both_forms_give_the_same_bases(url: str) -> None:
    hook = WebhookUrl.parse(url)
    assert hook.origin == "https://portal.bitrix24.com"
    assert hook.user_id == 7
    assert hook.code == CODE
    assert hook.v2_base == f"https://portal.bitrix24.com/rest/7/{CODE}/"
    assert hook.v3_base == f"https://portal.bitrix24.com/rest/api/7/{CODE}/"
    assert CODE not in repr(hook) and CODE not in str(hook)


@pytest.mark.parametrize("url", [
    f"http://127.0.0.1:8080/rest/1/{CODE}/",
    f"http://127.9.9.9/rest/1/{CODE}/",
    f"http://localhost:1/rest/1/{CODE}/",
    f"http://[::1]:8080/rest/1/{CODE}/",
])
def test_plain_http_is_allowed_on_loopback(url: str) -> None:
    hook = WebhookUrl.parse(url)
    assert hook.is_loopback
    assert hook.v2_base.startswith("http://")


def test_ipv6_origin_keeps_brackets() -> None:
    assert WebhookUrl.parse(f"http://[::1]:8080/rest/1/{CODE}/").origin == "http://[::1]:8080"


@pytest.mark.parametrize(("url", "problem"), [
    (f"http://portal.bitrix24.com/rest/1/{CODE}/", "https is required"),
    (f"http://10.0.0.5/rest/1/{CODE}/", "https is required"),
    (f"ftp://portal/rest/1/{CODE}/", "scheme"),
    (f"https:///rest/1/{CODE}/", "no host"),
    (f"https://portal/api/1/{CODE}/", "path must be"),
    (f"https://portal/rest/{CODE}/", "path must be"),
    (f"https://portal/rest/x/{CODE}/", "user id"),
    (f"https://portal/rest/1/{CODE}/a/b/c", "unexpected path"),
    (f"https://portal/rest/1/{CODE}/?x=1", "query string"),
    (f"https://user:{CODE}@portal/rest/1/{CODE}/", "user info"),
    (f"https://portal:99999/rest/1/{CODE}/", "cannot be parsed"),
    (f"https://portal/rest/1/{CODE}$/", "webhook code"),
])
def test_malformed_urls_name_the_problem_and_hide_the_code(url: str, problem: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        WebhookUrl.parse(url)
    message = str(info.value)
    assert problem in message
    assert CODE not in message and CODE not in repr(info.value)
    assert isinstance(info.value, ValueError)


def test_non_string_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        WebhookUrl.parse(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(("url", "expected"), [
    ("https://p.bitrix24.com/rest/1/abcdef123/crm.deal.list",
     "https://p.bitrix24.com/rest/1/***/crm.deal.list"),
    ("https://p.bitrix24.com/rest/api/12/abcdef123/", "https://p.bitrix24.com/rest/api/12/***/"),
    ('"POST /rest/1/abcdef123/batch HTTP/1.1" 200 1234', '"POST /rest/1/***/batch HTTP/1.1" 200 1234'),
    ("https://p/rest/crm.deal.list?auth=tok123&x=1", "https://p/rest/crm.deal.list?auth=***&x=1"),
    ("https://p/x?access_token=tok123", "https://p/x?access_token=***"),
    ("https://me:pw123@p/rest/", "https://me:***@p/rest/"),
    ("no url here", "no url here"),
])
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_registered_secrets_are_scrubbed_from_any_text() -> None:
    register_secret("zz-secret-zz-1")
    assert scrub("boom zz-secret-zz-1 boom") == "boom *** boom"
    register_secret("ab")  # too short to mask safely: ignored
    assert scrub("abc") == "abc"


def test_filter_rewrites_urllib3_style_records() -> None:
    register_secret("yy-secret-yy-2")
    record = logging.LogRecord("urllib3.connectionpool", logging.DEBUG, __file__, 1,
                               '%s://%s:%s "%s %s %s" %s %s',
                               ("http", "127.0.0.1", 80, "POST", "/rest/1/yy-secret-yy-2/batch",
                                "HTTP/1.1", 200, 10), None)
    assert RedactingFilter().filter(record)
    assert "yy-secret-yy-2" not in record.getMessage()
    assert "/rest/1/***/batch" in record.getMessage()
