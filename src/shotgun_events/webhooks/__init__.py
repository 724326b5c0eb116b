"""Webhook wake-ups: a small HTTP receiver for the site's webhook deliveries.

Owns ``payload`` (signature check and parsing, pure) and ``receiver`` (its
own listener thread). A valid delivery only tells the poll loop to read the
event log now; the event log still decides what is delivered. May import the
core and ``engine.wakeup``; the engine does not import this package
(``wiring.py`` wires the receiver to the engine's ``WakeUps``).
"""
