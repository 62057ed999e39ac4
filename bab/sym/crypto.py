"""AES-128 primitives of the SYM pairing protocol (LMN-STACK.md section 5): AES-CMAC and AES-CBC with IV = 0.

Thin wrappers around the ``cryptography`` package (no hand-written block cipher). Padding is NOT done here:
it is part of the message format and belongs to the profile (:mod:`bab.sym.profile2015`).
"""

from __future__ import annotations

import hmac

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

KEY_LENGTH = 16
BLOCK = 16
_ZERO_IV = bytes(BLOCK)


def _check_key(key: bytes) -> None:
    if len(key) != KEY_LENGTH:
        # Only the length goes into the message, never the key itself.
        raise ValueError(f"AES-128 key must be {KEY_LENGTH} bytes, got {len(key)}")


def aes_cmac(key: bytes, data: bytes) -> bytes:
    """AES-128-CMAC (RFC 4493, NIST SP 800-38B) of ``data``: 16 bytes."""
    _check_key(key)
    c = CMAC(algorithms.AES(key))
    c.update(data)
    return c.finalize()


def cbc_encrypt(key: bytes, plaintext: bytes) -> bytes:
    """AES-128-CBC with an all-zero IV; ``plaintext`` must already be a multiple of 16 bytes."""
    _check_key(key)
    if len(plaintext) % BLOCK:
        raise ValueError("CBC plaintext is not a multiple of the block size")
    enc = Cipher(algorithms.AES(key), modes.CBC(_ZERO_IV)).encryptor()
    return enc.update(plaintext) + enc.finalize()


def cbc_decrypt(key: bytes, ciphertext: bytes) -> bytes:
    """Inverse of :func:`cbc_encrypt`; padding is left in place."""
    _check_key(key)
    if len(ciphertext) % BLOCK:
        raise ValueError("CBC ciphertext is not a multiple of the block size")
    dec = Cipher(algorithms.AES(key), modes.CBC(_ZERO_IV)).decryptor()
    return dec.update(ciphertext) + dec.finalize()


def mac_equal(a: bytes, b: bytes) -> bool:
    """Constant-time comparison of two MACs."""
    return hmac.compare_digest(a, b)
