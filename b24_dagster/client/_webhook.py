"""Parse and validate a Bitrix24 inbound-webhook URL.

Accepted forms (the trailing slash is optional)::

    https://portal.bitrix24.com/rest/1/abc123code/        REST v2 form
    https://portal.bitrix24.com/rest/api/1/abc123code/    REST v3 form

Both give the same :class:`WebhookUrl`, with a base URL for each API version. A method name
left on the end (``.../rest/1/code/profile.json``, as the portal's own example shows) is
stripped; anything else after the code is an error. Plain ``http`` is refused except for
loopback hosts (``localhost``, 127.0.0.0/8, ``::1``). Every error is a
:class:`~b24_dagster.errors.ConfigurationError` whose message shows only the redacted URL.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from b24_dagster._redaction import redact_url
from b24_dagster.errors import ConfigurationError

__all__ = ["WebhookUrl", "is_loopback_host"]

_PATH = re.compile(r"^/rest/(?P<api>api/)?(?P<uid>[^/]+)/(?P<code>[^/]+)(?:/(?P<rest>.*))?$")
_UID = re.compile(r"^[0-9]+$")
_CODE = re.compile(r"^[A-Za-z0-9_-]+$")
_METHOD_TAIL = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*/?$")


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses (127.0.0.0/8, ``::1``)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _shown(raw: str) -> str:
    """The URL for an error message: only ``rest``, ``api`` and numbers of the path are kept.

    The URL may be malformed, so the code cannot be located by position: every other path
    segment, the query and the fragment are masked.
    """
    head, sep, path = raw.partition("://")
    if not sep:
        return "***"
    netloc, slash, path = path.partition("/")
    segments = [seg if seg in ("rest", "api", "") or seg.isdigit() else "***"
                for seg in path.split("/")]
    for mark in ("?", "#"):
        if mark in segments[-1]:
            segments[-1] = "***"
    return redact_url(f"{head}://{netloc}{slash}{'/'.join(segments)}")


@dataclass(frozen=True, slots=True)
class WebhookUrl:
    """A validated inbound-webhook URL.

    Attributes:
        origin: ``scheme://host[:port]`` of the portal.
        user_id: The user the webhook belongs to (the ``1`` of ``/rest/1/<code>/``).
        code: The secret code; hidden from ``repr``.
    """

    origin: str
    user_id: int
    code: str = field(repr=False)

    @classmethod
    def parse(cls, url: str | WebhookUrl) -> WebhookUrl:
        """Parse and validate a webhook URL in its v2 or v3 form.

        Args:
            url: The URL as copied from the portal, or an already parsed :class:`WebhookUrl`.

        Returns:
            The parsed URL.

        Raises:
            ConfigurationError: When the URL is malformed, has no webhook path, or uses plain
                http for a host that is not a loopback address.
        """
        if isinstance(url, WebhookUrl):
            return url
        if not isinstance(url, str):
            raise ConfigurationError(
                f"webhook URL must be a string, got {type(url).__name__}")
        raw = url.strip()
        shown = _shown(raw)

        def fail(problem: str) -> ConfigurationError:
            return ConfigurationError(f"invalid webhook URL {shown!r}: {problem}")

        try:
            parts = urlsplit(raw)
            port = parts.port
        except ValueError as exc:
            raise fail(f"cannot be parsed ({exc})") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise fail("the scheme must be https")
        host = (parts.hostname or "").lower()
        if not host:
            raise fail("no host")
        if parts.username is not None or parts.password is not None:
            raise fail("user info (user:password@) is not allowed")
        if parts.query or parts.fragment:
            raise fail("a query string or fragment is not allowed")
        if scheme == "http" and not is_loopback_host(host):
            raise fail("https is required (plain http is allowed for loopback hosts only)")
        match = _PATH.match(parts.path)
        if match is None:
            raise fail("the path must be /rest/<user id>/<code>/ or /rest/api/<user id>/<code>/")
        uid, code, rest = match["uid"], match["code"], match["rest"] or ""
        if not _UID.match(uid):
            raise fail("the user id after /rest/ must be a number")
        if not _CODE.match(code):
            raise fail("the webhook code may hold only letters, digits, '_' and '-'")
        if rest and not _METHOD_TAIL.match(rest):
            raise fail("unexpected path after the webhook code")
        netloc_host = f"[{host}]" if ":" in host else host
        origin = f"{scheme}://{netloc_host}" + (f":{port}" if port is not None else "")
        return cls(origin=origin, user_id=int(uid), code=code)

    @property
    def v2_base(self) -> str:
        """The REST v2 base URL, ending with a slash: ``{origin}/rest/{uid}/{code}/``."""
        return f"{self.origin}/rest/{self.user_id}/{self.code}/"

    @property
    def v3_base(self) -> str:
        """The REST v3 base URL, ending with a slash: ``{origin}/rest/api/{uid}/{code}/``."""
        return f"{self.origin}/rest/api/{self.user_id}/{self.code}/"

    def base(self, api_version: int) -> str:
        """The base URL of ``api_version`` (2 or 3)."""
        if api_version == 2:
            return self.v2_base
        if api_version == 3:
            return self.v3_base
        raise ConfigurationError(f"api_version must be 2 or 3, got {api_version!r}")

    @property
    def redacted(self) -> str:
        """The v2 URL with the code masked, safe to show."""
        return f"{self.origin}/rest/{self.user_id}/***/"

    @property
    def is_loopback(self) -> bool:
        """True when the portal is on this machine."""
        host = urlsplit(self.origin).hostname or ""
        return is_loopback_host(host)

    def __str__(self) -> str:
        return self.redacted
