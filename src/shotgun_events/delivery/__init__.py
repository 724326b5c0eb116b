"""Running plugins: where a plugin's events run, which thread drives it, and its position.

Owns the executors (inline, the plugin's own pool, Celery workers: one
``Executor`` protocol, one ``choose``), the fan-out (the shared lane and
plugins' own threads, by one promotion policy), the per-plugin runner (one
watermark path), the dispatcher (one event, or one timer's run, through a
plugin's code), and what they share once: ordering keys, the failure
policy, the in-flight registry.
May import: the core, ``config``, ``notify``, ``state``, ``client`` and ``plugins``.
"""
