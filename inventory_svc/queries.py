"""Reads that answer HTTP queries: one statement each, outside any transaction.

A single statement already sees one consistent snapshot, so a read needs no BEGIN and no
ROLLBACK. Writes never come here: they go through the unit of work.
"""

from __future__ import annotations

from sqlalchemy import bindparam, select

from inventory_svc.domain import Stock
from inventory_svc.models import stock
from inventory_svc.uow import stock_from
from shared.persistence.database import Database
from shared.persistence.statements import Statement

_STOCK = Statement(select(stock).where(stock.c.sku == bindparam("sku")))
_FIRST_PAGE = Statement(select(stock).order_by(stock.c.sku).limit(bindparam("limit")))
_NEXT_PAGE = Statement(
    select(stock)
    .where(stock.c.sku > bindparam("after", type_=stock.c.sku.type))
    .order_by(stock.c.sku)
    .limit(bindparam("limit"))
)


class StockQueries:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def stock(self, sku: str) -> Stock | None:
        async with self._database.connection() as connection:
            row = await _STOCK.fetchrow(connection, sku=sku)
        return None if row is None else stock_from(row)

    async def page(self, *, limit: int, after: str | None) -> tuple[list[Stock], bool]:
        """One page of every SKU's stock in sku order, after the sku `after`, and whether more
        follow."""
        async with self._database.connection() as connection:
            if after is None:
                rows = await _FIRST_PAGE.fetch(connection, limit=limit + 1)
            else:
                rows = await _NEXT_PAGE.fetch(connection, after=after, limit=limit + 1)
        return [stock_from(row) for row in rows[:limit]], len(rows) > limit
