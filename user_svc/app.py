"""user_svc's composition root: its spec (tables, queue, handlers, routes) wired by `shared`."""

from __future__ import annotations

from fastapi import FastAPI

from broker.topology import USER_SVC_QUEUE
from shared import service
from user_svc import api, handlers, models
from user_svc.passwords import Passwords
from user_svc.settings import UserSettings
from user_svc.uow import unit_of_work

SPEC = service.ServiceSpec(
    name="user_svc",
    outbox=models.outbox,
    inbox=models.inbox,
    queue=USER_SVC_QUEUE,
    handlers={
        "order.created": handlers.on_order_created,
        "order.cancelled": handlers.on_order_cancelled,
    },
    unit_of_work=unit_of_work,
    routers=[api.router],
)


def create_app(settings: UserSettings) -> FastAPI:
    app = service.create_app(SPEC, settings)
    app.state.passwords = Passwords()
    return app
