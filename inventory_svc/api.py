"""inventory_svc's HTTP routes: request -> command -> handler -> response. No SQL here."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from inventory_svc import handlers
from inventory_svc.domain import MAX_ON_HAND, Stock
from inventory_svc.queries import StockQueries
from inventory_svc.uow import InventoryUnitOfWork, unit_of_work
from shared.web.auth import Administrator, CurrentUserId
from shared.web.etags import IfMatch, etag, expected_version
from shared.web.fields import JSON_INTEGER
from shared.web.openapi import ETAG, LOCATION, Link, header_refs, operation

MAX_PAGE_SIZE = 100
# The SKUs of order lines: 1 to 64 printable ASCII characters.
SKU_PATTERN = r"^[\x20-\x7e]{1,64}$"
# A position in the list (`_encode_cursor`): the last SKU served, each character as two hex digits.
CURSOR_PATTERN = r"^(?:[2-6][0-9a-f]|7[0-9a-e]){1,64}$"
FORBIDDEN = "Signed in, but without the admin role."


class StockSet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    on_hand: Annotated[int, Field(ge=0, le=MAX_ON_HAND), JSON_INTEGER]


class StockPublic(BaseModel):
    sku: str
    on_hand: int
    reserved: int
    available: int
    version: int

    @classmethod
    def of(cls, stock: Stock) -> StockPublic:
        return cls(
            sku=stock.sku,
            on_hand=stock.on_hand,
            reserved=stock.reserved,
            available=stock.available,
            version=stock.version,
        )


class StockPage(BaseModel):
    items: list[StockPublic]
    next_cursor: str | None


# Dependencies are coroutines: FastAPI runs a plain `def` dependency in a worker thread, and
# that hop costs more than the rest of a simple request.
async def _unit_of_work(request: Request) -> InventoryUnitOfWork:
    return unit_of_work(request.app.state.database)


async def _queries(request: Request) -> StockQueries:
    queries: StockQueries = request.app.state.queries
    return queries


UnitOfWorkDep = Annotated[InventoryUnitOfWork, Depends(_unit_of_work)]
QueriesDep = Annotated[StockQueries, Depends(_queries)]
# `path`: a SKU may hold a `/` (sent as %2F), and still names one stock.
Sku = Annotated[str, Path(pattern=SKU_PATTERN, description="The SKU, URL-encoded")]

router = APIRouter(tags=["stock"])


def _respond(stock: Stock, response: Response) -> StockPublic:
    response.headers["ETag"] = etag(stock.version)
    return StockPublic.of(stock)


THIS_STOCK = {"sku": "$response.body#/sku"}
READ_IT = Link("getStock", THIS_STOCK)
SET_IT = Link("setStock", {**THIS_STOCK, "header.If-Match": "$response.header.ETag"})


@router.put(
    "/stock/{sku:path}",
    **operation(
        "setStock",
        headers=[ETAG],
        links=[READ_IT, SET_IT],
        problems={403: FORBIDDEN, 409: "on_hand is below what is reserved; nothing changed."},
        if_match="when_exists",
        responses={
            201: {
                "description": "Created: the SKU's first stock",
                "model": StockPublic,
                "headers": header_refs(LOCATION, ETAG),
            }
        },
    ),
)
async def set_stock(
    sku: Sku,
    body: StockSet,
    caller: Administrator,
    response: Response,
    uow: UnitOfWorkDep,
    if_match: IfMatch = None,
) -> StockPublic:
    """Create a SKU's stock (201, no If-Match), or set an existing one's (If-Match, 200)."""
    command = handlers.SetStock(
        sku=sku,
        on_hand=body.on_hand,
        expected_version=None if not (if_match or "").strip() else expected_version(if_match),
    )
    done = await handlers.set_stock(command, uow)
    if done.created:
        response.status_code = status.HTTP_201_CREATED
        response.headers["Location"] = f"/stock/{quote(sku, safe='')}"
    return _respond(done.stock, response)


@router.get(
    "/stock/{sku:path}",
    **operation(
        "getStock",
        headers=[ETAG],
        links=[SET_IT],
        problems={404: "No stock record for this SKU: it is not stock-managed."},
    ),
)
async def read_stock(
    sku: Sku, caller: CurrentUserId, response: Response, queries: QueriesDep
) -> StockPublic:
    return _respond(await handlers.get_stock(sku, queries), response)


@router.get(
    "/stock",
    **operation(
        "listStock",
        problems={
            403: FORBIDDEN,
            422: "Invalid input, naming each field that is wrong; or a cursor this API "
            "did not issue.",
        },
    ),
)
async def list_stock(
    caller: Administrator,
    queries: QueriesDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
    cursor: Annotated[
        str | None,
        Query(pattern=CURSOR_PATTERN, description="`next_cursor` of the page before"),
    ] = None,
) -> StockPage:
    stocks, more = await queries.page(limit=limit, after=_decode_cursor(cursor))
    return StockPage(
        items=[StockPublic.of(s) for s in stocks],
        next_cursor=_encode_cursor(stocks[-1].sku) if more else None,
    )


def _encode_cursor(sku: str) -> str:
    """The position after a SKU, URL-safe as it is.

    Every string of `CURSOR_PATTERN` is the hex of a printable ASCII text of 1 to 64 characters,
    a SKU, so the document's pattern says exactly which cursors are accepted (any other: 422,
    naming the field); a made-up one only starts the page at another SKU.
    """
    return sku.encode("ascii").hex()


def _decode_cursor(cursor: str | None) -> str | None:
    """The SKU a cursor, already matched against `CURSOR_PATTERN`, points after."""
    if cursor is None:
        return None
    return bytes.fromhex(cursor).decode("ascii")
