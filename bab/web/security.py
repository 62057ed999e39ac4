"""Access control of the web console: where it may listen and which requests need the access token.

Rules (issue 15):

* The server listens on 127.0.0.1 unless told otherwise. Any other address needs a configured token
  (:func:`check_listen` refuses to start without one).
* With a configured token, every API request needs it: ``Authorization: Bearer TOKEN``, or ``?token=TOKEN``
  (the only way an ``EventSource`` can send it). The static page itself needs none; it asks for the token.
* Without one (loopback only), reads are open, and every request that changes state needs the *session token*:
  a random token made at start and handed out by ``GET /api/session``. A page of another web site cannot read
  that answer (same-origin policy, no CORS headers), so it cannot forge a request. Requests whose ``Host`` is
  not a loopback name are refused on a loopback listener (DNS rebinding), and a cross-origin ``Origin`` is
  refused on state-changing requests.

Tokens are compared in constant time. Nothing here logs a token.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from dataclasses import dataclass, field

DEFAULT_HOST = "127.0.0.1"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
MIN_TOKEN_LENGTH = 16


class ListenError(ValueError):
    """A listen address or token setting that cannot be used."""


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6, ``:8080`` for the default host) -> ``(host, port)``."""
    host, sep, port = str(text).rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ListenError(f"expected HOST:PORT such as 127.0.0.1:8080, got {text!r}")
    host = host.strip("[]") or DEFAULT_HOST
    return host, int(port)


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_token(token: str | None) -> str | None:
    if token is None:
        return None
    token = token.strip()
    if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in token):
        raise ListenError(f"the HTTP token must be at least {MIN_TOKEN_LENGTH} characters without spaces")
    return token


def check_listen(host: str, token: str | None) -> None:
    """Refuse a non-loopback address without a token."""
    if not is_loopback(host) and token is None:
        raise ListenError(f"listening on {host} (not loopback) needs an access token (--http-token-file or "
                          "http.token_file)")


def read_token_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ListenError(f"cannot read the HTTP token file {path}: {exc.strerror}") from None
    token = check_token(text)
    assert token is not None
    return token


@dataclass
class AccessPolicy:
    """Decides per request; see the module docstring."""

    host: str = DEFAULT_HOST
    token: str | None = None  # configured token: every API request needs it
    session_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    def __post_init__(self) -> None:
        self.token = check_token(self.token)
        check_listen(self.host, self.token)

    @property
    def token_configured(self) -> bool:
        return self.token is not None

    def _matches(self, presented: str | None, expected: str) -> bool:
        return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())

    def refusal(self, method: str, path: str, host_header: str | None, origin: str | None,
                presented: str | None) -> tuple[int, str] | None:
        """None when the request may go on, else ``(HTTP status, reason)``."""
        if not path.startswith("/api/"):
            return None  # the static page and its files carry no data
        if is_loopback(self.host) and host_header is not None and not is_loopback(_host_only(host_header)):
            return 403, f"Host {host_header!r} is not a loopback name (this server listens on loopback only)"
        changes = method.upper() not in SAFE_METHODS
        if changes and origin is not None and host_header is not None and _origin_host(origin) != host_header:
            return 403, f"cross-origin request from {origin} refused"
        if self.token is not None:
            if not self._matches(presented, self.token):
                return 401, "this request needs the access token (Authorization: Bearer TOKEN)"
            return None
        if changes and not self._matches(presented, self.session_token):
            return 401, "a request that changes state needs the session token from GET /api/session " \
                        "(Authorization: Bearer TOKEN)"
        return None


def _host_only(host_header: str) -> str:
    h = host_header.strip()
    if h.startswith("["):
        return h[1:h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def _origin_host(origin: str) -> str:
    return origin.split("://", 1)[-1].rstrip("/")


def presented_token(authorization: str | None, query_token: str | None) -> str | None:
    """The token a request carries: a Bearer header, else the ``token`` query parameter."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return query_token or None
