"""Running as a service: start (detached, with readiness), stop, restart, pid file, signals.

Also the readiness pipe and systemd's sd_notify. May import: the core,
``config`` and ``notify``; it starts the engine only through callables that
``app`` hands it.
"""
