"""BAB's package build: everything is declared in pyproject.toml except the wolfSSL cffi binding.

``cffi_modules`` compiles ``bab.tls._wolfssl_cffi`` as part of ``pip install .`` / ``pip wheel .`` (the builder
is :func:`bab.tls.build_wolfssl.package_ffi`; it fails the build with a message naming the Debian package
libwolfssl-dev when wolfSSL is missing). ``BAB_WITHOUT_TLS=1`` builds a pure-Python package without it
(used by deploy/build-deb.sh, which compiles the binding for the target architecture itself).
"""

import os

from setuptools import setup

with_tls = os.environ.get("BAB_WITHOUT_TLS", "") in ("", "0")
setup(cffi_modules=["bab/tls/build_wolfssl.py:package_ffi"] if with_tls else [])
