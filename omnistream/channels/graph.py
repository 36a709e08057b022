"""Meta's Graph API over HTTP: one client for every area that calls it (sending, accounts,
templates, media), with Meta's error body read into a GraphError."""

from __future__ import annotations

import functools
import ssl
from typing import Any

import httpx
import msgspec

from omnistream.config import Settings

# Meta's codes for "slow down" and "try again": throttling of the app, the account or the pair of
# numbers, and temporary failures; everything else a 4xx answers is permanent.
THROTTLED_CODES = frozenset({4, 17, 32, 613, 80007, 130429, 131048, 131056})
TRANSIENT_CODES = frozenset({1, 2, 131000, 131016, 133004})


class GraphError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: int | None = None,
        subcode: int | None = None,
        details: str | None = None,
        retry_after: float | None = None,
        trace_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.subcode = status, message, code, subcode
        self.details, self.retry_after, self.trace_id = details, retry_after, trace_id

    @property
    def retryable(self) -> bool:
        """Worth trying again later: throttled, a server error, or no answer at all (status 0)."""
        return self.status in (0, 408, 429) or self.status >= 500 or self.code in THROTTLED_CODES | TRANSIENT_CODES

    @property
    def error_code(self) -> str:
        """The code stored on what failed: Meta's own when it gave one."""
        return str(self.code) if self.code is not None else f"http_{self.status}"

    @property
    def text(self) -> str:
        return f"{self.message}: {self.details}" if self.details else self.message


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for every client: httpx would build one per client (loading the CA bundle,
    tens of milliseconds of CPU)."""
    return httpx.create_ssl_context()


def shared_http(settings: Settings) -> httpx.AsyncClient:
    """A worker's one HTTP client for the Graph API, whose connections its sends share (a client
    per send would open a connection, and a TLS session, for every message)."""
    return httpx.AsyncClient(
        timeout=settings.graph_api_timeout_seconds,
        verify=_tls_context(),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=50),
    )


class GraphClient:
    """Calls `{graph_api_url}/{graph_api_version}/...` with an access token."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient | None = None) -> None:
        self.base = f"{settings.graph_api_url.rstrip('/')}/{settings.graph_api_version}"
        self._http = http or httpx.AsyncClient(timeout=settings.graph_api_timeout_seconds, verify=_tls_context())
        self._owns_http = http is None

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> GraphClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The decoded answer of `method path` (path relative to the version, or a full URL such as
        a paging `next` link); GraphError for an error answer, a timeout or no connection."""
        url = path if path.startswith(("http://", "https://")) else f"{self.base}/{path.lstrip('/')}"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            response = await self._http.request(method, url, json=json, params=params, headers=headers)
        except httpx.TimeoutException as exc:
            raise GraphError(0, "the Graph API did not answer in time", details=type(exc).__name__) from exc
        except httpx.HTTPError as exc:
            raise GraphError(0, "the Graph API could not be reached", details=str(exc) or type(exc).__name__) from exc
        return _answer(response)

    async def download(self, url: str, *, token: str, max_bytes: int) -> tuple[bytes, str]:
        """The bytes and content type at a media URL the Graph API gave; GraphError past max_bytes."""
        try:
            async with self._http.stream("GET", url, headers={"Authorization": f"Bearer {token}"}) as response:
                if response.status_code >= 400:
                    raise GraphError(response.status_code, "the media download was refused")
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise GraphError(413, f"the media is larger than {max_bytes} bytes")
                    chunks.append(chunk)
                return b"".join(chunks), response.headers.get("content-type", "application/octet-stream")
        except httpx.HTTPError as exc:
            raise GraphError(0, "the media could not be downloaded", details=str(exc) or type(exc).__name__) from exc


def _answer(response: httpx.Response) -> dict[str, Any]:
    try:
        body = msgspec.json.decode(response.content) if response.content else {}
    except msgspec.DecodeError:
        body = {}
    if response.status_code < 400 and isinstance(body, dict) and "error" not in body:
        return body
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    data = error.get("error_data") if isinstance(error.get("error_data"), dict) else {}
    return _raise(response, error, data)


def _raise(response: httpx.Response, error: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    retry_after = response.headers.get("retry-after")
    raise GraphError(
        response.status_code if response.status_code >= 400 else 400,
        str(error.get("message") or f"the Graph API answered {response.status_code}"),
        code=error.get("code") if isinstance(error.get("code"), int) else None,
        subcode=error.get("error_subcode") if isinstance(error.get("error_subcode"), int) else None,
        details=str(data.get("details") or error.get("error_user_msg") or "") or None,
        retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
        trace_id=error.get("fbtrace_id"),
    )
