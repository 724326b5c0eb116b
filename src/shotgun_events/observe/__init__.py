"""Seeing the daemon work: Prometheus metrics, health probes and a live status page over HTTP.

Owns ``sink`` (the ``Telemetry`` that counts what the parts report),
``view`` (what the server reads of the running daemon, without the engine's
locks), ``metrics`` (the registry behind ``/metrics``), ``health``
(``/livez`` and ``/readyz``), ``recent`` (recent warnings, events per
minute), ``page`` (the HTML status page) and ``server`` (one small HTTP
server on its own thread). May import every package below ``app``; nothing
but ``app`` imports it, and the engine and delivery never do.
"""
