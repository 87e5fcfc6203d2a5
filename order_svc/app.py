"""order_svc's composition root: its spec (tables, queue, handlers, routes) wired by `shared`."""

from __future__ import annotations

from fastapi import FastAPI

from broker.topology import ORDER_SVC_QUEUE
from order_svc import api, handlers, models
from order_svc.pending_orders import PendingOrders
from order_svc.queries import OrderQueries
from order_svc.settings import OrderSettings
from order_svc.uow import unit_of_work
from shared.runtime import composition
from shared.runtime.roles import Role
from shared.web.token_keys import verification_keys

SPEC = composition.ServiceSpec(
    name="order_svc",
    outbox=models.outbox,
    inbox=models.inbox,
    queue=ORDER_SVC_QUEUE,
    handlers={
        "user.registered": handlers.on_user_registered,
        "user.updated": handlers.on_user_updated,
        "user.deactivated": handlers.on_user_deactivated,
        "user.credit_reserved": handlers.on_credit_reserved,
        "user.credit_rejected": handlers.on_credit_rejected,
        "inventory.stock_reserved": handlers.on_stock_reserved,
        "inventory.stock_rejected": handlers.on_stock_rejected,
    },
    unit_of_work=unit_of_work,
    routers=[api.router],
    worker_parts=lambda database, registry: [PendingOrders(OrderQueries(database), registry)],
)


def create_app(settings: OrderSettings, role: Role = Role.ALL) -> FastAPI:
    """The HTTP app of the `all` or `api` role."""
    app = composition.create_app(SPEC, settings, verification_keys(settings), role=role)
    app.state.queries = OrderQueries(app.state.database)
    return app
