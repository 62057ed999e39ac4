"""BAB: a meter-side wired-LMN adapter that presents legacy electricity meters to a German Smart Meter Gateway.

The stack is layered as sans-I/O protocol cores (HDLC, SYM, TLS, SML, COSEM; D0 and EDL on the legacy side)
with thin asyncio code around them that only moves bytes and timers. See ``docs/architecture.md``.
"""

__version__ = "0.1.0"
