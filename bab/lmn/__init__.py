"""Moving LMN bytes: a port's stations (:mod:`.node`), the virtual RS-485 bus (:mod:`.bus`), its virtual-time
simulation (:mod:`.simulation`), asyncio runners (:mod:`.runner`) and real ports (:mod:`.port`)."""
