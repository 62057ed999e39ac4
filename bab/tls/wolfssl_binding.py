"""Loads the cffi binding ``bab.tls._wolfssl_cffi`` (built by :mod:`bab.tls.build_wolfssl`) and provides the
pieces every wolfSSL connection object shares: library initialisation, the ``extern "Python"`` I/O and
certificate-verify callbacks, and error-string lookup.

The I/O callbacks make a wolfSSL connection sans-I/O: each connection owns a :class:`WolfIo` (its input and
output buffers plus a verify hook); wolfSSL's receive callback copies from ``WolfIo.incoming`` and answers
WANT_READ when it is empty, the send callback appends to ``WolfIo.outgoing``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from bab.tls.errors import TlsUnavailable

INSTALL_HINT = (
    "BAB's package build compiles the binding (pip install . or the Debian package bab); at run time it needs "
    "wolfSSL's library, the Debian package libwolfssl35. In a development checkout: "
    "apt-get install libwolfssl-dev gcc python3-dev libffi-dev; python -m bab.tls.build_wolfssl"
)

try:
    from bab.tls._wolfssl_cffi import ffi, lib  # type: ignore[import-not-found]
except ImportError as _exc:  # module not built, or libwolfssl.so.35 missing at run time
    ffi = None
    lib = None
    _IMPORT_ERROR: str | None = str(_exc)
else:
    _IMPORT_ERROR = None

_init_lock = threading.Lock()
_initialised = False

#: A verify hook: (preverify_ok, wolfSSL error code, depth, DER of the certificate at that depth) -> accept.
VerifyHook = Callable[[int, int, int, bytes], bool]


def require() -> tuple[Any, Any]:
    """``(ffi, lib)`` of the binding, initialising wolfSSL once; raises :class:`TlsUnavailable` if absent."""
    global _initialised
    if lib is None:
        raise TlsUnavailable(f"the wolfSSL binding is not available ({_IMPORT_ERROR}); {INSTALL_HINT}")
    if not _initialised:
        from bab.tls.build_wolfssl import BINDING_ID

        built = ffi.string(lib.bab_binding_id()).decode() if hasattr(lib, "bab_binding_id") else "unknown"
        if built != BINDING_ID:
            raise TlsUnavailable(
                f"the wolfSSL binding is out of date ({built}, expected {BINDING_ID}): "
                "run python -m bab.tls.build_wolfssl"
            )
        with _init_lock:
            if not _initialised:
                if lib.wolfSSL_Init() != lib.WOLFSSL_SUCCESS:
                    raise TlsUnavailable("wolfSSL_Init() failed")
                _initialised = True
    return ffi, lib


def available() -> bool:
    """True when the binding can be used."""
    try:
        require()
    except TlsUnavailable:
        return False
    return True


def library_version() -> str:
    _, lib_ = require()
    return str(ffi.string(lib_.wolfSSL_lib_version()).decode())


def as_unsigned_long(code: int, width: int | None = None) -> int:
    """``code`` (a negative wolfSSL error code) as the C ``unsigned long`` that ``wolfSSL_ERR_error_string_n``
    takes: two's complement in ``width`` bytes, by default the platform's ``sizeof(unsigned long)``
    (8 on x86-64/arm64, 4 on 32-bit ARM: a 64-bit value there raised OverflowError in cffi)."""
    if width is None:
        ffi_, _ = require()
        width = int(ffi_.sizeof("unsigned long"))
    return code % (1 << (8 * width))


def error_string(code: int) -> str:
    """wolfSSL's text for an error code (``-313`` -> ``revcd alert fatal error``...)."""
    ffi_, lib_ = require()
    buf = ffi_.new("char[]", 160)
    lib_.wolfSSL_ERR_error_string_n(as_unsigned_long(code, int(ffi_.sizeof("unsigned long"))), buf, 160)
    text = ffi_.string(buf).decode(errors="replace")
    # "error:-313:revcd alert fatal error" style -> keep the words
    return text.rsplit(":", 1)[-1].strip() or f"wolfSSL error {code}"


class WolfIo:
    """The in-memory transport and verify hook of one wolfSSL connection."""

    __slots__ = ("incoming", "outgoing", "eof", "verify_hook", "handle")

    def __init__(self) -> None:
        self.incoming = bytearray()
        self.outgoing = bytearray()
        self.eof = False
        self.verify_hook: VerifyHook | None = None
        self.handle: Any = None


if lib is not None:

    def _recv_error(exc_type: object, exc: object, tb: object) -> int:
        return -1  # WOLFSSL_CBIO_ERR_GENERAL

    @ffi.def_extern(onerror=_recv_error)
    def _bab_io_recv(ssl: Any, buf: Any, sz: int, ctx: Any) -> int:
        io: WolfIo = ffi.from_handle(ctx)
        incoming = io.incoming
        if not incoming:
            return lib.WOLFSSL_CBIO_ERR_CONN_CLOSE if io.eof else lib.WOLFSSL_CBIO_ERR_WANT_READ
        n = min(sz, len(incoming))
        ffi.memmove(buf, incoming, n)
        del incoming[:n]
        return n

    @ffi.def_extern(onerror=_recv_error)
    def _bab_io_send(ssl: Any, buf: Any, sz: int, ctx: Any) -> int:
        io: WolfIo = ffi.from_handle(ctx)
        io.outgoing += ffi.buffer(buf, sz)
        return sz

    def _verify_error(exc_type: object, exc: object, tb: object) -> int:
        return 0  # reject on any Python error in the hook

    @ffi.def_extern(onerror=_verify_error)
    def _bab_verify(preverify: int, store: Any) -> int:
        ssl = lib.wolfSSL_X509_STORE_CTX_get_ex_data(store, lib.wolfSSL_get_ex_data_X509_STORE_CTX_idx())
        if ssl == ffi.NULL:
            return 0
        ctx = lib.wolfSSL_GetIOReadCtx(ffi.cast("WOLFSSL *", ssl))
        if ctx == ffi.NULL:
            return 0
        io: WolfIo = ffi.from_handle(ctx)
        if io.verify_hook is None:
            return preverify
        der = b""
        x509 = lib.wolfSSL_X509_STORE_CTX_get_current_cert(store)
        if x509 != ffi.NULL:
            size = ffi.new("int *")
            p = lib.wolfSSL_X509_get_der(x509, size)
            if p != ffi.NULL:
                der = bytes(ffi.buffer(p, size[0]))
        error = lib.wolfSSL_X509_STORE_CTX_get_error(store)
        depth = lib.wolfSSL_X509_STORE_CTX_get_error_depth(store)
        return 1 if io.verify_hook(preverify, error, depth, der) else 0
