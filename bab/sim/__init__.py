"""The lab meter: fault injection and run-time control of BAB's presented meters (issue 13).

BAB's protocol cores (:mod:`bab.hdlc`, :mod:`bab.sml`, :mod:`bab.tls`, :mod:`bab.sym`) know nothing of faults.
This package wraps them at the boundaries between the layers instead:

* :mod:`bab.sim.catalogue`: every fault kind, its parameters (validated like the configuration) and its
  probability/count semantics;
* :mod:`bab.sim.faults`: the faults active on one meter, what fires and when, logging (``BAB_FAULT``) and
  counting;
* :mod:`bab.sim.hdlc`: frames out of the HDLC station (:class:`~bab.hdlc.secondary.MeterStation`) and the
  upper layer the station gets for a selector (DM, RNR);
* :mod:`bab.sim.sml`: SML files out of the SML server; :mod:`bab.sim.tls`: records out of TLS;
  :mod:`bab.sim.sym`: SYM messages out of the SYM layer;
* :mod:`bab.sim.control`: :class:`~bab.sim.control.SimControl`, the run-time commands (``bab sim``, the
  status socket, the web API); :mod:`bab.sim.scenario`: timelines of commands from a YAML file.

The guide for labs is ``docs/simulator.md``.
"""
