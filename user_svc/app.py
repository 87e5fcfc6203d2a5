"""user_svc's composition root: its spec (tables, queue, handlers, routes) wired by `shared`,
and what its HTTP API holds besides (signing key, password hashing, login throttles)."""

from __future__ import annotations

from fastapi import FastAPI

from broker.topology import USER_SVC_QUEUE
from shared.runtime import composition
from shared.runtime.roles import Role
from shared.web.tokens import SigningKey, StaticKeys, load_public_keys
from user_svc import api, handlers, models
from user_svc.passwords import Passwords
from user_svc.queries import UserQueries
from user_svc.settings import UserSettings
from user_svc.throttle import Throttles
from user_svc.uow import unit_of_work

SPEC = composition.ServiceSpec(
    name="user_svc",
    outbox=models.outbox,
    inbox=models.inbox,
    queue=USER_SVC_QUEUE,
    handlers={
        "order.created": handlers.on_order_created,
        "order.rejected": handlers.on_order_rejected,
        "order.cancelled": handlers.on_order_cancelled,
    },
    unit_of_work=unit_of_work,
    routers=[api.router],
)


def signing_key(settings: UserSettings) -> SigningKey:
    if settings.jwt_private_key_file is not None:
        return SigningKey.from_pem(settings.jwt_private_key_file.read_bytes())
    return SigningKey.from_secret(settings.jwt_secret.get_secret_value())


def create_app(settings: UserSettings, role: Role = Role.ALL) -> FastAPI:
    """The HTTP app of the `all` or `api` role."""
    key = signing_key(settings)
    published = (
        load_public_keys(settings.jwt_published_keys_file.read_bytes())
        if settings.jwt_published_keys_file is not None
        else []
    )
    app = composition.create_app(SPEC, settings, StaticKeys([key.public, *published]), role=role)
    app.state.signing_key = key
    app.state.queries = UserQueries(app.state.database)
    app.state.passwords = Passwords()
    app.state.throttles = Throttles(settings, app.state.rate_limits)
    return app
