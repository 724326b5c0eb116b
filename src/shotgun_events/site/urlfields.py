"""Values of url (File/Link) fields: web links, local files and uploaded files.

A real site takes ``{"url": ..., "name"?: ...}`` (a web link), ``{"local_path": ...}``
(a file under one of its LocalStorages) or ``{"type": "Attachment", "id": N}`` (an
uploaded file), and returns each with its ``link_type``; an upload's ``url`` is the
site's download address for it (made absolute when read, see query.py).
"""

from __future__ import annotations

import mimetypes
import posixpath
from typing import Any

from .errors import ApiError
from .specs import FieldSpec
from .store import Store

#: Where a thumbnail's URL points while the site is still making it, as on a real site.
TRANSIENT_THUMBNAIL = "/images/status/transient/thumbnail_pending.png"
#: Thumbnails are served at THUMBNAIL_PREFIX + "<id>/<token>": signed URLs, no login needed.
THUMBNAIL_PREFIX = "/thumbnail/"


def download_path(attachment_id: int) -> str:
    """Where the site serves an uploaded file (relative to its base URL)."""
    return f"/file_serve/attachment/{attachment_id}"


def upload_link(store: Store, attachment_id: int) -> dict[str, Any] | None:
    """The url value of an uploaded file, or None when there is no such upload."""
    row = store.conn.execute(
        "SELECT f.content_type, n.name FROM files f JOIN names n ON n.type = 'Attachment'"
        " AND n.id = f.id WHERE f.id = ?",
        (attachment_id,),
    ).fetchone()
    if row is None:
        return None
    return {
        "content_type": row[0],
        "id": attachment_id,
        "link_type": "upload",
        "name": row[1],
        "type": "Attachment",
        "url": download_path(attachment_id),
    }


def _under(root: str | None, rest: str, windows: bool) -> str | None:
    """``rest`` (with ``/``) under a storage root, in that platform's separators."""
    if not root:
        return None
    return root.rstrip("/\\") + (rest.replace("/", "\\") if windows else rest)


def _local(store: Store, where: str, value: dict[str, Any]) -> dict[str, Any]:
    path = value["local_path"]
    if not isinstance(path, str) or not path:
        raise ApiError(f"API {where}: local_path must be a non-empty string")
    roots = {"linux": "linux_path", "mac": "mac_path", "windows": "windows_path"}
    rows = store.conn.execute(
        'SELECT id, code, linux_path, mac_path, windows_path FROM "LocalStorage" WHERE retired = 0'
    ).fetchall()
    for storage_id, code, *paths in rows:
        for os_name, root in zip(roots, paths, strict=True):
            if root and (path == root or path.startswith(root.rstrip("/\\") + "/")):
                rest = path[len(root.rstrip("/\\")) :].replace("\\", "/")
                local = {
                    f"local_path_{name}": _under(p, rest, name == "windows")
                    for name, p in zip(roots, paths, strict=True)
                }
                name = value.get("name") or posixpath.basename(path)
                return {
                    "content_type": value.get("content_type") or mimetypes.guess_type(path)[0],
                    "link_type": "local",
                    "local_path": local[f"local_path_{os_name}"],
                    **local,
                    "local_storage": {"type": "LocalStorage", "id": storage_id, "name": code},
                    "name": name,
                    "url": "file://" + path,
                }
    raise ApiError(f"API {where}: local_path '{path}' is under no LocalStorage of this site")


def url_value(store: Store, method: str, type_name: str, f: FieldSpec, value: Any) -> Any:
    """A url field's value as the site keeps it, or a fault naming the field."""
    where = f"{method}() {type_name}.{f.name}"
    if not isinstance(value, dict):
        raise ApiError(f"API {where} takes a url, local_path or Attachment object; got {value!r}")
    if "url" in value:
        url = value["url"]
        if not isinstance(url, str) or not url:
            raise ApiError(f"API {where}: url must be a non-empty string")
        return {
            "content_type": value.get("content_type"),
            "link_type": "web",
            "name": value.get("name") or url,
            "url": url,
        }
    if "local_path" in value:
        return _local(store, where, value)
    attachment_id = value.get("id")
    if value.get("type") == "Attachment" and isinstance(attachment_id, int):
        link = upload_link(store, attachment_id)
        if link is None:
            raise ApiError(f"API {where}: Attachment {attachment_id} is no uploaded file")
        return link
    raise ApiError(f"API {where} takes a url, local_path or Attachment object; got {value!r}")
