"""The HTTP side of files: upload forms, downloads, thumbnails and the transient placeholder.

The client posts uploads as forms (``/upload/upload_file``, ``/upload/publish_thumbnail``,
``/upload/share_thumbnail``) with its auth parameters among the fields, and reads the
first line of the reply: ``1:<attachment id>`` for success, ``2...`` for a thumbnail not
ready to share, anything else is an error it shows. Downloads
(``/file_serve/attachment/<id>``) check the ``_session_id`` cookie the client makes from
a session token when it arrives (the client cannot send it to a ``host:port`` address);
thumbnails are served by their signed URLs.
"""

from __future__ import annotations

import re
import struct
import urllib.parse
import zlib
from dataclasses import dataclass, field
from email.message import Message
from http.cookies import CookieError, SimpleCookie
from typing import TYPE_CHECKING

from .errors import ApiError
from .files import NotReadyError, Upload, content_type_of
from .urlfields import THUMBNAIL_PREFIX, TRANSIENT_THUMBNAIL, download_path

if TYPE_CHECKING:
    from .api import Api

UPLOAD_PREFIX = "/upload/"
_DOWNLOAD = re.compile(r"^" + re.escape(download_path(0)[:-1]) + r"(\d+)$")
_THUMB = re.compile(r"^" + re.escape(THUMBNAIL_PREFIX) + r"(\d+)/([A-Za-z0-9_-]+)$")
_DISPOSITION = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
AUTH_KEYS = (
    "script_name",
    "script_key",
    "user_login",
    "user_password",
    "session_token",
    "sudo_as_login",
    "session_uuid",
)


@dataclass
class Reply:
    """What the HTTP layer sends back for a file request."""

    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A plain PNG of one colour (the placeholder a real site shows while it works)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


PLACEHOLDER = _png(64, 36, (128, 128, 128))


def parse_form(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, Upload]]:
    """The text fields and files of a multipart or urlencoded form body."""
    header = Message()
    header["content-type"] = content_type
    if header.get_content_type() != "multipart/form-data":
        pairs = urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        return dict(pairs), {}
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise ApiError("upload: multipart form without a boundary")
    fields: dict[str, str] = {}
    files: dict[str, Upload] = {}
    for part in body.split(b"--" + boundary.encode())[1:]:
        if part.startswith(b"--"):
            break  # the closing delimiter
        head, sep, data = part.partition(b"\r\n\r\n")
        if not sep:
            raise ApiError("upload: a form part has no header")
        data = data.removesuffix(b"\r\n")
        lines = head.decode("utf-8", "replace").strip().split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}
        params = dict(_DISPOSITION.findall(headers.get("content-disposition", "")))
        name = params.get("name", "")
        if "filename" in params:
            filename = params["filename"].rsplit("/", 1)[-1] or "file"
            ctype = content_type_of(filename, headers.get("content-type"))
            files[name] = Upload(filename, ctype, data)
        else:
            fields[name] = data.decode("utf-8", "replace")
    return fields, files


def _entity_ref(text: str) -> tuple[str, int]:
    type_name, _, entity_id = text.rpartition("_")
    if not type_name or not entity_id.isdigit():
        raise ApiError(f"share_thumbnail: {text!r} is not Type_id")
    return type_name, int(entity_id)


def post(api: Api, path: str, content_type: str, body: bytes) -> Reply:
    """Answer an upload form the way a real site's upload endpoints answer."""
    action = path[len(UPLOAD_PREFIX) :]
    try:
        form, files = parse_form(content_type, body)
        with api.store.lock:
            actor = api.auth.authenticate({k: form[k] for k in AUTH_KEYS if k in form})
            api.store.caller = actor.caller
            if action == "share_thumbnail":
                targets = [_entity_ref(t) for t in form.get("entities", "").split(",") if t]
                source = _entity_ref(form.get("source_entity", ""))
                filmstrip = form.get("filmstrip_thumbnail") in ("1", "True")
                found = api.files.share(actor, targets, source, filmstrip)
            elif action in ("upload_file", "publish_thumbnail"):
                key = "file" if action == "upload_file" else "thumb_image"
                if key not in files:
                    raise ApiError(f"upload: the form has no {key!r} file")
                found = api.files.upload(actor, form, files[key], action == "publish_thumbnail")
            else:
                return Reply(404, f"0\nno upload endpoint {path!r}\n".encode())
    except NotReadyError as e:
        return Reply(200, f"2\n{e.message}\n".encode())
    except ApiError as e:
        return Reply(200, f"0\n{e.message}\n".encode())
    return Reply(200, f"1:{found}\n".encode())


def get(api: Api, path: str, cookie: str | None) -> Reply:
    """Serve a download, a thumbnail or the transient placeholder; 4xx otherwise."""
    if path == TRANSIENT_THUMBNAIL:
        return Reply(200, PLACEHOLDER, "image/png")
    thumb = _THUMB.match(path)
    download = _DOWNLOAD.match(path)
    with api.store.lock:
        if thumb is not None:
            stored = api.files.thumbnail(int(thumb.group(1)), thumb.group(2))
            if stored is None:
                return Reply(404, b"no such thumbnail\n")
        elif download is not None:
            # the client cannot send its session cookie to a host:port address (its cookie
            # names the port in the domain), so a download without one is served; a
            # cookie that is sent must be a live session
            session = _session_cookie(cookie)
            if session and api.auth.session_user(session) is None:
                return Reply(403, b"the _session_id cookie is not a live session\n")
            stored = api.files.download(int(download.group(1)))
            if stored is None:
                # what a real site answers for an attachment id it does not have
                return Reply(400, b"Attachment id doesn't exist\n")
        else:
            return Reply(404, f"nothing at {path!r}\n".encode())
    quoted = urllib.parse.quote(stored.name)
    return Reply(
        200,
        stored.path.read_bytes(),
        stored.content_type,
        {"Content-Disposition": f"attachment; filename*=UTF-8''{quoted}"},
    )


def _session_cookie(cookie: str | None) -> str:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(cookie or "")
    except CookieError:
        return ""
    morsel = jar.get("_session_id")
    return morsel.value if morsel is not None else ""
