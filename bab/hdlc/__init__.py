"""HDLC in the LMN profile (BSI TR-03109-1 Anlage Teil a, reconstructed in LMN-STACK.md section 3).

Sans-I/O: :mod:`.frame` encodes and decodes frames, :mod:`.receiver` splits a byte stream into frames,
:mod:`.secondary` is the meter (secondary station) and :mod:`.primary` the gateway (primary station).
"""
