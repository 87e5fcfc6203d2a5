"""order_svc's HTTP routes: request -> command -> handler -> response. No SQL here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from order_svc import handlers
from order_svc.domain import Item, OrderStatus
from order_svc.queries import OrderQueries
from order_svc.uow import OrderUnitOfWork, unit_of_work
from shared.web.auth import CurrentUserId
from shared.web.etags import IfMatch, etag, expected_version
from shared.web.fields import JSON_INTEGER
from shared.web.openapi import ETAG, LOCATION, Link, operation

MAX_PAGE_SIZE = 100
# A position in the list (`_encode_cursor`): up to 16 digits of microseconds reach the year 2286.
CURSOR_PATTERN = r"^[0-9]{1,16}\.[0-9a-f]{32}$"


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sku: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[\x20-\x7e]+$")]
    quantity: Annotated[int, Field(ge=1, le=10_000), JSON_INTEGER]
    unit_price: Annotated[int, Field(ge=0, le=1_000_000_000), JSON_INTEGER]


class OrderCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: Annotated[list[ItemIn], Field(min_length=1, max_length=100)]


class ItemPublic(BaseModel):
    sku: str
    quantity: int
    unit_price: int


class CustomerPublic(BaseModel):
    id: UUID
    name: str | None
    status: Literal["active", "deactivated"] | None
    version: int


class OrderPublic(BaseModel):
    id: UUID
    user_id: UUID
    customer: CustomerPublic | None
    status: Literal["pending", "confirmed", "rejected", "cancelled"]
    reason: Literal["insufficient_credit", "user_inactive", "unknown_user", "out_of_stock"] | None
    items: list[ItemPublic]
    total: int
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, view: handlers.OrderView) -> OrderPublic:
        order, customer = view.order, view.customer
        return cls(
            id=order.id,
            user_id=order.user_id,
            customer=CustomerPublic.model_validate(customer, from_attributes=True)
            if customer
            else None,
            status=order.status.value,
            reason=order.reason.value if order.reason else None,
            items=[ItemPublic.model_validate(i, from_attributes=True) for i in order.items],
            total=order.total,
            version=order.version,
            created_at=order.created_at,
            updated_at=order.updated_at,
        )


class OrderPage(BaseModel):
    items: list[OrderPublic]
    next_cursor: str | None


# Dependencies are coroutines: FastAPI runs a plain `def` dependency in a worker thread, and
# that hop costs more than the rest of a simple request.
async def _unit_of_work(request: Request) -> OrderUnitOfWork:
    return unit_of_work(request.app.state.database)


async def _queries(request: Request) -> OrderQueries:
    queries: OrderQueries = request.app.state.queries
    return queries


UnitOfWorkDep = Annotated[OrderUnitOfWork, Depends(_unit_of_work)]
QueriesDep = Annotated[OrderQueries, Depends(_queries)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Repeat-safe request key (printable ASCII)",
    ),
]

router = APIRouter(tags=["orders"])


def _respond(view: handlers.OrderView, response: Response) -> OrderPublic:
    response.headers["ETag"] = etag(view.order.version)
    return OrderPublic.of(view)


NOT_YOURS = "No such order, or not the caller's (no existence leak)."
THIS_ORDER = {"order_id": "$response.body#/id"}
READ_IT = Link("getOrder", THIS_ORDER)
CANCEL_IT = Link("cancelOrder", {**THIS_ORDER, "header.If-Match": "$response.header.ETag"})


@router.post(
    "/orders",
    **operation(
        "placeOrder",
        status=202,
        headers=[LOCATION, ETAG],
        links=[READ_IT, CANCEL_IT],
        problems={
            422: "Invalid input, naming each field that is wrong; or this Idempotency-Key was "
            "used with another body."
        },
    ),
)
async def place_order(
    body: OrderCreate,
    caller: CurrentUserId,
    response: Response,
    uow: UnitOfWorkDep,
    idempotency_key: IdempotencyKey = None,
) -> OrderPublic:
    command = handlers.PlaceOrder(
        user_id=caller,
        items=tuple(
            Item(sku=i.sku, quantity=i.quantity, unit_price=i.unit_price) for i in body.items
        ),
        idempotency_key=idempotency_key,
    )
    view = await handlers.place_order(command, uow)
    response.headers["Location"] = f"/orders/{view.order.id}"
    return _respond(view, response)


@router.get(
    "/orders/{order_id}",
    **operation("getOrder", headers=[ETAG], problems={404: NOT_YOURS}, links=[CANCEL_IT]),
)
async def read_order(
    order_id: UUID, caller: CurrentUserId, response: Response, queries: QueriesDep
) -> OrderPublic:
    view = handlers.visible_to(await queries.order(order_id), order_id, caller)
    return _respond(view, response)


@router.get(
    "/orders",
    **operation(
        "listOrders",
        problems={
            422: "Invalid input, naming each field that is wrong; or a cursor this API "
            "did not issue."
        },
    ),
)
async def list_orders(
    caller: CurrentUserId,
    queries: QueriesDep,
    status: OrderStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
    cursor: Annotated[
        str | None,
        Query(pattern=CURSOR_PATTERN, description="`next_cursor` of the page before"),
    ] = None,
) -> OrderPage:
    views, more = await queries.page(
        caller, status=status, limit=limit, after=_decode_cursor(cursor)
    )
    next_cursor = _encode_cursor(views[-1].order.created_at, views[-1].order.id) if more else None
    return OrderPage(items=[OrderPublic.of(v) for v in views], next_cursor=next_cursor)


@router.post(
    "/orders/{order_id}/cancel",
    **operation(
        "cancelOrder",
        headers=[ETAG],
        problems={404: NOT_YOURS, 409: "The order is rejected or cancelled already."},
        if_match="required",
    ),
)
async def cancel_order(
    order_id: UUID,
    caller: CurrentUserId,
    response: Response,
    uow: UnitOfWorkDep,
    if_match: IfMatch = None,
) -> OrderPublic:
    command = handlers.CancelOrder(
        order_id=order_id, user_id=caller, expected_version=expected_version(if_match)
    )
    return _respond(await handlers.cancel_order(command, uow), response)


def _encode_cursor(created_at: datetime, order_id: UUID) -> str:
    """The position after an order: its creation time in microseconds since the epoch, and its id.

    Every string of `CURSOR_PATTERN` is a position, so the document's pattern says exactly which
    cursors are accepted (any other: 422, naming the field); a made-up one only starts the page
    somewhere else among the caller's own orders.
    """
    return f"{(created_at - _EPOCH) // _MICROSECOND}.{order_id.hex}"


def _decode_cursor(cursor: str | None) -> tuple[datetime, UUID] | None:
    """The (created_at, id) a cursor, already matched against `CURSOR_PATTERN`, points after."""
    if cursor is None:
        return None
    micros, order_id = cursor.split(".")
    return _EPOCH + int(micros) * _MICROSECOND, UUID(hex=order_id)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
