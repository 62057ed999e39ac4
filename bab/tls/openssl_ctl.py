"""The few OpenSSL calls Python's :mod:`ssl` does not expose, made with :mod:`ctypes` on the ``SSL_CTX`` /
``SSL`` pointers behind an :class:`ssl.SSLContext` / :class:`ssl.SSLObject`.

Used by the gateway-side TLS client (:mod:`bab.tls.gateway_client`) for the LMN policy:

* ``SSL_CTX_set1_groups_list`` (``SSL_CTX_ctrl`` 92): offer exactly the TR-03116-3 groups. Python 3.11 has
  only ``set_ecdh_curve`` (one group);
* ``SSL_CTX_set_tlsext_max_fragment_length``: request max_fragment_length 2^9 (512);
* ``SSL_CTX_set1_sigalgs_list`` / client sigalgs (``SSL_CTX_ctrl`` 98 / 102): ECDSA with SHA-256/384/512;
* ``SSL_CTX_use_certificate_ASN1`` / ``SSL_CTX_use_PrivateKey_ASN1``: load our certificate and key from
  memory (``load_cert_chain`` needs files);
* ``SSL_get_negotiated_group`` (``SSL_ctrl`` 134) and ``SSL_renegotiate`` (tests) on a connection.

The pointers are read from the CPython objects (``PySSLContext.ctx`` right after the object header,
``PySSLSocket.ssl`` after the owner pointer) and *validated* before use (``SSL_CTX_get_options`` must equal
``SSLContext.options``; ``SSL_get_SSL_CTX`` must give back the context pointer), so an interpreter with a
different layout raises :class:`OpenSslCtlUnavailable` instead of crashing. The library is the very
``libssl`` that the ``_ssl`` extension has loaded (found in ``/proc/self/maps``).
"""

from __future__ import annotations

import ctypes
import ssl
import sys
from functools import cache

SSL_CTRL_SET_GROUPS_LIST = 92
SSL_CTRL_SET_SIGALGS_LIST = 98
SSL_CTRL_SET_CLIENT_SIGALGS_LIST = 102
SSL_CTRL_GET_NEGOTIATED_GROUP = 134
EVP_PKEY_EC = 408
MFL_CODES = {512: 1, 1024: 2, 2048: 3, 4096: 4}


class OpenSslCtlUnavailable(RuntimeError):
    """The ctypes access to OpenSSL is not possible on this interpreter/library."""


@cache
def _libs() -> tuple[ctypes.CDLL, ctypes.CDLL]:
    import _ssl  # noqa: F401  (make sure libssl is loaded)

    libssl_path = libcrypto_path = None
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.rsplit(None, 1)[-1] if "/" in line else ""
                name = path.rsplit("/", 1)[-1]
                if name.startswith("libssl.so") and libssl_path is None:
                    libssl_path = path
                elif name.startswith("libcrypto.so") and libcrypto_path is None:
                    libcrypto_path = path
    except OSError:
        pass
    if libssl_path is None or libcrypto_path is None:
        raise OpenSslCtlUnavailable("cannot find the libssl/libcrypto loaded by Python's ssl module")
    libssl = ctypes.CDLL(libssl_path)
    libcrypto = ctypes.CDLL(libcrypto_path)
    libssl.SSL_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    libssl.SSL_CTX_ctrl.restype = ctypes.c_long
    libssl.SSL_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    libssl.SSL_ctrl.restype = ctypes.c_long
    libssl.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
    libssl.SSL_CTX_get_options.restype = ctypes.c_uint64
    libssl.SSL_CTX_set_tlsext_max_fragment_length.argtypes = [ctypes.c_void_p, ctypes.c_uint8]
    libssl.SSL_CTX_set_tlsext_max_fragment_length.restype = ctypes.c_int
    libssl.SSL_CTX_use_certificate_ASN1.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p]
    libssl.SSL_CTX_use_certificate_ASN1.restype = ctypes.c_int
    libssl.SSL_CTX_use_PrivateKey_ASN1.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_long]
    libssl.SSL_CTX_use_PrivateKey_ASN1.restype = ctypes.c_int
    libssl.SSL_CTX_check_private_key.argtypes = [ctypes.c_void_p]
    libssl.SSL_CTX_check_private_key.restype = ctypes.c_int
    libssl.SSL_get_SSL_CTX.argtypes = [ctypes.c_void_p]
    libssl.SSL_get_SSL_CTX.restype = ctypes.c_void_p
    libssl.SSL_renegotiate.argtypes = [ctypes.c_void_p]
    libssl.SSL_renegotiate.restype = ctypes.c_int
    libcrypto.OBJ_nid2sn.argtypes = [ctypes.c_int]
    libcrypto.OBJ_nid2sn.restype = ctypes.c_char_p
    libcrypto.ERR_clear_error.argtypes = []
    return libssl, libcrypto


_HEAD = 2 * ctypes.sizeof(ctypes.c_void_p)  # PyObject_HEAD: ob_refcnt, ob_type


def ctx_pointer(context: ssl.SSLContext) -> int:
    """The ``SSL_CTX *`` of an :class:`ssl.SSLContext` (validated)."""
    if sys.implementation.name != "cpython":
        raise OpenSslCtlUnavailable("needs CPython")
    libssl, _ = _libs()
    ptr = ctypes.c_void_p.from_address(id(context) + _HEAD).value
    if not ptr or libssl.SSL_CTX_get_options(ptr) != int(context.options):
        raise OpenSslCtlUnavailable("cannot locate SSL_CTX in ssl.SSLContext (unexpected object layout)")
    return int(ptr)


def ssl_pointer(obj: ssl.SSLObject) -> int:
    """The ``SSL *`` of an :class:`ssl.SSLObject` (validated against its context)."""
    libssl, _ = _libs()
    inner = obj._sslobj  # type: ignore[attr-defined]  # the _ssl._SSLSocket
    ptr = ctypes.c_void_p.from_address(id(inner) + _HEAD + ctypes.sizeof(ctypes.c_void_p)).value
    if not ptr or libssl.SSL_get_SSL_CTX(ptr) != ctx_pointer(obj.context):
        raise OpenSslCtlUnavailable("cannot locate SSL in ssl.SSLObject (unexpected object layout)")
    return int(ptr)


def _ok(ret: int, what: str) -> None:
    if ret != 1:
        _libs()[1].ERR_clear_error()
        raise ssl.SSLError(f"OpenSSL rejected {what}")


def set_groups(context: ssl.SSLContext, groups: str) -> None:
    """``SSL_CTX_set1_groups_list(ctx, "brainpoolP256r1:P-256:...")``."""
    libssl, _ = _libs()
    _ok(libssl.SSL_CTX_ctrl(ctx_pointer(context), SSL_CTRL_SET_GROUPS_LIST, 0, groups.encode()), "groups")


def set_sigalgs(context: ssl.SSLContext, sigalgs: str) -> None:
    """Signature algorithms for both our signatures and the peer's (``SSL_CTX_set1_sigalgs_list`` etc.)."""
    libssl, _ = _libs()
    ptr = ctx_pointer(context)
    _ok(libssl.SSL_CTX_ctrl(ptr, SSL_CTRL_SET_SIGALGS_LIST, 0, sigalgs.encode()), "sigalgs")
    _ok(libssl.SSL_CTX_ctrl(ptr, SSL_CTRL_SET_CLIENT_SIGALGS_LIST, 0, sigalgs.encode()), "client sigalgs")


def set_max_fragment_length(context: ssl.SSLContext, length: int) -> None:
    """Request the max_fragment_length extension (client side): 512, 1024, 2048 or 4096."""
    libssl, _ = _libs()
    _ok(libssl.SSL_CTX_set_tlsext_max_fragment_length(ctx_pointer(context), MFL_CODES[length]), "MFL")


def use_certificate_and_key(context: ssl.SSLContext, cert_der: bytes, key_der: bytes) -> None:
    """Our certificate and EC private key (DER) from memory."""
    libssl, _ = _libs()
    ptr = ctx_pointer(context)
    _ok(libssl.SSL_CTX_use_certificate_ASN1(ptr, len(cert_der), cert_der), "certificate")
    _ok(libssl.SSL_CTX_use_PrivateKey_ASN1(EVP_PKEY_EC, ptr, key_der, len(key_der)), "private key")
    _ok(libssl.SSL_CTX_check_private_key(ptr), "key/certificate pair")


def negotiated_group(obj: ssl.SSLObject) -> str | None:
    """OpenSSL's short name of the negotiated ECDHE group (``brainpoolP256r1``, ``prime256v1``...)."""
    libssl, libcrypto = _libs()
    nid = libssl.SSL_ctrl(ssl_pointer(obj), SSL_CTRL_GET_NEGOTIATED_GROUP, 0, None)
    if nid <= 0:
        return None
    name = libcrypto.OBJ_nid2sn(int(nid) & 0xFFFFFF)
    return name.decode() if name else None


def renegotiate(obj: ssl.SSLObject) -> None:
    """Schedule a renegotiation (tests: the meter must refuse it)."""
    libssl, _ = _libs()
    _ok(libssl.SSL_renegotiate(ssl_pointer(obj)), "renegotiate")
