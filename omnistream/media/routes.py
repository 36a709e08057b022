from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Body, FromPath, HeaderParameter
from litestar.response import Stream
from litestar.types import Message, Receive

from omnistream.config import Settings
from omnistream.errors import PayloadTooLarge
from omnistream.kit.deps import DB, AppSettings, CurrentActor
from omnistream.kit.openapi import ERRORS
from omnistream.media import service
from omnistream.media.schemas import MediaFile, MediaUpload
from omnistream.security.guards import access

MEDIA_READ = access("agent", "media.read")
MEDIA_WRITE = access("agent", "media.write")
UPLOAD_DESCRIPTION = (
    "A multipart/form-data body with one `file` part (and optionally a `filename` field to keep instead "
    "of the part's own). The type is read from the content, not from the name: images, audio, video, PDF, "
    "office documents and UTF-8 text (plain, CSV, JSON) are accepted, anything else is 422. Larger than "
    "the server's limit (OMNISTREAM_MEDIA_MAX_BYTES) is 413, and nothing is kept."
)


def _limit_body(receive: Receive, limit: int) -> Receive:
    """`receive`, refusing once more than `limit` bytes of body have arrived."""
    received = 0

    async def limited() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise PayloadTooLarge(
                    f"the body is larger than the {limit - service.FORM_OVERHEAD_BYTES} bytes allowed"
                )
        return message

    return limited


async def _bounded_upload(request: Request[Any, Any, Any]) -> None:
    """Before Litestar parses the form (streamed into spooled files), bound the body by the
    server's media limit: the framework's own limit is fixed when the route is declared, the
    media limit is a setting."""
    settings: Settings = request.app.state.settings
    limit = settings.media_max_bytes + service.FORM_OVERHEAD_BYTES
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is larger than the {settings.media_max_bytes} bytes allowed")
    request.receive = _limit_body(request.receive, limit)


Upload = Annotated[MediaUpload, Body(media_type=RequestEncodingType.MULTI_PART)]
RangeHeader = Annotated[
    str | None,
    HeaderParameter(name="Range", max_length=200, description="One byte range, such as `bytes=0-1023` or `bytes=-500`"),
]
IfNoneMatch = Annotated[
    str | None, HeaderParameter(name="If-None-Match", max_length=200, description="The ETag held: 304 when unchanged")
]
IfRange = Annotated[
    str | None,
    HeaderParameter(name="If-Range", max_length=200, description="Apply Range only if the file still has this ETag"),
]


class MediaController(Controller):
    path = "/api/media"
    tags = ["Media"]

    @post(
        "/upload",
        operation_id="uploadMedia",
        summary="Upload a media file",
        opt={**MEDIA_WRITE, ERRORS: (413,)},
        description=UPLOAD_DESCRIPTION,
        before_request=_bounded_upload,
        request_max_body_size=None,  # bounded by _bounded_upload, from the settings
    )
    async def upload(self, db: DB, settings: AppSettings, actor: CurrentActor, data: Upload) -> MediaFile:
        return await service.upload_local(db, settings, actor, data.file, data.filename)

    @post(
        "/s3",
        operation_id="uploadMediaToS3",
        summary="Upload a file to S3/MinIO",
        opt={**MEDIA_WRITE, ERRORS: (413, 502)},
        description=UPLOAD_DESCRIPTION
        + " Stored in the server's S3-compatible bucket; 422 when none is configured, 502 when it fails.",
        before_request=_bounded_upload,
        request_max_body_size=None,
    )
    async def upload_s3(self, db: DB, settings: AppSettings, actor: CurrentActor, data: Upload) -> MediaFile:
        return await service.upload_s3(db, settings, actor, data.file, data.filename)

    @get(
        "/{media_id:uuid}",
        operation_id="downloadMedia",
        summary="Download or proxy a media file",
        opt={**MEDIA_READ, ERRORS: (416, 502)},
        description="The file's bytes with its type, its SHA-256 as ETag, and byte ranges (206 with "
        "Content-Range; 416 for a range past the end). Files in S3 are streamed through.",
        media_type="*/*",  # the file's own type
        responses={
            206: ResponseSpec(
                data_container=bytes,
                media_type="*/*",
                description="The byte range asked for (Content-Range says which)",
                generate_examples=False,
            ),
            304: ResponseSpec(data_container=None, description="Not modified: the ETag in If-None-Match is current"),
        },
    )
    async def download(
        self,
        db: DB,
        settings: AppSettings,
        actor: CurrentActor,
        media_id: FromPath[UUID],
        range_header: RangeHeader = None,
        if_none_match: IfNoneMatch = None,
        if_range: IfRange = None,
    ) -> Response[Any]:
        result = await service.download(
            db,
            settings,
            actor,
            media_id,
            range_header=range_header,
            if_none_match=if_none_match,
            if_range=if_range,
        )
        if result.chunks is None:
            return Response(content=b"", status_code=result.status, headers=result.headers)
        # Named as a header: Litestar prefers the handler's documented `*/*` to a Stream's own type.
        return Stream(content=result.chunks, status_code=result.status, headers=result.headers)


CONTROLLERS = [MediaController]
