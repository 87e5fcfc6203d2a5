"""Access tokens: issued by user_svc at login, verified by both services on every request.

HS256 with a shared secret for now; the algorithm is pinned and `exp`, `iss` and `aud` are
checked, so a token minted for something else, or with `alg: none`, is refused.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import jwt

from shared.errors import Unauthorized

ALGORITHM = "HS256"
ISSUER = "user_svc"
AUDIENCE = "eventful"


def issue_token(user_id: UUID, *, secret: str, ttl_seconds: int) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": str(user_id),
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + timedelta(seconds=ttl_seconds),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(token: str, *, secret: str) -> UUID:
    """The user id the token was issued to, or Unauthorized."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "sub", "iss", "aud"]},
        )
        return UUID(claims["sub"])
    except (jwt.PyJWTError, ValueError) as error:
        raise Unauthorized("invalid or expired access token") from error
