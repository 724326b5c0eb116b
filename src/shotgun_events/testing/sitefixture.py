"""``local_site``: a seeded local site per test, made from a copy of one seeded database.

Seeding writes a few hundred entities and events through the API write path; it
is done once per session into a template file, and every test starts its own
site on a copy of that file (a file copy, not a reseed).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from shotgun_api3.shotgun import Shotgun

from shotgun_events.events import Event
from shotgun_events.site import LocalSite
from shotgun_events.testing.harness import PAGE, site_source

SCRIPT_NAME = "shotgun_events"
SCRIPT_KEY = "local"


#: A studio's schema files (schema_read, schema_entity_read), or None for the site's own.
SchemaFiles = tuple[Path, Path | None] | None


def make_template(folder: Path, schema: SchemaFiles = None) -> Path:
    """Seed a site database in ``folder`` once (on ``schema`` if given); returns the file."""
    path = folder / "seeded.sqlite3"
    with LocalSite(path, seed=True, schema=_file(schema, 0), schema_entity=_file(schema, 1)):
        pass  # stop() checkpoints the WAL, so the one file holds everything
    return path


def _file(schema: SchemaFiles, n: int) -> Path | None:
    return None if schema is None else schema[n]


class TestSite:
    """A started local site accepting any script, with helpers that return the events logged."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, template: Path, folder: Path, schema: SchemaFiles = None) -> None:
        """Copy ``template`` into ``folder`` and start a site on the copy (and ``schema``)."""
        db = folder / "site.sqlite3"
        shutil.copyfile(template, db)
        self.site = LocalSite(
            db,
            scripts={SCRIPT_NAME: SCRIPT_KEY},
            open_scripts=True,
            schema=_file(schema, 0),
            schema_entity=_file(schema, 1),
        )
        self.site.start()
        self._sg: Shotgun | None = None
        self._source = site_source(self.site.url, SCRIPT_NAME, SCRIPT_KEY)

    @property
    def url(self) -> str:
        """The base URL for ``shotgun_api3.Shotgun``."""
        return self.site.url

    @property
    def sg(self) -> Shotgun:
        """A real ``shotgun_api3.Shotgun`` on the site (script shotgun_events, key local)."""
        if self._sg is None:
            self._sg = Shotgun(self.url, SCRIPT_NAME, SCRIPT_KEY)
        return self._sg

    def add_script(self, name: str, key: str) -> None:
        """Accept this script name and key (any unknown name is also accepted at first use)."""
        self.site.add_script(name, key)

    def newest_event_id(self) -> int:
        """The id of the newest event on the site."""
        return int(self._source.newest_id())

    def events_after(self, event_id: int) -> list[Event]:
        """Every event with an id above ``event_id``, as the daemon reads and delivers them."""
        found: list[Event] = []
        while True:
            batch = self._source.fetch_after(event_id, PAGE)
            found.extend(batch)
            if len(batch) < PAGE:
                return found
            event_id = batch[-1]["id"]

    def change(self, entity_type: str, entity_id: int, **fields: Any) -> list[Event]:
        """Update the entity through the API; return the events that change logged."""
        before = self.newest_event_id()
        self.sg.update(entity_type, entity_id, fields)
        return self.events_after(before)

    def create(self, entity_type: str, **fields: Any) -> tuple[dict[str, Any], list[Event]]:
        """Create an entity through the API; return it and the events its creation logged."""
        before = self.newest_event_id()
        entity = self.sg.create(entity_type, fields)
        return entity, self.events_after(before)

    def delete(self, entity_type: str, entity_id: int) -> list[Event]:
        """Retire the entity; return the events logged."""
        before = self.newest_event_id()
        self.sg.delete(entity_type, entity_id)
        return self.events_after(before)

    def revive(self, entity_type: str, entity_id: int) -> list[Event]:
        """Revive a retired entity; return the events logged."""
        before = self.newest_event_id()
        self.sg.revive(entity_type, entity_id)
        return self.events_after(before)

    def close(self) -> None:
        """Close the clients and stop the site."""
        if self._sg is not None:
            self._sg.close()
            self._sg = None
        self._source.close()
        self.site.stop()
