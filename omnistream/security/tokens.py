"""Session JWTs: HS256 pinned, with expiry, audience, tenant (`tid`) and session id (`jti`)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from litestar.security.jwt import Token

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("exp", "iat", "sub", "aud", "jti")


def issue(secret: str, audience: str, *, user_id: UUID, tenant_id: UUID, session_id: UUID, expires_at: datetime) -> str:
    token = Token(exp=expires_at, sub=str(user_id), aud=audience, jti=str(session_id), extras={"tid": str(tenant_id)})
    return token.encode(secret, ALGORITHM)
