"""Configuration: the INI file read once into one frozen ``Config``.

Owns the defaults table and known keys (model), reading and interpolating the
file with one-line errors (ini, load) and the file-system checks made at start
(checks). May import: the core (errors, events) only.
"""
