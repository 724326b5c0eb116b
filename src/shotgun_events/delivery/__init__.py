"""Running plugins: one event through one plugin's callbacks, and the ways plugins are run.

Owns the dispatcher, the per-plugin runner (cursor advance and persist), the
failure policy (retries, dead letters), the callback watch, and the variants
behind two interfaces: ``Delivery`` (which thread runs a plugin: serial,
parallel, auto with its lanes) and ``Executor`` (how one plugin's events run:
inline in id order, keyed on the plugin's own pool, or on Celery workers).
May import: the core, ``config``, ``notify``, ``state``, ``client`` and ``plugins``.
"""
