"""Media: files agents upload and customers send, on the local media folder or in an S3 bucket.

A file's type is told by its content (`filetype`'s magic numbers), never by its name or the
uploader's content type: a PNG named `.txt` is an image, a program named `.png` is refused. Content
with no magic number is text when it is valid UTF-8 (JSON when it parses as JSON, CSV when its name
says so); anything else without a known signature is refused. Only the types of `ALLOWED_TYPES` are
kept from uploads. Bytes are stored under `<media root>/<tenant>/<uuid>` (or `<tenant>/<uuid>` in
the bucket): never a path a client chose.

Other areas call `store_inbound` for customers' media (webhooks, email).
"""

from __future__ import annotations

import codecs
import hashlib
import os
import re
import tempfile
import unicodedata
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote
from uuid import UUID, uuid4

import anyio
import filetype
import msgspec
import structlog
from litestar.datastructures import UploadFile

from omnistream.activity import service as activity
from omnistream.config import Settings
from omnistream.db import Database
from omnistream.errors import AppError, BadGateway, NotFound, PayloadTooLarge, Unprocessable, not_found
from omnistream.media import repository
from omnistream.media.schemas import MediaFile, StoredMedia
from omnistream.security.principal import Actor

log = structlog.get_logger(__name__)

CHUNK_BYTES = 1024 * 1024
SNIFF_BYTES = 8192  # as much of the head as filetype's matchers look at
MAX_FILENAME = 255
FORM_OVERHEAD_BYTES = 64 * 1024
"""What a multipart body may carry besides the file (boundaries, part headers, the filename field)."""

IMAGE_TYPES = {
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "image/heic",
    "image/avif",
    "image/bmp",
    "image/tiff",
}
AUDIO_TYPES = {"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg", "audio/x-wav", "audio/x-flac"}
VIDEO_TYPES = {"video/mp4", "video/3gpp", "video/quicktime", "video/webm", "video/mpeg", "video/x-m4v"}
DOCUMENT_TYPES = {
    "application/pdf",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.presentation",
    "application/rtf",
}
TEXT_TYPES = {"text/plain", "text/csv", "application/json"}
ALLOWED_TYPES = frozenset(IMAGE_TYPES | AUDIO_TYPES | VIDEO_TYPES | DOCUMENT_TYPES | TEXT_TYPES)
# Shown in the browser; everything else downloads (an inbound file named as HTML never renders here).
INLINE_TYPES = frozenset(IMAGE_TYPES | AUDIO_TYPES | VIDEO_TYPES | {"application/pdf"})
UNKNOWN_TYPE = "application/octet-stream"
_MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")


class RangeNotSatisfiable(AppError):
    status_code = 416
    title = "Range not satisfiable"


class StorageUnavailable(AppError):
    """A file kept in S3 while S3 storage is no longer configured on this deployment."""

    status_code = 503
    title = "Service unavailable"


# ---------------------------------------------------------------- for other areas


async def store_inbound(
    db: Database, settings: Settings, tenant_id: UUID, data: bytes, mime_type: str, filename: str
) -> UUID:
    """Keep a customer's media (already fetched, and bounded by the caller) on the local store.

    Nothing is refused: the customer sent it. Its type is still read from the content where it
    has a signature; otherwise the provider's type is kept as a label, and the download serves
    anything outside the inline types as an attachment."""
    media_id = uuid4()
    detected = filetype.guess_mime(data[:SNIFF_BYTES]) if data else None
    given = mime_type.strip().lower()
    kind = detected or (given if _MEDIA_TYPE.match(given) else UNKNOWN_TYPE)
    key = _storage_key(tenant_id, media_id)
    path = _local_path(settings, key)
    await anyio.to_thread.run_sync(_write_new_file, path, data)
    try:
        async with db.tenant(tenant_id) as conn:
            await repository.insert(
                conn,
                tenant_id,
                media_id,
                storage="local",
                storage_key=key,
                bucket=None,
                filename=clean_filename(filename),
                mime_type=kind,
                size_bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                source="inbound",
                uploaded_by=None,
            )
    except BaseException:
        await anyio.Path(path).unlink(missing_ok=True)
        raise
    return media_id


# ---------------------------------------------------------------- names and paths


def clean_filename(name: str | None) -> str:
    """A name to show and to offer on download: no folders, no control characters, at most 255 characters."""
    if not name:
        return ""
    base = re.split(r"[/\\]", name)[-1]
    text = "".join(c for c in base if unicodedata.category(c)[0] != "C").strip().strip(".")
    return text[:MAX_FILENAME]


def _storage_key(tenant_id: UUID, media_id: UUID) -> str:
    return f"{tenant_id}/{media_id}"


def _local_path(settings: Settings, key: str) -> Path:
    return Path(settings.media_root) / key


def _write_new_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "xb") as file:
        file.write(data)


def media_url(media_id: UUID) -> str:
    return f"/api/media/{media_id}"


def _view(row: StoredMedia) -> MediaFile:
    return MediaFile(
        id=row.id,
        filename=row.filename,
        mime_type=row.mime_type,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        url=media_url(row.id),
        storage=row.storage,
        bucket=row.bucket,
        key=row.storage_key if row.storage == "s3" else None,
        created_at=row.created_at,
    )


# ---------------------------------------------------------------- uploads


@dataclass
class Spooled:
    """An upload written to a temporary file, measured, hashed and typed."""

    path: Path
    size: int
    sha256: str
    mime_type: str | None


def detect_type(head: bytes, is_utf8: bool, filename: str, whole: bytes | None = None) -> str | None:
    """The type of content starting with `head`; None when it is nothing recognisable.

    `is_utf8` says whether the whole content decodes as UTF-8; `whole` is the content itself when
    it is text (to tell JSON from plain text)."""
    guessed = filetype.guess_mime(head) if head else None
    if guessed is not None:
        return guessed
    if not is_utf8 or b"\x00" in head:
        return None
    if whole is not None and whole.lstrip()[:1] in (b"{", b"["):
        try:
            msgspec.json.decode(whole)
        except msgspec.DecodeError:
            pass
        else:
            return "application/json"
    return "text/csv" if filename.lower().endswith(".csv") else "text/plain"


async def _upload_chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    await upload.seek(0)
    while chunk := await upload.read(CHUNK_BYTES):
        yield chunk


async def spool(chunks: AsyncIterator[bytes], folder: Path, max_bytes: int, filename: str) -> Spooled:
    """Copy `chunks` into a temporary file in `folder`, refusing past `max_bytes` (413, nothing kept)."""
    await anyio.to_thread.run_sync(lambda: folder.mkdir(parents=True, exist_ok=True))
    handle, name = tempfile.mkstemp(dir=folder, prefix=".upload-")
    os.close(handle)
    path = Path(name)
    digest = hashlib.sha256()
    utf8 = codecs.getincrementaldecoder("utf-8")()
    is_utf8, size, head = True, 0, b""
    try:
        async with await anyio.open_file(path, "wb") as out:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge(f"the file is larger than {max_bytes} bytes", field="file")
                if len(head) < SNIFF_BYTES:
                    head += chunk[: SNIFF_BYTES - len(head)]
                if is_utf8:
                    try:
                        utf8.decode(chunk)
                    except UnicodeDecodeError:
                        is_utf8 = False
                digest.update(chunk)
                await out.write(chunk)
        if is_utf8:
            try:
                utf8.decode(b"", final=True)
            except UnicodeDecodeError:
                is_utf8 = False
        whole = None
        if is_utf8 and size and head.lstrip()[:1] in (b"{", b"["):
            whole = await anyio.Path(path).read_bytes()  # bounded by max_bytes
        kind = detect_type(head, is_utf8 and size > 0, filename, whole)
    except BaseException:
        await anyio.Path(path).unlink(missing_ok=True)
        raise
    return Spooled(path=path, size=size, sha256=digest.hexdigest(), mime_type=kind)


def _check_type(spooled: Spooled) -> str:
    if spooled.size == 0:
        raise Unprocessable("the file is empty", field="file")
    if spooled.mime_type is None:
        raise Unprocessable("the file's type could not be recognised from its content", field="file")
    if spooled.mime_type not in ALLOWED_TYPES:
        raise Unprocessable(
            f"files of type {spooled.mime_type} are not accepted (images, audio, video, PDF, office documents "
            "and text are)",
            field="file",
            mime_type=spooled.mime_type,
        )
    return spooled.mime_type


async def _record_upload(
    db: Database,
    actor: Actor,
    media_id: UUID,
    *,
    storage: str,
    key: str,
    bucket: str | None,
    name: str,
    spooled: Spooled,
    mime_type: str,
) -> MediaFile:
    async with db.tenant(actor.tenant_id) as conn:
        await repository.insert(
            conn,
            actor.tenant_id,
            media_id,
            storage=storage,
            storage_key=key,
            bucket=bucket,
            filename=name,
            mime_type=mime_type,
            size_bytes=spooled.size,
            sha256=spooled.sha256,
            source="upload",
            uploaded_by=actor.user_id,
        )
        await activity.record(
            conn, actor, "media.uploaded", "media", media_id, filename=name, mime_type=mime_type, storage=storage
        )
        row = await repository.get(conn, actor.tenant_id, media_id)
    assert row is not None
    return _view(row)


async def upload_local(
    db: Database, settings: Settings, actor: Actor, upload: UploadFile, filename: str | None
) -> MediaFile:
    name = clean_filename(filename if filename is not None else upload.filename)
    folder = Path(settings.media_root) / str(actor.tenant_id)
    spooled = await spool(_upload_chunks(upload), folder, settings.media_max_bytes, name)
    try:
        mime_type = _check_type(spooled)
        media_id = uuid4()
        key = _storage_key(actor.tenant_id, media_id)
        final = _local_path(settings, key)
        await anyio.to_thread.run_sync(os.replace, spooled.path, final)
        try:
            return await _record_upload(
                db,
                actor,
                media_id,
                storage="local",
                key=key,
                bucket=None,
                name=name,
                spooled=spooled,
                mime_type=mime_type,
            )
        except BaseException:
            await anyio.Path(final).unlink(missing_ok=True)
            raise
    finally:
        await anyio.Path(spooled.path).unlink(missing_ok=True)


# ---------------------------------------------------------------- S3


def s3_configured(settings: Settings) -> bool:
    return bool(settings.s3_bucket)


def _s3_client(settings: Settings) -> Any:
    from aiobotocore.session import get_session

    return get_session().create_client(
        "s3",
        endpoint_url=settings.s3_endpoint_url or None,
        region_name=settings.s3_region or None,
        aws_access_key_id=settings.s3_access_key_id or None,
        aws_secret_access_key=settings.s3_secret_access_key or None,
    )


def _s3_failure(exc: Exception, doing: str) -> BadGateway:
    log.warning("S3 call failed", doing=doing, error=type(exc).__name__, message=str(exc))
    code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
    return BadGateway(f"the S3 store refused or failed to {doing}" + (f" ({code})" if code else ""))


def _require_s3(settings: Settings) -> None:
    # A 422, not a 503: trying again does not help until the server is configured.
    if not s3_configured(settings):
        raise Unprocessable(
            "S3 storage is not configured on this server (OMNISTREAM_S3_BUCKET and its endpoint and keys); "
            "upload with POST /api/media/upload instead"
        )


async def upload_s3(
    db: Database, settings: Settings, actor: Actor, upload: UploadFile, filename: str | None
) -> MediaFile:
    from botocore.exceptions import BotoCoreError, ClientError

    _require_s3(settings)
    name = clean_filename(filename if filename is not None else upload.filename)
    folder = Path(settings.media_root) / str(actor.tenant_id)
    spooled = await spool(_upload_chunks(upload), folder, settings.media_max_bytes, name)
    try:
        mime_type = _check_type(spooled)
        media_id = uuid4()
        key = _storage_key(actor.tenant_id, media_id)
        body = await anyio.Path(spooled.path).read_bytes()  # bounded by media_max_bytes
        try:
            async with _s3_client(settings) as s3:
                await s3.put_object(
                    Bucket=settings.s3_bucket, Key=key, Body=body, ContentType=mime_type, ChecksumAlgorithm="SHA256"
                )
        except (BotoCoreError, ClientError) as exc:
            raise _s3_failure(exc, "store the file") from exc
        try:
            return await _record_upload(
                db,
                actor,
                media_id,
                storage="s3",
                key=key,
                bucket=settings.s3_bucket,
                name=name,
                spooled=spooled,
                mime_type=mime_type,
            )
        except BaseException:
            await _delete_s3_object(settings, settings.s3_bucket, key)
            raise
    finally:
        await anyio.Path(spooled.path).unlink(missing_ok=True)


async def _delete_s3_object(settings: Settings, bucket: str, key: str) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        async with _s3_client(settings) as s3:
            await s3.delete_object(Bucket=bucket, Key=key)
    except (BotoCoreError, ClientError) as exc:
        log.warning("orphaned S3 object not deleted", bucket=bucket, key=key, error=str(exc))


# ---------------------------------------------------------------- downloads


@dataclass
class Download:
    status: int
    headers: dict[str, str]
    media_type: str
    chunks: AsyncIterator[bytes] | None
    """None for a 304."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive range a `Range` header asks of `size` bytes; None to send the whole.

    A header that is not one byte range (malformed, another unit, several ranges) is ignored, as
    RFC 9110 allows; one that is well formed but lies past the end is a 416."""
    if not header:
        return None
    match = re.fullmatch(r"[ \t]*bytes[ \t]*=[ \t]*([0-9]*)[ \t]*-[ \t]*([0-9]*)[ \t]*", header, flags=re.ASCII)
    if match is None or not (match[1] or match[2]) or len(match[1]) > 18 or len(match[2]) > 18:
        return None
    unsatisfiable = RangeNotSatisfiable(
        f"the range is outside the file's {size} bytes", headers={"Content-Range": f"bytes */{size}"}
    )
    if match[1]:
        start = int(match[1])
        if match[2] and int(match[2]) < start:
            return None
        if start >= size:
            raise unsatisfiable
        return start, min(int(match[2]), size - 1) if match[2] else size - 1
    suffix = int(match[2])
    if suffix == 0 or size == 0:
        raise unsatisfiable
    return max(size - suffix, 0), size - 1


def _disposition(row: StoredMedia) -> str:
    kind = "inline" if row.mime_type in INLINE_TYPES else "attachment"
    name = row.filename or str(row.id)
    fallback = re.sub(r"[^A-Za-z0-9._ -]", "_", unicodedata.normalize("NFKD", name)).strip() or "file"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in tags or etag in tags


async def _file_chunks(path: Path, start: int, length: int) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as file:
        await file.seek(start)
        left = length
        while left > 0:
            chunk = await file.read(min(CHUNK_BYTES, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk


async def _s3_chunks(settings: Settings, row: StoredMedia, span: tuple[int, int] | None) -> AsyncIterator[bytes]:
    """The object's bytes; the call is made before the first chunk is asked for, so that a failure
    is a 502 and not a broken response."""
    from botocore.exceptions import BotoCoreError, ClientError

    stack = AsyncExitStack()
    try:
        s3 = await stack.enter_async_context(_s3_client(settings))
        extra = {"Range": f"bytes={span[0]}-{span[1]}"} if span else {}
        answer = await s3.get_object(Bucket=row.bucket, Key=row.storage_key, **extra)
        body = await stack.enter_async_context(answer["Body"])
    except ClientError as exc:
        await stack.aclose()
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            log.error("media object missing from its bucket", media_id=str(row.id), key=row.storage_key)
            raise NotFound("the media file's content is missing from storage") from exc
        raise _s3_failure(exc, "read the file") from exc
    except BotoCoreError as exc:
        await stack.aclose()
        raise _s3_failure(exc, "read the file") from exc

    async def chunks() -> AsyncIterator[bytes]:
        try:
            while chunk := await body.read(CHUNK_BYTES):
                yield chunk
        finally:
            await stack.aclose()

    return chunks()


async def download(
    db: Database,
    settings: Settings,
    actor: Actor,
    media_id: UUID,
    *,
    range_header: str | None,
    if_none_match: str | None,
    if_range: str | None,
) -> Download:
    async with db.read(actor.tenant_id) as conn:
        row = await repository.get(conn, actor.tenant_id, media_id)
    if row is None:
        raise not_found("media file")
    etag = f'"{row.sha256}"'
    content_type = row.mime_type
    if content_type.startswith("text/") and row.source == "upload":
        content_type += "; charset=utf-8"  # uploads are typed as text only when they are UTF-8
    headers = {
        "Content-Type": content_type,
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Content-Disposition": _disposition(row),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'",
        "Cache-Control": "private, max-age=0, must-revalidate",
    }
    if _etag_matches(if_none_match, etag):
        return Download(status=304, headers=headers, media_type=row.mime_type, chunks=None)
    # If-Range names the version the client holds a part of; for another version, the whole.
    span = byte_range(range_header, row.size_bytes) if if_range is None or if_range.strip() == etag else None
    start, end = span if span else (0, row.size_bytes - 1)
    length = end - start + 1
    headers["Content-Length"] = str(length)
    if span:
        headers["Content-Range"] = f"bytes {start}-{end}/{row.size_bytes}"
    if row.storage == "local":
        path = _local_path(settings, row.storage_key)
        if not await anyio.Path(path).is_file():
            log.error("media file missing from the media folder", media_id=str(row.id), path=str(path))
            raise NotFound("the media file's content is missing from storage")
        chunks = _file_chunks(path, start, length)
    else:
        if not s3_configured(settings):
            raise StorageUnavailable("this file is in S3 storage, which is not configured on this server")
        chunks = await _s3_chunks(settings, row, span)
    return Download(status=206 if span else 200, headers=headers, media_type=row.mime_type, chunks=chunks)


async def existing_ids(conn: Any, tenant_id: UUID, ids: list[UUID]) -> set[UUID]:
    """Which of `ids` are media files of the tenant (for areas that point at them); `conn` is a
    transaction or a read of the tenant."""
    return await repository.existing_ids(conn, tenant_id, ids) if ids else set()
