"""Legacy meter drivers (D0, EDL, S0, simulated) and the driver plugin API (:mod:`legacy_drivers.api`)."""
