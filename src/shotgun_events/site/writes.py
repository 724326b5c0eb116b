"""create / update / delete / revive; each writes its EventLogEntry rows in the same transaction."""

from __future__ import annotations

import uuid
from typing import Any

from .errors import ApiError, utc_now
from .eventlog import Actor, EventLog, Link
from .passwords import keep
from .reads import Reader
from .schema import AUTO_FIELDS, EntitySpec, FieldSpec, Schema
from .store import Store, q
from .values import coerce, columns

_MODES = ("set", "add", "remove")


def _key(link: Link | None) -> tuple[str, int] | None:
    return None if link is None else (link["type"], link["id"])


def _same(f: FieldSpec, old: Any, new: Any) -> bool:
    if f.is_entity:
        return _key(old) == _key(new)
    if f.is_multi:
        return {_key(x) for x in old or []} == {_key(x) for x in new or []}
    return bool(old == new)


class Writer:
    """Applies writes; the caller holds a ``store.transaction()``."""

    def __init__(self, store: Store, schema: Schema, reader: Reader, events: EventLog) -> None:
        """Write through ``store``, reading old values with ``reader``, logging to ``events``."""
        self.store = store
        self.schema = schema
        self.reader = reader
        self.events = events
        self.partners: dict[tuple[str, str], tuple[str, str]] = {}
        for type_name, spec in schema.entities.items():
            for f in spec.fields.values():
                if f.link_kind == "reverse":
                    self.partners[f.source] = (type_name, f.name)
                    self.partners[(type_name, f.name)] = f.source

    # -- values ------------------------------------------------------------------

    def coerce(self, method: str, type_name: str, f: FieldSpec, value: Any) -> Any:
        """The caller's value checked and normalized, or a fault naming the field."""
        return coerce(self.store, method, type_name, f, value)

    def _parse(
        self, method: str, spec: EntitySpec, fields: Any, server: bool = False
    ) -> tuple[dict[str, tuple[Any, str]], dict[str, str]]:
        """The checked values by field (with their update mode), and the passwords apart.

        ``server``: values the site itself sets (thumbnails, uploads), taken as they are.
        """
        if not isinstance(fields, list):
            raise ApiError(f"API {method}() fields must be a list of {{field_name, value}}")
        parsed: dict[str, tuple[Any, str]] = {}
        secrets: dict[str, str] = {}
        for item in fields:
            name = item.get("field_name") if isinstance(item, dict) else None
            f = spec.fields.get(name) if isinstance(name, str) else None
            if f is None:
                raise ApiError(f"API {method}() {spec.name} has no field {name!r}")
            if server:
                parsed[f.name] = (item.get("value"), "set")
                continue
            if not f.editable or f.name in AUTO_FIELDS:
                raise ApiError(f"API {method}() {spec.name}.{f.name} is not editable")
            if f.data_type == "password":
                # kept as a hash apart from the entity (passwords.py), never logged
                secrets[f.name] = self.coerce(method, spec.name, f, item.get("value")) or ""
                continue
            mode = item.get("multi_entity_update_mode") or "set"
            if mode not in _MODES:
                raise ApiError(f"API {method}() invalid multi_entity_update_mode {mode!r}")
            parsed[f.name] = (self.coerce(method, spec.name, f, item.get("value")), mode)
        return parsed, secrets

    def _keep_secrets(self, type_name: str, entity_id: int, secrets: dict[str, str]) -> None:
        for value in secrets.values():
            keep(self.store.conn, type_name, entity_id, value)

    def _stamped(self, spec: EntitySpec, values: dict[str, Any]) -> None:
        """Fields the site fills in on create: read-only uuids, and a Page's last access."""
        for f in spec.fields.values():
            if f.name in values:
                continue
            if f.data_type == "uuid" and not f.editable:
                values[f.name] = str(uuid.uuid4())
            elif (spec.name, f.name) == ("Page", "last_accessed"):
                values[f.name] = utc_now()

    # -- links -------------------------------------------------------------------

    def _link_rows(
        self, type_name: str, f: FieldSpec, entity_id: int, target: Link
    ) -> tuple[str, str, int, str, int]:
        if f.link_kind == "links":
            return type_name, f.name, entity_id, target["type"], target["id"]
        owner_type, owner_field = f.source
        return owner_type, owner_field, target["id"], type_name, entity_id

    def _relink(
        self, type_name: str, f: FieldSpec, entity_id: int, added: list[Link], removed: list[Link]
    ) -> None:
        conn = self.store.conn
        for t in removed:
            conn.execute(
                "DELETE FROM links WHERE src_type = ? AND field = ? AND src_id = ?"
                " AND dst_type = ? AND dst_id = ?",
                self._link_rows(type_name, f, entity_id, t),
            )
        for t in added:
            row = self._link_rows(type_name, f, entity_id, t)
            conn.execute(
                "INSERT OR IGNORE INTO links (src_type, field, src_id, dst_type, dst_id, pos)"
                " SELECT ?, ?, ?, ?, ?, COALESCE(MAX(pos) + 1, 0) FROM links"
                " WHERE src_type = ? AND field = ? AND src_id = ?",
                (*row, *row[:3]),
            )

    def _partner_values(
        self, type_name: str, f: FieldSpec, targets: list[Link]
    ) -> dict[int, dict[str, Any]]:
        partner = self.partners.get((type_name, f.name))
        if partner is None:
            return {}
        fields = [partner[1], "project", self.schema.entities[partner[0]].name_field]
        return {t["id"]: self.reader.fetch(partner[0], t["id"], fields) or {} for t in targets}

    # -- events ------------------------------------------------------------------

    def _log_partners(
        self, actor: Actor, type_name: str, f: FieldSpec, before: dict[int, dict[str, Any]]
    ) -> None:
        partner = self.partners.get((type_name, f.name))
        if partner is None or not actor.log_events:
            return
        ptype, pfield = partner
        pspec = self.schema.entities[ptype]
        after = self._partner_values(type_name, f, [{"id": i} for i in before])
        for target_id, old in before.items():
            new = after[target_id]
            if not _same(pspec.fields[pfield], old.get(pfield), new.get(pfield)):
                link = {"type": ptype, "id": target_id, "name": new.get(pspec.name_field)}
                self.events.field_change(
                    actor,
                    ptype,
                    pspec.fields[pfield],
                    link,
                    new.get("project"),
                    old.get(pfield),
                    new.get(pfield),
                )

    def _project_of(self, type_name: str, link: Link, values: dict[str, Any]) -> Link | None:
        return link if type_name == "Project" else values.get("project")

    # -- methods -----------------------------------------------------------------

    def create(
        self,
        actor: Actor,
        type_name: Any,
        fields: Any,
        return_fields: list[str],
        server: bool = False,
    ) -> dict[str, Any]:
        """Create an entity; returns the fields set plus ``return_fields``.

        ``server``: the site itself sets the values (see ``_parse``).
        """
        spec = self.reader.entity_spec(type_name, "create")
        if spec.name == "EventLogEntry":
            return self._create_event(actor, fields, return_fields)
        parsed, secrets = self._parse("create", spec, fields, server)
        values = {name: v for name, (v, _mode) in parsed.items()}
        for f in spec.fields.values():
            if f.default is not None and f.name not in values:
                values[f.name] = f.default  # server defaults are logged like set fields
        self._stamped(spec, values)
        now = utc_now()
        cols: dict[str, Any] = {"created_at": now, "updated_at": now}
        cols.update(columns(spec.fields["created_by"], actor.user))
        cols.update(columns(spec.fields["updated_by"], actor.user))
        for fname, v in values.items():
            if not spec.fields[fname].is_multi:
                cols.update(columns(spec.fields[fname], v))
        cur = self.store.conn.execute(
            f"INSERT INTO {q(spec.name)} ({', '.join(q(c) for c in cols)})"
            f" VALUES ({', '.join('?' for _ in cols)})",
            list(cols.values()),
        )
        entity_id = int(cur.lastrowid or 0)
        self._keep_secrets(spec.name, entity_id, secrets)
        name = values.get(spec.name_field)
        self.store.set_name(spec.name, entity_id, name)
        link: Link = {"type": spec.name, "id": entity_id, "name": name}
        project = self._project_of(spec.name, link, values)
        multis = [spec.fields[n] for n in values if spec.fields[n].is_multi]
        befores = {f.name: self._partner_values(spec.name, f, values[f.name]) for f in multis}
        for f in multis:
            self._relink(spec.name, f, entity_id, values[f.name], [])
        if actor.log_events:
            self.events.record(
                actor,
                f"Shotgun_{spec.name}_New",
                {"type": "new_entity", "entity_type": spec.name, "entity_id": entity_id},
                entity=link,
                project=project,
                description=f"{actor.who} created new {spec.name} {name}",
            )
            for fname, v in values.items():
                if v not in (None, [], ""):
                    self.events.field_change(
                        actor,
                        spec.name,
                        spec.fields[fname],
                        link,
                        project,
                        [] if spec.fields[fname].is_multi else None,
                        v,
                        in_create=True,
                    )
        for f in multis:
            self._log_partners(actor, spec.name, f, befores[f.name])
        # the fields the caller set and asked for; server defaults only when asked for
        wanted = list(dict.fromkeys([*parsed, *return_fields]))
        return self.reader.fetch(spec.name, entity_id, wanted) or {}

    def _create_event(self, actor: Actor, fields: Any, return_fields: list[str]) -> dict[str, Any]:
        spec = self.schema.entities["EventLogEntry"]
        values = {n: v for n, (v, _m) in self._parse("create", spec, fields)[0].items()}
        if not isinstance(values.get("event_type"), str):
            raise ApiError("API create() EventLogEntry needs an event_type")
        who = Actor(
            values.get("user") or actor.user, values.get("session_uuid") or actor.session_uuid
        )
        event_id = self.events.record(
            who,
            values["event_type"],
            values.get("meta") or {},
            entity=values.get("entity"),
            project=values.get("project"),
            attribute_name=values.get("attribute_name"),
            description=values.get("description") or "",
        )
        wanted = list(dict.fromkeys([*values, *return_fields]))
        return self.reader.fetch("EventLogEntry", event_id, wanted) or {}

    def _existing(self, method: str, spec: EntitySpec, entity_id: Any) -> int | None:
        if not isinstance(entity_id, int) or isinstance(entity_id, bool):
            raise ApiError(f"API {method}() id must be an integer, got {entity_id!r}")
        if spec.name == "EventLogEntry":
            raise ApiError(f"API {method}() EventLogEntry entities cannot be changed")
        return self.store.state_of(spec.name, entity_id)

    def update(
        self, actor: Actor, type_name: Any, entity_id: Any, fields: Any, server: bool = False
    ) -> dict[str, Any]:
        """Update fields (multi-entity fields honour set/add/remove); returns them.

        ``server``: the site itself sets the values (see ``_parse``).
        """
        spec = self.reader.entity_spec(type_name, "update")
        if self._existing("update", spec, entity_id) != 0:
            raise ApiError(f"API update() {spec.name} with id {entity_id} does not exist")
        parsed, secrets = self._parse("update", spec, fields, server)
        self._keep_secrets(spec.name, entity_id, secrets)
        asked = list(parsed)
        if "image" in parsed and parsed["image"][0] is None and "filmstrip_image" in spec.fields:
            # clearing a thumbnail clears its filmstrip too, as on a real site
            parsed.setdefault("filmstrip_image", (None, "set"))
        old = self.reader.fetch(spec.name, entity_id, [*parsed, spec.name_field, "project"]) or {}
        changed: dict[str, tuple[Any, Any]] = {}
        for name, (value, mode) in parsed.items():
            f = spec.fields[name]
            before: Any = old.get(name)
            if f.is_multi and before is None:
                before = []
            new = value
            if f.is_multi and mode == "add":
                new = before + [v for v in value if _key(v) not in {_key(b) for b in before}]
            elif f.is_multi and mode == "remove":
                new = [b for b in before if _key(b) not in {_key(v) for v in value}]
            if not _same(f, before, new):
                changed[name] = (before, new)
        if changed:
            self._apply(actor, spec, entity_id, old, changed)
        return self.reader.fetch(spec.name, entity_id, asked) or {}

    def _apply(
        self,
        actor: Actor,
        spec: EntitySpec,
        entity_id: int,
        old: dict[str, Any],
        changed: dict[str, tuple[Any, Any]],
    ) -> None:
        cols: dict[str, Any] = {"updated_at": utc_now()}
        cols.update(columns(spec.fields["updated_by"], actor.user))
        for name, (_before, new) in changed.items():
            if not spec.fields[name].is_multi:
                cols.update(columns(spec.fields[name], new))
        self.store.conn.execute(
            f"UPDATE {q(spec.name)} SET {', '.join(q(c) + ' = ?' for c in cols)} WHERE id = ?",
            [*cols.values(), entity_id],
        )
        befores: dict[str, dict[int, dict[str, Any]]] = {}
        for name, (before, new) in changed.items():
            f = spec.fields[name]
            if f.is_multi:
                added = [x for x in new if _key(x) not in {_key(b) for b in before}]
                removed = [x for x in before if _key(x) not in {_key(n) for n in new}]
                befores[name] = self._partner_values(spec.name, f, added + removed)
                self._relink(spec.name, f, entity_id, added, removed)
        name_value = changed.get(spec.name_field, (None, old.get(spec.name_field)))[1]
        link: Link = {"type": spec.name, "id": entity_id, "name": name_value}
        if spec.name_field in changed:
            self.store.set_name(spec.name, entity_id, name_value)
            self.events.show_entity(link)  # old events show the entity's current name
        values = {**old, **{n: new for n, (_b, new) in changed.items()}}
        project = self._project_of(spec.name, link, values)
        if actor.log_events:
            images = [n for n in changed if spec.fields[n].data_type == "image"]
            shown = self.reader.fetch(spec.name, entity_id, images) or {} if images else {}
            for name, (before, new) in changed.items():
                new = shown.get(name, new)  # a thumbnail is logged as its URL, as it reads
                self.events.field_change(
                    actor, spec.name, spec.fields[name], link, project, before, new
                )
        for name, before_map in befores.items():
            self._log_partners(actor, spec.name, spec.fields[name], before_map)

    def retire(self, actor: Actor, type_name: Any, entity_id: Any, revive: bool) -> bool:
        """Retire (delete) or revive an entity; False when it already is in that state."""
        method = "revive" if revive else "delete"
        spec = self.reader.entity_spec(type_name, method)
        state = self._existing(method, spec, entity_id)
        if state is None:
            if revive:
                return False
            raise ApiError(f"API delete() {spec.name} with id {entity_id} does not exist")
        if state == (0 if revive else 1):
            return False
        self.store.set_retired(spec.name, entity_id, 0 if revive else 1)
        link = self.store.link_of(spec.name, entity_id)
        assert link is not None
        info = self.reader.fetch(spec.name, entity_id, ["project"]) or {}
        project = self._project_of(spec.name, link, info)
        if revive:
            self.events.show_entity(link)
        else:
            self.events.hide_entity(spec.name, entity_id)
        if actor.log_events:
            kind, word = ("Revival", "revived") if revive else ("Retirement", "retired")
            meta: dict[str, Any] = {
                "type": "entity_revival" if revive else "entity_retirement",
                "entity_type": spec.name,
                "entity_id": entity_id,
                "class_name": spec.name,
                "display_name": link["name"],
            }
            if not revive:
                meta["retirement_date"] = utc_now()
            self.events.record(
                actor,
                f"Shotgun_{spec.name}_{kind}",
                meta,
                entity=link,
                project=project,
                entity_visible=revive,
                description=f"{actor.who} {word} {spec.name} {link['name']}",
            )
        return True
