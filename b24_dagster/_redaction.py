"""The one place that formats webhook URLs: the secret code becomes ``***``.

A Bitrix24 webhook URL carries its secret in the path (``/rest/1/<code>/``), so any log line,
exception message or metadata value that shows a request URL would leak it. Three tools:

* :func:`redact_url` masks the code segment of ``/rest/{uid}/{code}/`` and
  ``/rest/api/{uid}/{code}/``, ``auth=``/``access_token=``/``refresh_token=`` query values,
  and a password in the URL's user info.
* :func:`register_secret` and :func:`scrub` replace every registered secret (the client
  registers its webhook code) in any text.
* :class:`RedactingFilter`, a :class:`logging.Filter` that the client installs (through
  :func:`install_log_redaction`) on urllib3's loggers and on this package's loggers, so that
  even with the root logger at DEBUG (urllib3 logs ``"POST /rest/1/CODE/batch HTTP/1.1" 200``)
  no code reaches a log line.
"""

from __future__ import annotations

import logging
import re
import threading

__all__ = [
    "LOGGERS",
    "RedactingFilter",
    "install_log_redaction",
    "redact_url",
    "register_secret",
    "scrub",
]

MASK = "***"

_REST_PATH = re.compile(r"(/rest/(?:api/)?[^/?#\s\"']+/)([^/?#\s\"']+)")
_SECRET_PARAMS = re.compile(
    r"((?:^|[?&;\s])(?:auth|access_token|refresh_token|client_secret)=)([^&#\s\"']+)",
    re.IGNORECASE,
)
_USERINFO = re.compile(r"(://[^/@:\s]*:)([^/@\s]+)(@)")

#: Loggers that may see request URLs: urllib3's (request lines, retries) and our own.
LOGGERS: tuple[str, ...] = (
    "urllib3.connectionpool",
    "urllib3.connection",
    "urllib3.util.retry",
    "urllib3.response",
    "urllib3.poolmanager",
    "requests",
    "b24_dagster",
    "b24_dagster.client",
)

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_secrets_tuple: tuple[str, ...] = ()


def register_secret(secret: str) -> None:
    """Remember a secret so that :func:`scrub` and the log filter mask it everywhere.

    Args:
        secret: The text to hide (a webhook code). Strings shorter than 4 characters are
            ignored, since masking them would mangle ordinary text.
    """
    global _secrets_tuple
    if not secret or len(secret) < 4:
        return
    with _secrets_lock:
        if secret not in _secrets:
            _secrets.add(secret)
            # longest first, so that a secret containing another is masked whole
            _secrets_tuple = tuple(sorted(_secrets, key=len, reverse=True))


def redact_url(url: str) -> str:
    """Mask the secret parts of a URL (or of any text that contains URLs or request paths).

    Args:
        url: A URL, a request path, or a log line.

    Returns:
        The same text with the webhook code, token query values and user-info password
        replaced by ``***``.

    Example:
        >>> redact_url("https://example.bitrix24.com/rest/1/abc123xyz/crm.deal.list")
        'https://example.bitrix24.com/rest/1/***/crm.deal.list'
    """
    text = _REST_PATH.sub(rf"\1{MASK}", url)
    if "=" in text:
        text = _SECRET_PARAMS.sub(rf"\1{MASK}", text)
    if "@" in text:
        text = _USERINFO.sub(rf"\1{MASK}\3", text)
    return scrub(text)


def scrub(text: str) -> str:
    """Replace every registered secret in ``text`` with ``***``."""
    for secret in _secrets_tuple:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def _clean(text: str) -> str:
    if "/rest/" in text or "=" in text or "@" in text:
        return redact_url(text)
    return scrub(text)


class RedactingFilter(logging.Filter):
    """A logging filter that masks webhook codes and tokens in the records it sees.

    It never drops a record: it rewrites the message (and a formatted traceback) in place.
    Formatting happens only for records that pass the logger's level, so it costs nothing
    when DEBUG logging is off.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler's error path
            return True
        cleaned = _clean(message)
        if cleaned != message or record.args:
            record.msg = cleaned
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = _clean(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = _clean(record.exc_text)
        return True


_FILTER = RedactingFilter()


def install_log_redaction(extra: tuple[str, ...] = ()) -> None:
    """Install the redacting filter on :data:`LOGGERS` (and ``extra``); idempotent.

    A filter attached to a logger only sees records created by that very logger, so each
    logger that may print a URL gets its own reference to the one filter.
    """
    for name in LOGGERS + extra:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
