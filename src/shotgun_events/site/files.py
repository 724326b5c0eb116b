"""Uploaded files: attachments and thumbnails, kept in the site's files folder.

An upload (``upload``, ``upload_thumbnail``, ``upload_filmstrip_thumbnail``, an
``image`` in create/update) makes an Attachment whose ``this_file`` is the upload,
logged like any create. A file upload can fill a url field of the entity and is
linked to it (``attachment_links``); a thumbnail fills ``image`` or
``filmstrip_image``. A thumbnail reads as the transient placeholder URL for
PROCESSING_SECONDS, as a real site's does while it resizes the image, then as its own
signed URL (no login needed); files are downloaded by Attachment id.
"""

from __future__ import annotations

import datetime as _dt
import mimetypes
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ApiError
from .eventlog import Actor
from .schema import Schema
from .store import Store, q
from .writes import Writer

#: How long a new thumbnail shows as the transient placeholder (a real site takes a few
#: seconds to make one; the official client's tests wait for the placeholder).
PROCESSING_SECONDS = 2.0


@dataclass(frozen=True)
class Upload:
    """One file sent with an upload form."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Stored:
    """A file the site keeps: its name, content type and where its bytes are."""

    name: str
    content_type: str
    path: Path


class NotReadyError(ApiError):
    """A thumbnail still being made cannot be shared yet (the client raises NotReady)."""


def _stamp(seconds: float = 0.0) -> str:
    when = _dt.datetime.now(_dt.UTC) + _dt.timedelta(seconds=seconds)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"  # as strftime('%f') in SQLite


def _utc(text: str) -> str:
    """An ISO date-time (from the client's ``created_at.isoformat()``) in the wire format."""
    try:
        when = _dt.datetime.fromisoformat(text)
    except ValueError as e:
        raise ApiError(f"upload: created_at {text!r} is not an ISO date-time") from e
    if when.tzinfo is None:
        when = when.astimezone()  # the client's local time, as the client sent it
    return when.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Files:
    """Keeps uploads in ``folder``; callers hold the store lock."""

    def __init__(self, store: Store, schema: Schema, writer: Writer, folder: Path) -> None:
        """Keep the bytes of uploads under ``folder`` (made when the first file arrives)."""
        self.store = store
        self.schema = schema
        self.writer = writer
        self.folder = folder

    def upload(
        self,
        actor: Actor,
        form: dict[str, str],
        upload: Upload,
        thumbnail: bool,
    ) -> int:
        """Store an upload form's file; returns the new Attachment's id."""
        entity_type = form.get("entity_type", "")
        spec = self.schema.entity(entity_type)
        try:
            entity_id = int(form.get("entity_id", ""))
        except ValueError:
            entity_id = 0
        if spec is None or self.store.state_of(entity_type, entity_id) != 0:
            raise ApiError(f"upload: {entity_type} with id {form.get('entity_id')} does not exist")
        if not upload.data:
            raise ApiError(f"upload: {upload.filename} is empty")
        if thumbnail:
            field = "filmstrip_image" if form.get("filmstrip") in ("True", "1") else "image"
            kind = field
        else:
            field = form.get("field_name", "")
            kind = "attachment"
        f = spec.fields.get(field) if field else None
        wanted = "image" if thumbnail else "url"
        if field and (f is None or f.data_type != wanted):
            what = "an image" if thumbnail else "a File/Link (url)"
            raise ApiError(f"upload: {entity_type}.{field} is not {what} field")
        with self.store.transaction():
            attachment_id = self._attachment(actor, form, upload, spec.name, entity_id, thumbnail)
            path = self._write(attachment_id, upload)
            try:
                ready = _stamp(PROCESSING_SECONDS if thumbnail else 0.0)
                self.store.conn.execute(
                    "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        attachment_id,
                        secrets.token_urlsafe(16),
                        upload.filename,
                        upload.content_type,
                        len(upload.data),
                        str(path.relative_to(self.folder)),
                        kind,
                        ready,
                    ),
                )
                link = {"type": "Attachment", "id": attachment_id}
                self.writer.update(actor, "Attachment", attachment_id, [_item("this_file", link)])
                if thumbnail:
                    item = _item(field, attachment_id)
                    self.writer.update(actor, spec.name, entity_id, [item], server=True)
                elif field:
                    self.writer.update(actor, spec.name, entity_id, [_item(field, link)])
            except BaseException:
                shutil.rmtree(path.parent, ignore_errors=True)
                raise
        return attachment_id

    def _attachment(
        self,
        actor: Actor,
        form: dict[str, str],
        upload: Upload,
        entity_type: str,
        entity_id: int,
        thumbnail: bool,
    ) -> int:
        display = form.get("display_name") or upload.filename
        tags = [t.strip() for t in form.get("tag_list", "").split(",") if t.strip()]
        items = [
            _item("filename", display),
            _item("original_fname", upload.filename),
            _item("file_size", len(upload.data)),
            _item("file_extension", Path(upload.filename).suffix.lstrip(".").lower() or None),
        ]
        fields = self.schema.entities["Attachment"].fields
        if tags and "tag_list" in fields:
            items.append(_item("tag_list", tags))
        if not thumbnail:
            items.append(_item("attachment_links", [self.store.link_of(entity_type, entity_id)]))
        if "project" in fields:
            items.append(_item("project", self._project(entity_type, entity_id)))
        created = self.writer.create(actor, "Attachment", items, ["id"], server=True)
        attachment_id = int(created["id"])
        if form.get("created_at"):
            self.store.conn.execute(
                'UPDATE "Attachment" SET created_at = ? WHERE id = ?',
                (_utc(form["created_at"]), attachment_id),
            )
        return attachment_id

    def _project(self, entity_type: str, entity_id: int) -> dict[str, Any] | None:
        if entity_type == "Project":
            return self.store.link_of("Project", entity_id)
        if self.schema.field(entity_type, "project") is None:
            return None
        row = self.store.conn.execute(
            f'SELECT "project__id" FROM {q(entity_type)} WHERE id = ?', (entity_id,)
        ).fetchone()
        return self.store.link_of("Project", row[0]) if row and row[0] else None

    def _write(self, attachment_id: int, upload: Upload) -> Path:
        folder = self.folder / str(attachment_id)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / ("file" + Path(upload.filename).suffix.lower())
        path.write_bytes(upload.data)
        return path

    def share(
        self, actor: Actor, targets: list[tuple[str, int]], source: tuple[str, int], filmstrip: bool
    ) -> int:
        """Give ``targets`` the thumbnail (or filmstrip) of ``source``; returns its id."""
        field = "filmstrip_image" if filmstrip else "image"
        row = None
        if self.schema.field(source[0], field) is not None:
            row = self.store.conn.execute(
                f"SELECT f.id, f.ready_at FROM {q(source[0])} e JOIN files f"
                f" ON f.id = e.{q(field)} WHERE e.id = ? AND e.retired = 0",
                (source[1],),
            ).fetchone()
        if row is None:
            raise ApiError(f"source_entity {source[0]} {source[1]} has no {field} to share")
        if row[1] > _stamp():
            raise NotReadyError(
                "source_entity image is a transient thumbnail that cannot be shared."
                " Try again later, when the final thumbnail is available"
            )
        with self.store.transaction():
            for type_name, entity_id in targets:
                if self.schema.field(type_name, field) is None:
                    raise ApiError(f"share_thumbnail: {type_name} has no {field} field")
                if self.store.state_of(type_name, entity_id) != 0:
                    raise ApiError(f"share_thumbnail: {type_name} {entity_id} does not exist")
                item = _item(field, row[0])
                self.writer.update(actor, type_name, entity_id, [item], server=True)
        return int(row[0])

    def download(self, attachment_id: int) -> Stored | None:
        """An active Attachment's uploaded file, or None."""
        return self._stored(attachment_id, None)

    def thumbnail(self, attachment_id: int, token: str) -> Stored | None:
        """A thumbnail by its signed URL (id and token), or None."""
        return self._stored(attachment_id, token)

    def _stored(self, attachment_id: int, token: str | None) -> Stored | None:
        row = self.store.conn.execute(
            "SELECT f.name, f.content_type, f.stored, f.token FROM files f"
            " JOIN names n ON n.type = 'Attachment' AND n.id = f.id AND n.retired = 0"
            " WHERE f.id = ?",
            (attachment_id,),
        ).fetchone()
        if row is None or (token is not None and not secrets.compare_digest(row[3], token)):
            return None
        path = self.folder / row[2]
        return Stored(row[0], row[1], path) if path.is_file() else None


def content_type_of(filename: str, sent: str | None) -> str:
    """The content type an upload is served with: as sent, else guessed from its name."""
    if sent and sent != "application/octet-stream":
        return sent
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def _item(name: str, value: Any) -> dict[str, Any]:
    return {"field_name": name, "value": value}
