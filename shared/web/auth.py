"""The caller of a route: the user a verified bearer token names."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.errors import Unauthorized
from shared.web.tokens import TokenVerifier

# Missing or another scheme: answered by `caller_id` as a 401 problem, not by FastAPI's own error.
_BEARER = HTTPBearer(auto_error=False, description="Access token from user_svc POST /auth/token")


async def caller_id(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
) -> UUID:
    """The caller's user id, from the bearer token in `Authorization`."""
    if credentials is None:
        raise Unauthorized("missing bearer token")
    tokens: TokenVerifier = request.app.state.tokens
    return await tokens.user_id(credentials.credentials)


CurrentUserId = Annotated[UUID, Depends(caller_id)]
