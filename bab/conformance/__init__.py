"""LMN conformance suite: test cases for the meter side of the wired LMN (LMN-STACK.md sections 3-7, 13 and
the TLS server cases of BSI's TaSK for TR-03116-3), run by BAB's own software gateway station against any meter
on a bus. ``bab conformance`` is the command; docs/conformance.md the guide."""

from .case import CASES, CaseResult, Verdict
from .runner import run_suite

__all__ = ["CASES", "CaseResult", "Verdict", "run_suite"]
