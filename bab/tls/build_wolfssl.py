"""Builds ``bab.tls._wolfssl_cffi``, BAB's cffi (API mode, out-of-line) binding to the system's libwolfssl.

It is built as part of BAB's package build: ``pip install .`` (and a wheel made from the checkout) compiles it
through setup.py's ``cffi_modules``, which calls :func:`package_ffi`; a missing wolfSSL library or headers
stops that build with a message naming the Debian package (``libwolfssl-dev``). In a development checkout
(``pip install -e .``) it can be rebuilt in place with ``python -m bab.tls.build_wolfssl``. It needs
``libwolfssl-dev`` (wolfSSL >= 5.5, Debian bookworm has 5.5.4), a C compiler and the Python headers
(``apt-get install libwolfssl-dev gcc python3-dev``). It is idempotent: when the extension module is already
built and newer than this file it does nothing; ``--force`` rebuilds. It exits non-zero with a clear message
when something is missing.

The binding is deliberately small: what :mod:`bab.tls.meter_server` needs for a sans-I/O TLS 1.2 server
(spec TLS-WOLFSSL.md, LMN-STACK.md section 4): context/connection setup, policy setters, custom I/O
callbacks (``extern "Python"``: the receive callback reads from an in-memory input buffer and answers
WANT_READ when it is empty, the send callback appends to an output buffer), a certificate verify callback
(certificate pinning and the validity-date policy are decided in Python), and the getters used to check the
negotiated parameters after the handshake. A wolfSSL TLS 1.2 client method is bound too, for the benchmark.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent  # also set when cffi's setuptools hook runs this file
MODULE = "bab.tls._wolfssl_cffi"

CDEF = r"""
typedef unsigned short word16;
typedef struct WOLFSSL_CTX WOLFSSL_CTX;
typedef struct WOLFSSL WOLFSSL;
typedef struct WOLFSSL_METHOD WOLFSSL_METHOD;
typedef struct WOLFSSL_X509 WOLFSSL_X509;
typedef struct WOLFSSL_X509_STORE_CTX WOLFSSL_X509_STORE_CTX;
typedef struct WOLFSSL_SESSION WOLFSSL_SESSION;
typedef struct WOLFSSL_EC_KEY WOLFSSL_EC_KEY;

typedef int (*CallbackIORecv)(WOLFSSL *ssl, char *buf, int sz, void *ctx);
typedef int (*CallbackIOSend)(WOLFSSL *ssl, char *buf, int sz, void *ctx);
typedef int (*VerifyCallback)(int, WOLFSSL_X509_STORE_CTX *);

#define WOLFSSL_SUCCESS ...
#define WOLFSSL_FAILURE ...
#define WOLFSSL_FILETYPE_PEM ...
#define WOLFSSL_FILETYPE_ASN1 ...
#define WOLFSSL_VERIFY_PEER ...
#define WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT ...
#define WOLFSSL_ERROR_WANT_READ ...
#define WOLFSSL_ERROR_WANT_WRITE ...
#define WOLFSSL_ERROR_ZERO_RETURN ...
#define WOLFSSL_ERROR_NONE ...
#define WOLFSSL_CBIO_ERR_WANT_READ ...
#define WOLFSSL_CBIO_ERR_CONN_CLOSE ...
#define WOLFSSL_SENT_SHUTDOWN ...
#define WOLFSSL_RECEIVED_SHUTDOWN ...

#define LIBWOLFSSL_VERSION_HEX ...
#define WOLFSSL_OP_NO_COMPRESSION ...
#define WOLFSSL_OP_NO_TICKET ...
#define WOLFSSL_MFL_2_9 ...

/* enum constants from ssl.h, error-ssl.h and wolfcrypt/error-crypt.h */
#define WOLFSSL_ECC_SECP256R1 ...
#define WOLFSSL_ECC_SECP384R1 ...
#define WOLFSSL_ECC_SECP521R1 ...
#define WOLFSSL_ECC_BRAINPOOLP256R1 ...
#define WOLFSSL_ECC_BRAINPOOLP384R1 ...
#define WOLFSSL_ECC_BRAINPOOLP512R1 ...
#define WOLFSSL_ECC_X25519 ...
#define WOLFSSL_ECC_X448 ...
#define VERSION_ERROR ...
#define MATCH_SUITE_ERROR ...
#define VERIFY_MAC_ERROR ...
#define DECRYPT_ERROR ...
#define NO_PEER_CERT ...
#define VERIFY_CERT_ERROR ...
#define FATAL_ERROR ...
#define BUFFER_ERROR ...
#define UNKNOWN_RECORD_TYPE ...
#define PARSE_ERROR ...
#define SANITY_MSG_E ...
#define DUPLICATE_MSG_E ...
#define SOCKET_ERROR_E ...
#define SOCKET_PEER_CLOSED_E ...
#define VERIFY_FINISHED_ERROR ...
#define VERIFY_SIGN_ERROR ...
#define ECC_PEERKEY_ERROR ...
#define ECC_SHARED_ERROR ...
#define ECC_CURVETYPE_ERROR ...
#define ECC_CURVE_ERROR ...
#define SECURE_RENEGOTIATION_E ...
#define INCOMPLETE_DATA ...
#define UNSUPPORTED_SUITE ...
#define UNKNOWN_HANDSHAKE_TYPE ...
#define LENGTH_ERROR ...
#define HANDSHAKE_SIZE_ERROR ...
#define NO_PEER_KEY ...
#define COMPRESSION_ERROR ...
#define EXT_MISSING ...
#define BAD_KEY_SHARE_DATA ...
#define INVALID_PARAMETER ...
#define ECC_KEY_SIZE_E ...
#define SIG_VERIFY_E ...
#define NO_CHANGE_CIPHER_E ...
#define OUT_OF_ORDER_E ...
#define ASN_BEFORE_DATE_E ...
#define ASN_AFTER_DATE_E ...
#define ASN_NO_SIGNER_E ...
#define ASN_SIG_CONFIRM_E ...
#define ASN_PARSE_E ...
#define NID_X9_62_prime256v1 ...
#define NID_secp384r1 ...
#define NID_brainpoolP256r1 ...
#define NID_brainpoolP384r1 ...
#define NID_brainpoolP512r1 ...
#define BUFFER_E ...

typedef struct WOLFSSL_ALERT {
    int code;
    int level;
} WOLFSSL_ALERT;
typedef struct WOLFSSL_ALERT_HISTORY {
    WOLFSSL_ALERT last_rx;
    WOLFSSL_ALERT last_tx;
} WOLFSSL_ALERT_HISTORY;

int wolfSSL_Init(void);
const char *wolfSSL_lib_version(void);
WOLFSSL_METHOD *wolfTLSv1_2_server_method(void);
WOLFSSL_METHOD *wolfTLSv1_2_client_method(void);

WOLFSSL_CTX *wolfSSL_CTX_new(WOLFSSL_METHOD *);
void wolfSSL_CTX_free(WOLFSSL_CTX *);
int wolfSSL_CTX_up_ref(WOLFSSL_CTX *);
int wolfSSL_CTX_set_cipher_list(WOLFSSL_CTX *, const char *);
int wolfSSL_set_cipher_list(WOLFSSL *, const char *);
int wolfSSL_CTX_use_certificate_buffer(WOLFSSL_CTX *, const unsigned char *, long, int);
int wolfSSL_CTX_use_PrivateKey_buffer(WOLFSSL_CTX *, const unsigned char *, long, int);
int wolfSSL_CTX_check_private_key(const WOLFSSL_CTX *);
int wolfSSL_CTX_trust_peer_buffer(WOLFSSL_CTX *, const unsigned char *, long, int);
int wolfSSL_CTX_load_verify_buffer(WOLFSSL_CTX *, const unsigned char *, long, int);
void wolfSSL_CTX_set_verify(WOLFSSL_CTX *, int, VerifyCallback);
int wolfSSL_CTX_set1_curves_list(WOLFSSL_CTX *, const char *);
int wolfSSL_CTX_UseSupportedCurve(WOLFSSL_CTX *, word16);
int wolfSSL_CTX_UseMaxFragment(WOLFSSL_CTX *, unsigned char);
int wolfSSL_CTX_set1_sigalgs_list(WOLFSSL_CTX *, const char *);
int wolfSSL_CTX_set_timeout(WOLFSSL_CTX *, unsigned int);
long wolfSSL_CTX_set_options(WOLFSSL_CTX *, long);
int wolfSSL_CTX_NoTicketTLSv12(WOLFSSL_CTX *);
int wolfSSL_CTX_set_session_id_context(WOLFSSL_CTX *, const unsigned char *, unsigned int);
int wolfSSL_CTX_SetMinEccKey_Sz(WOLFSSL_CTX *, short);
WOLFSSL_EC_KEY *wolfSSL_EC_KEY_new_by_curve_name(int);
void wolfSSL_EC_KEY_free(WOLFSSL_EC_KEY *);
int wolfSSL_SSL_CTX_set_tmp_ecdh(WOLFSSL_CTX *, WOLFSSL_EC_KEY *);
void wolfSSL_CTX_SetIORecv(WOLFSSL_CTX *, CallbackIORecv);
void wolfSSL_CTX_SetIOSend(WOLFSSL_CTX *, CallbackIOSend);

WOLFSSL *wolfSSL_new(WOLFSSL_CTX *);
void wolfSSL_free(WOLFSSL *);
void wolfSSL_SetIOReadCtx(WOLFSSL *, void *);
void wolfSSL_SetIOWriteCtx(WOLFSSL *, void *);
void *wolfSSL_GetIOReadCtx(WOLFSSL *);
int wolfSSL_accept(WOLFSSL *);
int wolfSSL_connect(WOLFSSL *);
int wolfSSL_read(WOLFSSL *, void *, int);
int wolfSSL_write(WOLFSSL *, const void *, int);
int wolfSSL_shutdown(WOLFSSL *);
int wolfSSL_get_shutdown(const WOLFSSL *);
int wolfSSL_get_error(WOLFSSL *, int);
int wolfSSL_pending(WOLFSSL *);
int wolfSSL_is_init_finished(WOLFSSL *);
int wolfSSL_set_session(WOLFSSL *, WOLFSSL_SESSION *);
WOLFSSL_SESSION *wolfSSL_get1_session(WOLFSSL *);
void wolfSSL_SESSION_free(WOLFSSL_SESSION *);
long wolfSSL_SESSION_get_timeout(const WOLFSSL_SESSION *);
int wolfSSL_SSL_CTX_remove_session(WOLFSSL_CTX *, WOLFSSL_SESSION *);
int wolfSSL_UseMaxFragment(WOLFSSL *, unsigned char);
int wolfSSL_UseSupportedCurve(WOLFSSL *, word16);
int wolfSSL_GetMaxOutputSize(WOLFSSL *);
int wolfSSL_get_alert_history(WOLFSSL *, WOLFSSL_ALERT_HISTORY *);
const char *wolfSSL_alert_desc_string_long(int);

const char *wolfSSL_get_version(const WOLFSSL *);
const char *wolfSSL_get_cipher_name(WOLFSSL *);
const char *wolfSSL_get_curve_name(WOLFSSL *);
int wolfSSL_session_reused(WOLFSSL *);
WOLFSSL_X509 *wolfSSL_get_peer_certificate(WOLFSSL *);
const unsigned char *wolfSSL_X509_get_der(WOLFSSL_X509 *, int *);
void wolfSSL_X509_free(WOLFSSL_X509 *);

int wolfSSL_X509_STORE_CTX_get_error(WOLFSSL_X509_STORE_CTX *);
int wolfSSL_X509_STORE_CTX_get_error_depth(WOLFSSL_X509_STORE_CTX *);
WOLFSSL_X509 *wolfSSL_X509_STORE_CTX_get_current_cert(WOLFSSL_X509_STORE_CTX *);
void *wolfSSL_X509_STORE_CTX_get_ex_data(WOLFSSL_X509_STORE_CTX *, int);
int wolfSSL_get_ex_data_X509_STORE_CTX_idx(void);

void wolfSSL_ERR_error_string_n(unsigned long, char *, unsigned long);
void wolfSSL_ERR_clear_error(void);

/* C helpers defined in SOURCE below */
int bab_restrict_ecdhe_groups(WOLFSSL_CTX *);
typedef struct bab_ticket_keys bab_ticket_keys;
bab_ticket_keys *bab_ticket_keys_new(long lifetime);
void bab_ticket_keys_free(bab_ticket_keys *);
int bab_use_ticket_keys(WOLFSSL_CTX *, bab_ticket_keys *);
const char *bab_binding_id(void);

extern "Python" int _bab_io_recv(WOLFSSL *, char *, int, void *);
extern "Python" int _bab_io_send(WOLFSSL *, char *, int, void *);
extern "Python" int _bab_verify(int, WOLFSSL_X509_STORE_CTX *);
"""

SOURCE = r"""
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#if LIBWOLFSSL_VERSION_HEX < 0x05005000
#error "BAB needs wolfSSL >= 5.5.0"
#endif
#ifndef HAVE_ECC_BRAINPOOL
#error "this libwolfssl is built without brainpool curves (HAVE_ECC_BRAINPOOL)"
#endif
#ifndef HAVE_MAX_FRAGMENT
#error "this libwolfssl is built without the max_fragment_length extension (HAVE_MAX_FRAGMENT)"
#endif
#ifndef HAVE_AESGCM
#error "this libwolfssl is built without AES-GCM"
#endif
#ifndef WOLFSSL_SHA384
#error "this libwolfssl is built without SHA-384"
#endif
#ifndef HAVE_PK_CALLBACKS
#error "this libwolfssl is built without PK callbacks (HAVE_PK_CALLBACKS), needed to restrict ECDHE groups"
#endif

#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/openssl/ec.h>

/* ECDHE group restriction, second layer. The group is chosen in Python and pinned per context
 * (wolfSSL_SSL_CTX_set_tmp_ecdh); the server's ephemeral ECC key is then made through this key-generation
 * callback, which refuses every curve outside the five TR-03116-3 curves (P-521, P-224, secp256k1, ...): the
 * handshake would fail with ECC_CURVE_ERROR before the ServerKeyExchange is sent. (X25519/X448 never reach
 * it on a pinned context; refusing them in their own key-generation callbacks makes wolfSSL 5.5.4 free the
 * temporary key with the wrong type, a crash.) */
static int bab_ecc_keygen(WOLFSSL *ssl, struct ecc_key *key, unsigned int keySz, int ecc_curve, void *ctx)
{
    (void)ctx;
    switch (ecc_curve) {
    case ECC_SECP256R1:
    case ECC_SECP384R1:
    case ECC_BRAINPOOLP256R1:
    case ECC_BRAINPOOLP384R1:
    case ECC_BRAINPOOLP512R1:
        break;
    case ECC_CURVE_DEF: /* default NIST curve chosen by size */
        if (keySz == 32 || keySz == 48)
            break;
        return ECC_CURVE_ERROR;
    default:
        return ECC_CURVE_ERROR;
    }
    return wc_ecc_make_key_ex(wolfSSL_GetRNG(ssl), (int)keySz, key, ecc_curve);
}

int bab_restrict_ecdhe_groups(WOLFSSL_CTX *ctx)
{
    if (ctx == NULL)
        return 0;
    wolfSSL_CTX_SetEccKeyGenCb(ctx, bab_ecc_keygen);
    return 1;
}

#ifndef HAVE_SESSION_TICKET
#error "this libwolfssl is built without session tickets (HAVE_SESSION_TICKET)"
#endif
#include <string.h>
#include <time.h>
#include <stdlib.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/random.h>

/* Session tickets (RFC 5077) with BAB's own ticket callback. wolfSSL 5.5.4's default callback fails every
 * further ticket once the session timeout exceeds its 1 h key lifetime, and the LMN's lifetime is 744 h.
 * One key set per MeterTlsContext (shared by its per-group WOLFSSL_CTXs; a new pairing or crypto-reset makes a
 * new context, so older tickets no longer decrypt). The ticket state wolfSSL hands over is encrypted in place
 * with AES-256-GCM. The key name carries the key's random ID (8 bytes) and the issue time (8 bytes, seconds,
 * big-endian) and is the GCM AAD, so the time cannot be altered. A ticket older than the session lifetime,
 * or of another key, is rejected: a full handshake follows. */
typedef struct bab_ticket_keys bab_ticket_keys;
struct bab_ticket_keys {
    unsigned char id[8];
    unsigned char key[32];
    long lifetime;
    WC_RNG rng;
};

bab_ticket_keys *bab_ticket_keys_new(long lifetime)
{
    bab_ticket_keys *k = (bab_ticket_keys *)calloc(1, sizeof(*k));
    if (k == NULL)
        return NULL;
    if (wc_InitRng(&k->rng) != 0) {
        free(k);
        return NULL;
    }
    if (wc_RNG_GenerateBlock(&k->rng, k->id, sizeof(k->id)) != 0
            || wc_RNG_GenerateBlock(&k->rng, k->key, sizeof(k->key)) != 0) {
        wc_FreeRng(&k->rng);
        free(k);
        return NULL;
    }
    k->lifetime = lifetime;
    return k;
}

void bab_ticket_keys_free(bab_ticket_keys *k)
{
    if (k == NULL)
        return;
    wc_FreeRng(&k->rng);
    memset(k->key, 0, sizeof(k->key));
    free(k);
}

static int bab_ticket_cb(WOLFSSL *ssl, unsigned char key_name[WOLFSSL_TICKET_NAME_SZ],
                         unsigned char iv[WOLFSSL_TICKET_IV_SZ], unsigned char mac[WOLFSSL_TICKET_MAC_SZ],
                         int enc, unsigned char *ticket, int in_len, int *out_len, void *user)
{
    bab_ticket_keys *k = (bab_ticket_keys *)user;
    Aes aes;
    int ret;
    unsigned long long issued = 0;
    unsigned long long now = (unsigned long long)time(NULL);
    int i;
    (void)ssl;
    if (k == NULL || in_len <= 0)
        return WOLFSSL_TICKET_RET_FATAL;
    if (enc) {
        memcpy(key_name, k->id, 8);
        for (i = 0; i < 8; i++)
            key_name[8 + i] = (unsigned char)(now >> (56 - 8 * i));
        if (wc_RNG_GenerateBlock(&k->rng, iv, WOLFSSL_TICKET_IV_SZ) != 0)
            return WOLFSSL_TICKET_RET_FATAL;
    } else {
        if (memcmp(key_name, k->id, 8) != 0)
            return WOLFSSL_TICKET_RET_REJECT;
        for (i = 0; i < 8; i++)
            issued = (issued << 8) | key_name[8 + i];
        if (issued > now || (long long)(now - issued) > (long long)k->lifetime)
            return WOLFSSL_TICKET_RET_REJECT;
    }
    if (wc_AesInit(&aes, NULL, INVALID_DEVID) != 0)
        return WOLFSSL_TICKET_RET_FATAL;
    ret = wc_AesGcmSetKey(&aes, k->key, sizeof(k->key));
    if (ret == 0 && enc) {
        memset(mac, 0, WOLFSSL_TICKET_MAC_SZ);
        ret = wc_AesGcmEncrypt(&aes, ticket, ticket, (word32)in_len, iv, 12, mac, 16, key_name,
                               WOLFSSL_TICKET_NAME_SZ);
    } else if (ret == 0) {
        ret = wc_AesGcmDecrypt(&aes, ticket, ticket, (word32)in_len, iv, 12, mac, 16, key_name,
                               WOLFSSL_TICKET_NAME_SZ);
    }
    wc_AesFree(&aes);
    if (ret != 0)
        return enc ? WOLFSSL_TICKET_RET_FATAL : WOLFSSL_TICKET_RET_REJECT;
    *out_len = in_len;
    return WOLFSSL_TICKET_RET_OK;
}

int bab_use_ticket_keys(WOLFSSL_CTX *ctx, bab_ticket_keys *k)
{
    if (ctx == NULL || k == NULL)
        return 0;
    if (wolfSSL_CTX_set_TicketEncCb(ctx, bab_ticket_cb) != WOLFSSL_SUCCESS)
        return 0;
    if (wolfSSL_CTX_set_TicketEncCtx(ctx, k) != WOLFSSL_SUCCESS)
        return 0;
    return wolfSSL_CTX_set_TicketHint(ctx, (int)(k->lifetime > 0x7fffffff ? 0x7fffffff : k->lifetime))
        == WOLFSSL_SUCCESS;
}
"""

INSTALL_HINT = ("apt-get install libwolfssl-dev gcc python3-dev libffi-dev, "
                "then run: python -m bab.tls.build_wolfssl")
PACKAGE_HINT = ("install the Debian packages libwolfssl-dev (wolfSSL's library and headers), gcc and python3-dev "
                "(apt-get install libwolfssl-dev gcc python3-dev libffi-dev), then build BAB again; "
                "BAB_WITHOUT_TLS=1 builds it without TLS (bab run then refuses to start)")

#: Identifies this version of the binding; compiled into the module so that a stale build is detected.
BINDING_ID = "bab-wolfssl-" + hashlib.sha256((CDEF + SOURCE).encode()).hexdigest()[:20]


def make_ffi():  # type: ignore[no-untyped-def]
    """The cffi builder object (``FFI``) for ``bab.tls._wolfssl_cffi``."""
    from cffi import FFI

    ffi = FFI()
    ffi.cdef(CDEF)
    source = SOURCE + f'\nconst char *bab_binding_id(void) {{ return "{BINDING_ID}"; }}\n'
    ffi.set_source(MODULE, source, libraries=["wolfssl"])
    return ffi


class WolfsslMissing(RuntimeError):
    """What the package build is missing to compile the binding (the message names the Debian package)."""


def package_ffi():  # type: ignore[no-untyped-def]
    """The builder for setup.py's ``cffi_modules``: :func:`make_ffi` after checking that the wolfSSL library
    and headers, a C compiler and the Python headers are there, so a missing one fails the build with a
    message naming the Debian package instead of a compiler error."""
    problem = _preflight(hint=PACKAGE_HINT)
    if problem:
        raise WolfsslMissing(f"BAB's TLS binding cannot be built: {problem}")
    return make_ffi()


def built_module() -> Path | None:
    """The already built extension module in ``bab/tls/``, or None."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    path = HERE / f"_wolfssl_cffi{suffix}"
    return path if path.exists() else None


def _is_current(path: Path) -> bool:
    """True when ``path`` was built from this version of the binding (its ID is compiled in)."""
    try:
        return BINDING_ID.encode() in path.read_bytes()
    except OSError:
        return False


def _library_found() -> bool:
    """True when the linker can find libwolfssl (``libwolfssl.so``, from libwolfssl-dev)."""
    dirs = ["/usr/lib", "/usr/local/lib", "/lib"]
    multiarch = sysconfig.get_config_var("MULTIARCH")
    if multiarch:
        dirs += [f"/usr/lib/{multiarch}", f"/lib/{multiarch}"]
    dirs += [d for d in os.environ.get("LIBRARY_PATH", "").split(":") if d]
    return any((Path(d) / "libwolfssl.so").exists() for d in dirs)


def _preflight(hint: str = INSTALL_HINT) -> str | None:
    """A message naming what is missing, or None when the build can be attempted.

    ``BAB_WOLFSSL_INCLUDE`` overrides where wolfSSL's headers are looked for (tests point it at an empty
    directory to see the message).
    """
    include_dirs = [Path(os.environ["BAB_WOLFSSL_INCLUDE"])] if os.environ.get("BAB_WOLFSSL_INCLUDE") else [
        Path("/usr/include"), Path("/usr/local/include")]
    include = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not any((d / "wolfssl" / "options.h").exists() for d in include_dirs):
        return f"wolfSSL headers not found ({include_dirs[0]}/wolfssl/options.h): {hint}"
    if "BAB_WOLFSSL_INCLUDE" not in os.environ and not _library_found():
        return f"the wolfSSL library (libwolfssl.so) not found: {hint}"
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None and shutil.which("cc") is None:
        return f"no C compiler ({cc}) found: {hint}"
    if not include.exists():
        return f"Python headers not found ({include}): {hint}"
    return None


def build(force: bool = False, verbose: bool = False) -> Path:
    """Build the extension into ``bab/tls/`` (unless current) and return its path.

    Raises RuntimeError with a clear message when the build is not possible.
    """
    existing = built_module()
    if existing is not None and not force and _is_current(existing):
        return existing
    problem = _preflight()
    if problem:
        raise RuntimeError(problem)
    try:
        ffi = make_ffi()
    except ImportError as exc:
        raise RuntimeError(f"cffi is not installed ({exc}): pip install cffi") from None
    with tempfile.TemporaryDirectory(prefix="bab-wolfssl-") as tmp:
        try:
            out = ffi.compile(tmpdir=tmp, verbose=verbose)
        except Exception as exc:  # cffi raises VerificationError / distutils CompileError / LinkError
            raise RuntimeError(f"building the wolfSSL binding failed ({exc}): {INSTALL_HINT}") from None
        target = HERE / Path(out).name
        tmp_target = target.with_name(target.name + ".tmp")
        shutil.copyfile(out, tmp_target)
        tmp_target.chmod(0o755)
        tmp_target.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bab.tls.build_wolfssl", description=__doc__.split("\n")[0])
    parser.add_argument("--force", action="store_true", help="rebuild even when the module is current")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the compiler commands")
    args = parser.parse_args(argv)
    existing = built_module()
    if existing is not None and not args.force and _is_current(existing):
        print(f"wolfSSL binding up to date: {existing}")
        return 0
    try:
        path = build(force=True, verbose=args.verbose)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"built wolfSSL binding: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
