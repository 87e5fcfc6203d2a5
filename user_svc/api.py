"""user_svc's HTTP routes: request -> command -> handler -> response. No SQL here."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Form, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.errors import Forbidden, Unauthorized
from shared.web.auth import CurrentUserId
from shared.web.etags import IfMatch, etag, expected_version
from shared.web.openapi import ETAG, LOCATION, Link, operation
from shared.web.tokens import SigningKey, StaticKeys
from user_svc import handlers
from user_svc.domain import User
from user_svc.passwords import Passwords
from user_svc.queries import UserQueries
from user_svc.settings import UserSettings
from user_svc.throttle import Throttles
from user_svc.uow import UserUnitOfWork, unit_of_work

# Control characters, and every character Unicode counts as white space, spelled out: `\s` means
# different things in pydantic's regex engine and in the OpenAPI document's (ECMA-262), and the
# document must admit exactly what the service does.
_BLANK = r"\x00-\x20\x7f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
Email = Annotated[
    str,
    StringConstraints(
        to_lower=True,
        max_length=254,
        pattern=rf"^[^@{_BLANK}]+@[^@{_BLANK}]+\.[^@{_BLANK}]+$",
    ),
]
# No blank at either end; PostgreSQL text cannot hold NUL: refuse it here (422) rather than fail
# in the database.
Name = Annotated[
    str,
    StringConstraints(max_length=200, pattern=rf"^[^{_BLANK}](?:[^\x00]*[^{_BLANK}])?$"),
]
Password = Annotated[str, Field(min_length=8, max_length=128, pattern=r"^[^\x00]+$")]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Email
    name: Name
    password: Password


class TokenRequest(BaseModel):
    """The form of OAuth2's password grant (RFC 6749, section 4.3); the other fields of that
    grant (`grant_type`, `scope`, ...) may be sent and are ignored."""

    username: Annotated[
        str, Field(min_length=1, max_length=254, pattern=r"^[^\x00]+$", description="The email")
    ]
    password: Annotated[str, Field(min_length=1, max_length=128)]


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name


class UserPublic(BaseModel):
    id: UUID
    email: str
    name: str
    status: Literal["active", "deactivated"]
    credit_limit: int
    credit_reserved: int
    version: int

    @classmethod
    def of(cls, user: User) -> UserPublic:
        return cls(
            id=user.id,
            email=user.email,
            name=user.name,
            status=user.status.value,
            credit_limit=user.credit_limit,
            credit_reserved=user.credit_reserved,
            version=user.version,
        )


class JsonWebKey(BaseModel):
    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    x: str
    kid: str
    alg: Literal["EdDSA"]
    use: Literal["sig"]


class JsonWebKeySet(BaseModel):
    keys: list[JsonWebKey]


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105
    expires_in: int


# Dependencies are coroutines: FastAPI runs a plain `def` dependency in a worker thread, and
# that hop costs more than the rest of a simple request.
async def _unit_of_work(request: Request) -> UserUnitOfWork:
    return unit_of_work(request.app.state.database)


async def _queries(request: Request) -> UserQueries:
    queries: UserQueries = request.app.state.queries
    return queries


async def _passwords(request: Request) -> Passwords:
    passwords: Passwords = request.app.state.passwords
    return passwords


async def _settings(request: Request) -> UserSettings:
    settings: UserSettings = request.app.state.settings
    return settings


async def _throttles(request: Request) -> Throttles:
    throttles: Throttles = request.app.state.throttles
    return throttles


async def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


UnitOfWorkDep = Annotated[UserUnitOfWork, Depends(_unit_of_work)]
QueriesDep = Annotated[UserQueries, Depends(_queries)]
PasswordsDep = Annotated[Passwords, Depends(_passwords)]
SettingsDep = Annotated[UserSettings, Depends(_settings)]
ThrottlesDep = Annotated[Throttles, Depends(_throttles)]
ClientDep = Annotated[str, Depends(_client)]

router = APIRouter(tags=["users"])


def _respond(user: User, response: Response) -> UserPublic:
    response.headers["ETag"] = etag(user.version)
    return UserPublic.of(user)


def _own(user_id: UUID, caller: UUID) -> UUID:
    """The caller's own id; 403 for any other, without looking it up, so nothing leaks."""
    if user_id != caller:
        raise Forbidden("a user can only read and change their own account")
    return user_id


NOT_THE_CALLER = "Not the caller's own id (whether or not such a user exists)."
NO_SUCH_USER = "The user the token names does not exist."
THIS_USER = {"user_id": "$response.body#/id"}
AT_ITS_VERSION = {**THIS_USER, "header.If-Match": "$response.header.ETag"}
CHANGE_IT = [Link("renameUser", AT_ITS_VERSION), Link("deactivateUser", AT_ITS_VERSION)]


@router.post(
    "/users",
    **operation(
        "registerUser",
        status=201,
        headers=[LOCATION, ETAG],
        links=[Link("getUser", THIS_USER)],
        problems={
            409: "A user with this email exists already.",
            429: "Too many registrations from this client or for this email, or over this "
            "client's rate limit: nothing was done; retry after `Retry-After`.",
        },
    ),
)
async def register(
    body: UserCreate,
    response: Response,
    uow: UnitOfWorkDep,
    passwords: PasswordsDep,
    settings: SettingsDep,
    throttles: ThrottlesDep,
    client: ClientDep,
) -> UserPublic:
    await throttles.registration_per_client.hit(client)
    await throttles.registration_per_account.hit(body.email)
    user = await handlers.register_user(
        handlers.RegisterUser(
            email=body.email,
            name=body.name,
            password=body.password,
            credit_limit=settings.default_credit_limit,
        ),
        uow,
        passwords,
    )
    response.headers["Location"] = f"/users/{user.id}"
    return _respond(user, response)


@router.post(
    "/auth/token",
    tags=["auth"],
    **operation(
        "issueToken",
        problems={
            401: "Wrong email or password, or the user is deactivated.",
            429: "Too many sign-ins from this client, or failed ones for this email, or over "
            "this client's rate limit: retry after `Retry-After`.",
        },
    ),
)
async def login(
    form: Annotated[TokenRequest, Form()],
    request: Request,
    queries: QueriesDep,
    passwords: PasswordsDep,
    settings: SettingsDep,
    throttles: ThrottlesDep,
    client: ClientDep,
) -> Token:
    email = form.username.strip().lower()
    await throttles.login_per_client.hit(client)
    await throttles.failed_login_per_account.check(email)
    try:
        user = await handlers.authenticate(email, form.password, queries, passwords)
    except Unauthorized:
        await throttles.failed_login_per_account.hit(email)
        raise
    signing_key: SigningKey = request.app.state.signing_key
    token = signing_key.issue(
        user.id,
        ttl_seconds=settings.access_token_ttl_seconds,
        roles=handlers.roles_of(user, settings.admin_emails),
    )
    return Token(access_token=token, expires_in=settings.access_token_ttl_seconds)


@router.get(
    "/.well-known/jwks.json", tags=["auth"], **operation("getSigningKeys", reads_database=False)
)
async def jwks(request: Request, response: Response) -> JsonWebKeySet:
    """The public keys access tokens are signed with, for services that verify them."""
    keys: StaticKeys = request.app.state.token_keys
    response.headers["Cache-Control"] = "public, max-age=300"
    return JsonWebKeySet.model_validate(keys.jwks())


@router.get(
    "/users/me",
    **operation("getCurrentUser", headers=[ETAG], problems={404: NO_SUCH_USER}, links=CHANGE_IT),
)
async def read_me(caller: CurrentUserId, response: Response, queries: QueriesDep) -> UserPublic:
    return _respond(await handlers.get_user(caller, queries), response)


@router.get(
    "/users/{user_id:uuid}",
    **operation("getUser", headers=[ETAG], problems={403: NOT_THE_CALLER, 404: NO_SUCH_USER}),
)
async def read_user(
    user_id: UUID, caller: CurrentUserId, response: Response, queries: QueriesDep
) -> UserPublic:
    return _respond(await handlers.get_user(_own(user_id, caller), queries), response)


@router.patch(
    "/users/{user_id:uuid}",
    **operation(
        "renameUser",
        headers=[ETAG],
        problems={403: NOT_THE_CALLER, 404: NO_SUCH_USER},
        if_match="required",
    ),
)
async def update_user(
    user_id: UUID,
    body: UserUpdate,
    caller: CurrentUserId,
    response: Response,
    uow: UnitOfWorkDep,
    if_match: IfMatch = None,
) -> UserPublic:
    command = handlers.RenameUser(
        user_id=_own(user_id, caller), name=body.name, expected_version=expected_version(if_match)
    )
    return _respond(await handlers.rename_user(command, uow), response)


@router.post(
    "/users/{user_id:uuid}/deactivate",
    **operation(
        "deactivateUser",
        headers=[ETAG],
        problems={
            403: NOT_THE_CALLER,
            404: NO_SUCH_USER,
            409: "The user is deactivated already.",
        },
        if_match="required",
    ),
)
async def deactivate(
    user_id: UUID,
    caller: CurrentUserId,
    response: Response,
    uow: UnitOfWorkDep,
    if_match: IfMatch = None,
) -> UserPublic:
    command = handlers.DeactivateUser(
        user_id=_own(user_id, caller), expected_version=expected_version(if_match)
    )
    return _respond(await handlers.deactivate_user(command, uow), response)
