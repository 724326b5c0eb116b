"""The plugin system: finding, importing and reloading plugin files, and the plugin-facing API.

Owns the loader and its folder listing, helper-module imports, the
``Registrar`` and matchEvents, the folder watcher (and its reading of
observer events) and the on/off switches. May import: the core, ``config``,
``notify`` and ``client``.
"""
