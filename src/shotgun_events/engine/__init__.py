"""The poll loop: read the event log once, hand events to delivery, keep every cursor.

Owns the loop (``run`` / ``run_once``), start positions and the site clock.
Knows nothing of the service, the operator side or the CLI. May import
everything below it: the core, ``config``, ``notify``, ``state``, ``client``,
``plugins`` and ``delivery``.
"""
