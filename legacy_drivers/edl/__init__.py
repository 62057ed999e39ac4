"""EDL21/EDL40/eHZ/mME: SML pushed on the optical INFO interface (LMN-STACK.md 9.1)."""

from .driver import EdlDriver, reduced_data_set

__all__ = ["EdlDriver", "reduced_data_set"]
