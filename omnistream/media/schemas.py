from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

import msgspec
from litestar.datastructures import UploadFile

from omnistream.kit.schema import Schema


class StoredMedia(msgspec.Struct, kw_only=True, frozen=True):
    """A media row as the service reads it: where the bytes are, and what they are."""

    id: UUID
    storage: Literal["local", "s3"]
    storage_key: str
    bucket: str | None
    filename: str
    mime_type: str
    size_bytes: int
    sha256: str
    source: Literal["upload", "inbound"]
    created_at: datetime


class MediaFile(Schema):
    id: UUID
    filename: str
    mime_type: str
    """Detected from the content, not from the name or the uploader's content type."""
    size_bytes: int
    sha256: str
    """SHA-256 of the content, hex; also the ETag of the download."""
    url: str
    """Where to download it (with the caller's credentials)."""
    storage: Literal["local", "s3"]
    bucket: str | None
    key: str | None
    """The object key in the bucket (S3 uploads)."""
    created_at: datetime


@dataclass
class MediaUpload:
    """A multipart/form-data body: the file, and optionally the name to keep for it."""

    file: UploadFile
    filename: str | None = None
    """Replaces the file part's own filename. Kept only as a name, cleaned (no folders, no control
    characters, at most 255 characters): the storage path never uses it."""
