"""Running plugins: one event through one plugin's callbacks, and the ways plugins are run.

Owns the dispatcher, the per-plugin runner (cursor advance and persist), the
failure policy (retries, dead letters), the callback watch, and the variants
behind one ``Delivery`` interface: serial, and one worker thread per plugin.
May import: the core, ``config``, ``notify``, ``state``, ``client`` and ``plugins``.
"""
