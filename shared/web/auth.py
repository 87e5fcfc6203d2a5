"""The caller of a route: the user a verified bearer token names, and the roles it grants."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.errors import Forbidden, Unauthorized
from shared.web.tokens import Caller, TokenVerifier

# Missing or another scheme: answered by `caller` as a 401 problem, not by FastAPI's own error.
_BEARER = HTTPBearer(auto_error=False, description="Access token from user_svc POST /auth/token")


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
) -> Caller:
    """The caller, from the bearer token in `Authorization`; 401 without a valid one."""
    if credentials is None:
        raise Unauthorized("missing bearer token")
    tokens: TokenVerifier = request.app.state.tokens
    return await tokens.caller(credentials.credentials)


async def caller_id(signed_in: Annotated[Caller, Depends(caller)]) -> UUID:
    return signed_in.user_id


async def administrator(signed_in: Annotated[Caller, Depends(caller)]) -> Caller:
    """The caller, if their token grants the `admin` role; 403 for anyone else signed in."""
    if not signed_in.is_admin:
        raise Forbidden("this request needs the admin role")
    return signed_in


CurrentUserId = Annotated[UUID, Depends(caller_id)]
Administrator = Annotated[Caller, Depends(administrator)]
