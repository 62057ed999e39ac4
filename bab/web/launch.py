"""Switching the web console on from the command line and the configuration (``--http HOST:PORT``, ``http:``).

The commands import this module only when HTTP is asked for; it imports aiohttp (through :mod:`bab.web.server`)
and reports clearly when aiohttp is not installed (``pip install bab[http]``).
"""

from __future__ import annotations

from .security import ListenError, check_listen, parse_listen, read_token_file


def http_settings(listen: str, token_file: str | None = None, token: str | None = None) -> tuple[str, int, str | None]:
    """``(host, port, token)`` from a listen address and a token (file); raises ListenError."""
    host, port = parse_listen(listen)
    if token_file:
        token = read_token_file(token_file)
    check_listen(host, token)
    return host, port, token


def require_aiohttp() -> None:
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        raise ListenError("the web console needs aiohttp: pip install 'bab[http]' (or python3-aiohttp)") from None


__all__ = ["ListenError", "http_settings", "require_aiohttp"]
