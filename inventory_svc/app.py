"""inventory_svc's composition root: its spec (tables, queue, handlers, routes) wired by
`shared`."""

from __future__ import annotations

from fastapi import FastAPI

from broker.topology import INVENTORY_SVC_QUEUE
from inventory_svc import api, handlers, models
from inventory_svc.queries import StockQueries
from inventory_svc.settings import InventorySettings
from inventory_svc.uow import unit_of_work
from shared.runtime import composition
from shared.runtime.roles import Role
from shared.web.token_keys import verification_keys

SPEC = composition.ServiceSpec(
    name="inventory_svc",
    outbox=models.outbox,
    inbox=models.inbox,
    queue=INVENTORY_SVC_QUEUE,
    handlers={
        "order.created": handlers.on_order_created,
        "order.rejected": handlers.on_order_rejected,
        "order.cancelled": handlers.on_order_cancelled,
    },
    unit_of_work=unit_of_work,
    routers=[api.router],
)


def create_app(settings: InventorySettings, role: Role = Role.ALL) -> FastAPI:
    """The HTTP app of the `all` or `api` role."""
    app = composition.create_app(SPEC, settings, verification_keys(settings), role=role)
    app.state.queries = StockQueries(app.state.database)
    return app
