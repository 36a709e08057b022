"""Media: uploads typed by content, stored under the media folder or in S3 (moto's server), and
downloads with ETags and byte ranges."""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import anyio
import asyncpg
import msgspec
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from litestar.testing import AsyncTestClient

from omnistream.app import create_app
from omnistream.config import Settings
from omnistream.media import service as media
from tests.conftest import Tenant, create_agent, problem, register
from tests.standins import S3StandIn

MAX_BYTES = 64 * 1024


def png(width: int = 2, height: int = 2) -> bytes:
    """A real PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def windows_program() -> bytes:
    """The head of a Windows executable (an MZ header pointing at a PE signature)."""
    head = bytearray(b"MZ" + b"\x90\x00" * 29 + b"\x00" * 2)
    head += b"\x00" * (0x3C - len(head)) + struct.pack("<I", 0x80)
    head += b"\x00" * (0x80 - len(head)) + b"PE\x00\x00" + b"\x4c\x01" + b"\x00" * 200
    return bytes(head)


def pdf() -> bytes:
    return b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n" + os.urandom(3000)


@pytest.fixture
def media_settings(settings: Settings, s3_stand_in: S3StandIn) -> Settings:
    bucket = f"media-{uuid4().hex[:12]}"
    s3_stand_in.client().create_bucket(Bucket=bucket)
    return msgspec.structs.replace(settings, media_max_bytes=MAX_BYTES, **s3_stand_in.settings(bucket))


@pytest.fixture
async def api(media_settings: Settings) -> AsyncIterator[AsyncTestClient]:
    async with AsyncTestClient(app=create_app(media_settings)) as test_client:
        yield test_client


@pytest.fixture
async def org(api: AsyncTestClient) -> Tenant:
    return await register(api)


async def upload(
    api: AsyncTestClient,
    who: Tenant | dict[str, Any],
    data: bytes,
    name: str = "file.bin",
    *,
    path: str = "/api/media/upload",
    content_type: str = "application/octet-stream",
    fields: dict[str, str] | None = None,
) -> Any:
    headers = who.headers if isinstance(who, Tenant) else who["headers"]
    return await api.post(path, files={"file": (name, data, content_type)}, data=fields or {}, headers=headers)


async def rows(database: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database)
    try:
        return await conn.fetch("SELECT * FROM media_files ORDER BY created_at")
    finally:
        await conn.close()


def stored_files(settings: Settings) -> list[Path]:
    root = Path(settings.media_root)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def test_upload_and_download_round_trip(api: AsyncTestClient, org: Tenant, media_settings: Settings) -> None:
    data = png(8, 8)
    response = await upload(api, org, data, "logo.png", content_type="image/png")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["mime_type"] == "image/png"
    assert body["size_bytes"] == len(data)
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["filename"] == "logo.png"
    assert body["storage"] == "local"
    assert body["key"] is None
    assert body["url"] == f"/api/media/{body['id']}"

    # Kept under <media root>/<tenant>/<id>, whatever the client named it.
    assert stored_files(media_settings) == [Path(media_settings.media_root) / org.id / body["id"]]

    got = await api.get(body["url"], headers=org.headers)
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["content-type"] == "image/png"
    assert got.headers["etag"] == f'"{body["sha256"]}"'
    assert got.headers["accept-ranges"] == "bytes"
    assert got.headers["content-disposition"].startswith("inline;")
    assert 'filename="logo.png"' in got.headers["content-disposition"]

    # The ETag held is current: nothing to send again.
    again = await api.get(body["url"], headers={**org.headers, "If-None-Match": got.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""


async def test_a_png_named_txt_is_an_image(api: AsyncTestClient, org: Tenant) -> None:
    response = await upload(api, org, png(), "notes.txt", content_type="text/plain")
    assert response.status_code == 201, response.text
    assert response.json()["mime_type"] == "image/png"


async def test_a_program_named_png_is_refused_and_nothing_kept(
    api: AsyncTestClient, org: Tenant, media_settings: Settings, database: str
) -> None:
    body = problem(await upload(api, org, windows_program(), "cat.png", content_type="image/png"), 422)
    assert "application/x-msdownload" in body["detail"]
    assert await rows(database) == []
    assert stored_files(media_settings) == []


@pytest.mark.parametrize(
    ("data", "name", "expected"),
    [
        (b"hello, world\n", "hello.png", "text/plain"),
        (b"name,email\nAda,ada@example.com\n", "people.csv", "text/csv"),
        (b'{"order": 42, "items": [1, 2]}', "order.txt", "application/json"),
        ("Grüße aus Köln".encode(), "greeting", "text/plain"),
    ],
)
async def test_text_is_told_by_being_utf8(
    api: AsyncTestClient, org: Tenant, data: bytes, name: str, expected: str
) -> None:
    response = await upload(api, org, data, name)
    assert response.status_code == 201, response.text
    assert response.json()["mime_type"] == expected


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xfe\x00\x01binary that is no known type" * 10,  # neither a signature nor UTF-8
        b"PK\x03\x04" + b"\x00" * 100,  # a bare zip archive
        b"",
    ],
)
async def test_unknown_archive_or_empty_content_is_refused(
    api: AsyncTestClient, org: Tenant, database: str, data: bytes
) -> None:
    problem(await upload(api, org, data, "document.pdf", content_type="application/pdf"), 422)
    assert await rows(database) == []


async def test_office_documents_and_pdf_are_accepted(api: AsyncTestClient, org: Tenant) -> None:
    response = await upload(api, org, pdf(), "invoice")
    assert response.status_code == 201, response.text
    assert response.json()["mime_type"] == "application/pdf"
    got = await api.get(response.json()["url"], headers=org.headers)
    assert got.headers["content-type"] == "application/pdf"


async def test_over_the_limit_is_413_and_stores_nothing(
    api: AsyncTestClient, org: Tenant, media_settings: Settings, database: str
) -> None:
    too_big = png() + b"\x00" * MAX_BYTES
    problem(await upload(api, org, too_big, "big.png"), 413)
    problem(await upload(api, org, too_big, "big.png", path="/api/media/s3"), 413)
    assert await rows(database) == []
    assert stored_files(media_settings) == []

    # Exactly at the limit is fine.
    at_limit = png() + b"\x00" * (MAX_BYTES - len(png()))
    response = await upload(api, org, at_limit, "limit.png")
    assert response.status_code == 201, response.text
    assert response.json()["size_bytes"] == MAX_BYTES


async def test_a_body_streamed_past_the_limit_without_a_length_is_413(
    api: AsyncTestClient, org: Tenant, database: str
) -> None:
    """A chunked body names no length: it is cut off once past the limit, not read to its end."""
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    chunks = [head + png(), *(b"\x00" * (16 * 1024) for _ in range(40)), f"\r\n--{boundary}--\r\n".encode()]
    incoming = [{"type": "http.request", "body": chunk, "more_body": True} for chunk in chunks]
    incoming.append({"type": "http.request", "body": b"", "more_body": False})
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    # Straight to the app (on the client's event loop): the test client's transport always sends a
    # Content-Length.
    headers = [
        (b"authorization", org.headers["Authorization"].encode()),
        (b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
        (b"transfer-encoding", b"chunked"),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/media/upload",
        "raw_path": b"/api/media/upload",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
    }
    await anyio.to_thread.run_sync(api.blocking_portal.call, api.app, scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 413
    assert len(incoming) > 30  # most of the body was never read
    assert await rows(database) == []


async def test_missing_file_is_400(api: AsyncTestClient, org: Tenant) -> None:
    problem(await api.post("/api/media/upload", data={"filename": "x.png"}, headers=org.headers), 400)
    problem(await api.post("/api/media/upload", json={"file": "aGVsbG8="}, headers=org.headers), 400)


async def test_filename_is_kept_as_a_name_only(api: AsyncTestClient, org: Tenant, media_settings: Settings) -> None:
    response = await upload(api, org, png(), "x.png", fields={"filename": "../../etc/pass\x07wd.png"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["filename"] == "passwd.png"
    assert stored_files(media_settings) == [Path(media_settings.media_root) / org.id / body["id"]]

    response = await upload(api, org, png(), "Übersicht «Q1».png")
    got = await api.get(response.json()["url"], headers=org.headers)
    disposition = got.headers["content-disposition"]
    assert disposition.isascii()
    assert "filename*=UTF-8''%C3%9Cbersicht%20%C2%ABQ1%C2%BB.png" in disposition


async def test_text_downloads_as_an_attachment(api: AsyncTestClient, org: Tenant) -> None:
    response = await upload(api, org, b"<html><script>alert(1)</script></html>", "page.html")
    assert response.json()["mime_type"] == "text/plain"
    got = await api.get(response.json()["url"], headers=org.headers)
    assert got.headers["content-type"].startswith("text/plain")
    assert got.headers["content-disposition"].startswith("attachment;")
    assert got.headers["x-content-type-options"] == "nosniff"


@pytest.fixture
async def stored(api: AsyncTestClient, org: Tenant) -> tuple[str, bytes]:
    data = pdf()
    response = await upload(api, org, data, "ranges.pdf")
    assert response.status_code == 201, response.text
    return response.json()["url"], data


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=st.integers(min_value=0, max_value=4000), length=st.integers(min_value=1, max_value=4000))
async def test_byte_ranges(
    api: AsyncTestClient, org: Tenant, stored: tuple[str, bytes], first: int, length: int
) -> None:
    url, data = stored
    last = first + length - 1
    response = await api.get(url, headers={**org.headers, "Range": f"bytes={first}-{last}"})
    if first >= len(data):
        problem(response, 416)
        assert response.headers["content-range"] == f"bytes */{len(data)}"
        return
    assert response.status_code == 206
    end = min(last, len(data) - 1)
    assert response.content == data[first : end + 1]
    assert response.headers["content-range"] == f"bytes {first}-{end}/{len(data)}"
    assert int(response.headers["content-length"]) == end - first + 1


@hypothesis_settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(suffix=st.integers(min_value=1, max_value=6000))
async def test_suffix_and_open_ranges(
    api: AsyncTestClient, org: Tenant, stored: tuple[str, bytes], suffix: int
) -> None:
    url, data = stored
    tail = await api.get(url, headers={**org.headers, "Range": f"bytes=-{suffix}"})
    assert tail.status_code == 206
    assert tail.content == data[-suffix:]
    start = min(suffix, len(data) - 1)
    rest = await api.get(url, headers={**org.headers, "Range": f"bytes={start}-"})
    assert rest.status_code == 206
    assert rest.content == data[start:]


async def test_ranges_that_are_not_one_byte_range_get_the_whole(
    api: AsyncTestClient, org: Tenant, stored: tuple[str, bytes]
) -> None:
    url, data = stored
    for header in ("bytes=0-1,5-6", "items=0-5", "bytes=9-3", "garbage"):
        response = await api.get(url, headers={**org.headers, "Range": header})
        assert response.status_code == 200, header
        assert response.content == data
    problem(await api.get(url, headers={**org.headers, "Range": "bytes=-0"}), 416)
    # A range on another version than the one held: the whole file.
    stale = await api.get(url, headers={**org.headers, "Range": "bytes=0-9", "If-Range": '"stale"'})
    assert stale.status_code == 200
    assert stale.content == data
    etag = stale.headers["etag"]
    fresh = await api.get(url, headers={**org.headers, "Range": "bytes=0-9", "If-Range": etag})
    assert fresh.status_code == 206
    assert fresh.content == data[:10]


async def test_another_tenants_media_is_404(api: AsyncTestClient, org: Tenant, stored: tuple[str, bytes]) -> None:
    url, _ = stored
    other = await register(api)
    problem(await api.get(url, headers=other.headers), 404)
    problem(await api.get(f"/api/media/{uuid4()}", headers=org.headers), 404)


async def test_agents_upload_and_download(api: AsyncTestClient, org: Tenant) -> None:
    agent = await create_agent(api, org)
    response = await upload(api, agent, png(), "mine.png")
    assert response.status_code == 201, response.text
    assert (await api.get(response.json()["url"], headers=agent["headers"])).status_code == 200
    problem(await api.get(response.json()["url"]), 401)


async def test_a_role_without_media_permissions_is_refused(
    api: AsyncTestClient, org: Tenant, stored: tuple[str, bytes]
) -> None:
    url, _ = stored
    role = await api.post(
        "/api/roles",
        json={"name": "No media", "base_role": "agent", "permissions": ["conversations.read"]},
        headers=org.headers,
    )
    assert role.status_code == 201, role.text
    agent = await create_agent(api, org, role_id=role.json()["id"])
    assert "media.read" in problem(await api.get(url, headers=agent["headers"]), 403)["detail"]
    assert "media.write" in problem(await upload(api, agent, png(), "x.png"), 403)["detail"]


async def test_s3_round_trip(
    api: AsyncTestClient, org: Tenant, media_settings: Settings, s3_stand_in: S3StandIn, database: str
) -> None:
    data = pdf()
    response = await upload(api, org, data, "contract.pdf", path="/api/media/s3")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["storage"] == "s3"
    assert body["bucket"] == media_settings.s3_bucket
    assert body["key"] == f"{org.id}/{body['id']}"
    assert body["sha256"] == hashlib.sha256(data).hexdigest()

    # The object is in the bucket, byte for byte; nothing on the local store.
    stored = s3_stand_in.client().get_object(Bucket=media_settings.s3_bucket, Key=body["key"])
    assert stored["Body"].read() == data
    assert stored["ContentType"] == "application/pdf"
    assert stored_files(media_settings) == []
    (row,) = await rows(database)
    assert (row["storage"], row["bucket"], row["storage_key"]) == ("s3", media_settings.s3_bucket, body["key"])

    got = await api.get(body["url"], headers=org.headers)
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["etag"] == f'"{body["sha256"]}"'
    part = await api.get(body["url"], headers={**org.headers, "Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"

    problem(await upload(api, org, windows_program(), "x.pdf", path="/api/media/s3"), 422)
    assert len(await rows(database)) == 1


async def test_s3_not_configured_is_422(settings: Settings, database: str) -> None:
    async with AsyncTestClient(app=create_app(settings)) as api:
        org = await register(api)
        body = problem(await upload(api, org, png(), "x.png", path="/api/media/s3"), 422)
        assert "not configured" in body["detail"]
    assert await rows(database) == []


async def test_s3_failure_is_502_and_stores_nothing(media_settings: Settings, database: str) -> None:
    missing_bucket = msgspec.structs.replace(media_settings, s3_bucket=f"absent-{uuid4().hex[:8]}")
    async with AsyncTestClient(app=create_app(missing_bucket)) as api:
        org = await register(api)
        problem(await upload(api, org, png(), "x.png", path="/api/media/s3"), 502)
    assert await rows(database) == []


async def test_store_inbound(db: Any, media_settings: Settings, api: AsyncTestClient, org: Tenant) -> None:
    data = png(3, 3)
    media_id = await media.store_inbound(db, media_settings, UUID(org.id), data, "image/jpeg", "photo.jpg")
    assert (Path(media_settings.media_root) / org.id / str(media_id)).read_bytes() == data
    got = await api.get(f"/api/media/{media_id}", headers=org.headers)
    assert got.status_code == 200
    assert got.content == data
    # The content says PNG, whatever the provider said.
    assert got.headers["content-type"] == "image/png"

    # Without a signature the provider's type is the label, and it downloads as an attachment.
    voice = await media.store_inbound(db, media_settings, UUID(org.id), b"<b>hi</b>", "text/html", "")
    got = await api.get(f"/api/media/{voice}", headers=org.headers)
    assert got.content == b"<b>hi</b>"
    assert got.headers["content-disposition"].startswith("attachment;")


def test_byte_range_parsing() -> None:
    assert media.byte_range(None, 10) is None
    assert media.byte_range("bytes=0-0", 10) == (0, 0)
    assert media.byte_range("bytes=5-", 10) == (5, 9)
    assert media.byte_range("bytes=-3", 10) == (7, 9)
    assert media.byte_range("bytes=-30", 10) == (0, 9)
    assert media.byte_range("bytes=2-100", 10) == (2, 9)
    with pytest.raises(media.RangeNotSatisfiable):
        media.byte_range("bytes=10-", 10)
    with pytest.raises(media.RangeNotSatisfiable):
        media.byte_range("bytes=0-5", 0)
