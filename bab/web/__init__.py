"""BAB's web console and HTTP API (issue 15): served by ``bab gateway``, ``bab run`` and ``bab demo`` with ``--http``.

Nothing here is imported unless HTTP is switched on, so a daemon without it keeps its memory and slot timing.
The parts:

* :mod:`bab.web.security`: where the server may listen, the access token, which requests need it;
* :mod:`bab.web.events`: the live event stream (Server-Sent Events) with a bounded queue per client;
* :mod:`bab.web.svg`: the plots, drawn server-side as SVG;
* :mod:`bab.web.gateway_console`: what the software gateway shows and does (participants, reads, pairing,
  crypto-reset, link diagnostics), observed at the gateway's event points;
* :mod:`bab.web.adapter_console`: what a running BAB shows (``bab status``) and the lab meter's controls;
* :mod:`bab.web.server`: the aiohttp application (routes, errors, limits) and the static page (``static/``).

The API is described in ``docs/http-api.md``.
"""
