"""Uploads, downloads and thumbnails kept in the site's folder, through the real client."""

from __future__ import annotations

import datetime
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import shotgun_api3

from shotgun_events.site import LocalSite
from shotgun_events.site.files import PROCESSING_SECONDS
from shotgun_events.site.fileserve import PLACEHOLDER

from .conftest import EVENT_FIELDS, MakeClient

#: shotgun_api3 leaves each uploaded file and upload response open (its own leak, not
#: the site's): those ResourceWarnings are not this module's subject.
pytestmark = [
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]
#: The site stores bytes as they come: any JPEG-looking content will do.
PICTURE = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    path = tmp_path / "Noël plate.jpg"
    path.write_bytes(PICTURE)
    return path


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read()


def _version(sg: shotgun_api3.Shotgun) -> dict[str, Any]:
    found = sg.find_one("Version", [], ["code", "project"])
    assert found is not None
    return found


def test_upload_to_a_file_field_then_download(
    site: LocalSite, sg: shotgun_api3.Shotgun, picture: Path, tmp_path: Path
) -> None:
    # Given a Version
    version = _version(sg)
    last = sg.find_one(
        "EventLogEntry", [], ["id"], order=[{"field_name": "id", "direction": "desc"}]
    )
    # When a movie is uploaded into its File/Link field, with tags
    attachment_id = sg.upload(
        "Version", version["id"], str(picture), "sg_uploaded_movie", tag_list="a, b"
    )
    # Then the field holds the upload as a real site returns it
    got = sg.find_one("Version", [["id", "is", version["id"]]], ["sg_uploaded_movie"])
    movie = got["sg_uploaded_movie"]
    assert movie["type"] == "Attachment" and movie["id"] == attachment_id
    assert movie["link_type"] == "upload" and movie["name"] == picture.name
    assert movie["content_type"] == "image/jpeg"
    assert movie["url"] == f"{site.url}/file_serve/attachment/{attachment_id}"
    # And the Attachment is linked to the Version, tagged, and its this_file is the same
    attachment = sg.find_one(
        "Attachment",
        [["id", "is", attachment_id]],
        ["this_file", "attachment_links", "tag_list", "file_size", "project"],
    )
    assert attachment["this_file"] == movie
    assert [(e["type"], e["id"]) for e in attachment["attachment_links"]] == [
        ("Version", version["id"])
    ]
    assert attachment["tag_list"] == ["a", "b"] and attachment["file_size"] == len(PICTURE)
    assert attachment["project"]["id"] == version["project"]["id"]
    # And the bytes come back whole, by id, by the field's value, and to a file
    assert sg.download_attachment(attachment_id) == PICTURE
    assert sg.download_attachment(movie) == PICTURE
    out = tmp_path / "copy.jpg"
    assert sg.download_attachment(attachment_id, file_path=str(out)) == str(out)
    assert out.read_bytes() == PICTURE
    # And they are kept in the site's folder, beside its database
    assert site.db_path is not None
    kept = list((site.db_path.parent / f"{site.db_path.stem}-files").rglob("*.jpg"))
    assert [p.read_bytes() for p in kept] == [PICTURE]
    # And the upload was logged like any create and change
    events = sg.find("EventLogEntry", [["id", "greater_than", last["id"]]], EVENT_FIELDS)
    kinds = {(e["event_type"], e["attribute_name"]) for e in events}
    assert ("Shotgun_Attachment_New", None) in kinds
    assert ("Shotgun_Version_Change", "sg_uploaded_movie") in kinds


def test_missing_attachments_and_stale_sessions_are_refused(
    site: LocalSite, sg: shotgun_api3.Shotgun
) -> None:
    # When an attachment that does not exist is downloaded, the client raises its error
    with pytest.raises(shotgun_api3.ShotgunFileDownloadError):
        sg.download_attachment(99999)
    # And a download with a session cookie that is no session is refused
    request = urllib.request.Request(
        f"{site.url}/file_serve/attachment/1", headers={"Cookie": "_session_id=forged"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403


@pytest.mark.parametrize(
    ("field", "fragment"),
    [("code", "is not a File/Link"), ("sg_nothing", "is not a File/Link")],
)
def test_uploads_into_fields_that_hold_no_file_fail(
    sg: shotgun_api3.Shotgun, picture: Path, field: str, fragment: str
) -> None:
    # When a file is uploaded into a field that is not a File/Link field
    with pytest.raises(shotgun_api3.ShotgunError, match=fragment):
        sg.upload("Version", _version(sg)["id"], str(picture), field)


def test_a_generic_upload_keeps_its_name_and_date(sg: shotgun_api3.Shotgun, picture: Path) -> None:
    # Given a Shot
    shot = sg.find_one("Shot", [], ["id"])
    when = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)
    # When a file is attached to it under another name, dated in the past
    attachment_id = sg.upload(
        "Shot", shot["id"], str(picture), display_name="plate", created_at=when
    )
    # Then the Attachment has that name and date, and links the shot
    got = sg.find_one(
        "Attachment", [["id", "is", attachment_id]], ["this_file", "created_at", "attachment_links"]
    )
    assert got["this_file"]["name"] == "plate"
    assert got["created_at"] == when
    assert [a["id"] for a in got["attachment_links"]] == [shot["id"]]


def test_upload_to_a_missing_entity_fails(sg: shotgun_api3.Shotgun, picture: Path) -> None:
    with pytest.raises(shotgun_api3.ShotgunError, match="does not exist"):
        sg.upload("Version", 99999, str(picture))


def test_a_thumbnail_is_transient_then_served_by_its_signed_url(
    site: LocalSite, sg: shotgun_api3.Shotgun, picture: Path
) -> None:
    # Given a Version
    version = _version(sg)
    # When a thumbnail is uploaded
    thumb_id = sg.upload_thumbnail("Version", version["id"], str(picture))
    # Then at first it reads as the transient placeholder, which is a PNG
    first = sg.find_one("Version", [["id", "is", version["id"]]], ["image"])["image"]
    assert first == f"{site.url}/images/status/transient/thumbnail_pending.png"
    assert _get(first) == (200, "image/png", PLACEHOLDER)
    # When the site has made it
    time.sleep(PROCESSING_SECONDS + 0.2)
    final = sg.find_one("Version", [["id", "is", version["id"]]], ["image"])["image"]
    # Then it is its own URL, served without a login, with the file's bytes and type
    assert final.startswith(f"{site.url}/thumbnail/{thumb_id}/")
    assert _get(final) == (200, "image/jpeg", PICTURE)
    # And a guessed URL is not served
    assert _get(f"{site.url}/thumbnail/{thumb_id}/guessed")[0] == 404


def test_thumbnails_in_create_filmstrips_sharing_and_clearing(
    sg: shotgun_api3.Shotgun, picture: Path
) -> None:
    # Given a Version created with a thumbnail and a filmstrip
    project = sg.find_one("Project", [], ["name"])
    version = sg.create("Version", {"code": "v", "project": project, "image": str(picture)})
    sg.update("Version", version["id"], {"filmstrip_image": str(picture)})
    got = sg.find_one("Version", [["id", "is", version["id"]]], ["image", "filmstrip_image"])
    assert got["image"] and got["filmstrip_image"]
    # And a project whose thumbnail is read through a link
    sg.upload_thumbnail("Project", project["id"], str(picture))
    deep = sg.find_one("Version", [["id", "is", version["id"]]], ["project.Project.image"])
    assert "images/status/transient" in deep["project.Project.image"]
    # When a thumbnail still being made is shared, the client is told it is not ready
    shot = sg.find_one("Shot", [], ["id"])
    with pytest.raises(shotgun_api3.ShotgunThumbnailNotReady):
        sg.share_thumbnail([shot], source_entity=version)
    # When it is ready, sharing gives the shot the same file
    time.sleep(PROCESSING_SECONDS + 0.2)
    shared = sg.share_thumbnail([shot], source_entity=version)
    a = sg.find_one("Version", [["id", "is", version["id"]]], ["image"])["image"]
    b = sg.find_one("Shot", [["id", "is", shot["id"]]], ["image"])["image"]
    assert a == b and f"/thumbnail/{shared}/" in a
    # And image fields filter on having one or not, and nothing else
    with_image = sg.find("Version", [["image", "is_not", None]], ["id"])
    assert version["id"] in {v["id"] for v in with_image}
    with pytest.raises(shotgun_api3.Fault, match="image field"):
        sg.find("Version", [["image", "is", "http://x"]])
    # When the thumbnail is cleared, the filmstrip goes with it and the reply is the field
    reply = sg.update("Version", version["id"], {"image": None})
    assert reply == {"type": "Version", "id": version["id"], "image": None}
    got = sg.find_one("Version", [["id", "is", version["id"]]], ["image", "filmstrip_image"])
    assert got["image"] is None and got["filmstrip_image"] is None
    # And a thumbnail can only be uploaded, never written as a value
    with pytest.raises(shotgun_api3.Fault, match="image field"):
        sg._call_rpc(
            "update",
            {
                "type": "Version",
                "id": version["id"],
                "fields": [{"field_name": "image", "value": "x"}],
            },
        )


def test_url_fields_take_web_and_local_links(make_sg: MakeClient) -> None:
    # Given a storage and a Version
    sg = make_sg()
    sg.create("LocalStorage", {"code": "prod", "linux_path": "/mnt/prod", "windows_path": "P:\\"})
    version = _version(sg)
    # When a web link and then a local file are written to its File/Link field
    sg.update("Version", version["id"], {"sg_uploaded_movie": {"url": "https://x.test/m.mov"}})
    web = sg.find_one("Version", [["id", "is", version["id"]]], ["sg_uploaded_movie"])
    sg.update("Version", version["id"], {"sg_uploaded_movie": {"local_path": "/mnt/prod/a/m.mov"}})
    local = sg.find_one("Version", [["id", "is", version["id"]]], ["sg_uploaded_movie"])
    # Then each reads back as a real site shapes it
    assert web["sg_uploaded_movie"]["link_type"] == "web"
    assert web["sg_uploaded_movie"]["name"] == "https://x.test/m.mov"
    movie = local["sg_uploaded_movie"]
    assert movie["link_type"] == "local" and movie["name"] == "m.mov"
    assert movie["local_path_linux"] == "/mnt/prod/a/m.mov"
    assert movie["local_path_windows"] == "P:\\a\\m.mov"
    assert movie["local_storage"]["name"] == "prod"
    # And a path under no storage, or a value of another shape, is refused
    with pytest.raises(shotgun_api3.Fault, match="under no LocalStorage"):
        sg.update("Version", version["id"], {"sg_uploaded_movie": {"local_path": "/elsewhere/m"}})
    with pytest.raises(shotgun_api3.Fault, match="sg_uploaded_movie"):
        sg.update("Version", version["id"], {"sg_uploaded_movie": "https://x.test/m.mov"})
    # And url fields cannot be filtered on, as on a real site
    with pytest.raises(shotgun_api3.Fault, match="cannot be filtered"):
        sg.find("Version", [["sg_uploaded_movie", "is", None]])
