"""shotgun_events: a drop-in replacement for the Shotgun / Flow Production Tracking event daemon."""

__version__ = "0.1.0"
