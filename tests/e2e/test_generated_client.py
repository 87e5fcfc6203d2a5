"""A client generated from the committed OpenAPI documents works against the real services.

`openapi-python-client` (a local generator: no network) writes a client package for each
service from `catalogue/openapi/<service>.json` into a temporary directory, at test time; the
test imports them and walks through the README's curl session with them: an administrator sets
a SKU's stock; a customer registers, signs in, places an order of it, polls until it is
confirmed holding stock and credit, has a second order rejected as out of stock, cancels the
first with `If-Match` and reads it back. Every answer, problems included, is parsed by the
generated code into its documented model.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from docsite import openapi
from tests.e2e.harness import Stack
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

GENERATOR = Path(sys.executable).with_name("openapi-python-client")
PASSWORD = "correct horse"
SERVICES = ("user_svc", "order_svc", "inventory_svc")


def generate_client(service: str, into: Path) -> str:
    """Generate `<service>_client` from the committed document; its package name."""
    package = f"{service}_client"
    config = into / f"{package}.yml"
    # No formatting afterwards (`post_hooks`): the code is imported, not read.
    config.write_text(f"package_name_override: {package}\npost_hooks: []\n")
    subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(openapi.DEFAULT_DIR / openapi.FOLDER / f"{service}{openapi.SUFFIX}"),
            "--meta",
            "none",
            "--config",
            str(config),
            "--output-path",
            str(into / package),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return package


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every service's client package, importable while the module's tests run."""
    directory = tmp_path_factory.mktemp("clients")
    packages = [generate_client(service, directory) for service in SERVICES]
    sys.path.insert(0, str(directory))
    try:
        yield
    finally:
        sys.path.remove(str(directory))
        for name in [m for m in sys.modules if m.split(".")[0] in packages]:
            del sys.modules[name]


def module(name: str) -> Any:
    return importlib.import_module(name)


async def test_each_service_serves_the_committed_document(stack: Stack) -> None:
    async with httpx.AsyncClient() as client:
        for process in stack.services:
            served = (await client.get(f"{process.url}/openapi.json")).json()
            committed = json.loads(
                (
                    openapi.DEFAULT_DIR / openapi.FOLDER / f"{process.module}{openapi.SUFFIX}"
                ).read_text("utf-8")
            )

            assert served == committed, process.module


async def test_the_readme_walk_through_runs_with_a_client_generated_from_the_documents(
    stack: Stack, generated: None
) -> None:
    users = module("user_svc_client")
    orders = module("order_svc_client")
    inventory = module("inventory_svc_client")
    register_user = module("user_svc_client.api.users.register_user")
    issue_token = module("user_svc_client.api.users.issue_token")
    get_current_user = module("user_svc_client.api.users.get_current_user")
    place_order = module("order_svc_client.api.orders.place_order")
    get_order = module("order_svc_client.api.orders.get_order")
    cancel_order = module("order_svc_client.api.orders.cancel_order")
    list_orders = module("order_svc_client.api.orders.list_orders")
    set_stock = module("inventory_svc_client.api.stock.set_stock")
    get_stock = module("inventory_svc_client.api.stock.get_stock")
    user_models: Any = module("user_svc_client.models")
    order_models: Any = module("order_svc_client.models")
    inventory_models: Any = module("inventory_svc_client.models")
    anonymous = users.Client(base_url=stack.user_svc.url)

    # an administrator (listed in ADMIN_EMAILS) sets a SKU's stock: 201 the first time
    admin = stack.admin_email
    made_admin = await register_user.asyncio_detailed(
        client=anonymous,
        body=user_models.UserCreate(email=admin, name="Admin", password=PASSWORD),
    )
    assert made_admin.status_code == 201, made_admin.content
    admin_in = await issue_token.asyncio_detailed(
        client=anonymous, body=user_models.TokenRequest(username=admin, password=PASSWORD)
    )
    admin_at_inventory = inventory.AuthenticatedClient(
        base_url=stack.inventory_svc.url, token=admin_in.parsed.access_token
    )
    sku = f"BOOK-{uuid.uuid4().hex[:8]}"
    stocked = await set_stock.asyncio_detailed(
        sku, client=admin_at_inventory, body=inventory_models.StockSet(on_hand=5)
    )
    assert stocked.status_code == 201, stocked.content
    assert (stocked.parsed.on_hand, stocked.parsed.available) == (5, 5)
    assert stocked.headers["ETag"] == '"1"'

    # register and sign in
    email = f"ann-{uuid.uuid4().hex[:8]}@example.com"
    registered = await register_user.asyncio_detailed(
        client=anonymous,
        body=user_models.UserCreate(email=email, name="Ann", password=PASSWORD),
    )
    assert registered.status_code == 201, registered.content
    assert registered.headers["Location"] == f"/users/{registered.parsed.id}"
    signed_in = await issue_token.asyncio_detailed(
        client=anonymous, body=user_models.TokenRequest(username=email, password=PASSWORD)
    )
    assert signed_in.status_code == 200, signed_in.content
    token = signed_in.parsed.access_token
    me_at_users = users.AuthenticatedClient(base_url=stack.user_svc.url, token=token)
    me_at_orders = orders.AuthenticatedClient(base_url=stack.order_svc.url, token=token)
    me_at_inventory = inventory.AuthenticatedClient(base_url=stack.inventory_svc.url, token=token)

    # place an order (202, pending); repeat-safe with an Idempotency-Key
    body = order_models.OrderCreate(
        items=[order_models.ItemIn(sku=sku, quantity=2, unit_price=1500)]
    )
    key = uuid.uuid4().hex
    placed = await place_order.asyncio_detailed(client=me_at_orders, body=body, idempotency_key=key)
    again = await place_order.asyncio_detailed(client=me_at_orders, body=body, idempotency_key=key)
    assert placed.status_code == 202, placed.content
    assert placed.parsed.status.value == "pending"
    assert placed.headers["Location"] == f"/orders/{placed.parsed.id}"
    assert again.parsed.id == placed.parsed.id
    order_id = placed.parsed.id

    # a moment later it is confirmed (ETag "2"): the credit and the stock are reserved
    async def confirmed() -> Any:
        read = await get_order.asyncio_detailed(order_id, client=me_at_orders)
        return read if read.parsed.status.value == "confirmed" else None

    read = await eventually(confirmed, what=f"order {order_id} confirmed")
    assert read.headers["ETag"] == '"2"'
    me = await get_current_user.asyncio_detailed(client=me_at_users)
    assert me.parsed.credit_reserved == 3000
    held = await get_stock.asyncio_detailed(sku, client=me_at_inventory)
    assert (held.parsed.on_hand, held.parsed.reserved, held.parsed.available) == (5, 2, 3)

    # more than is available: rejected, out of stock, holding nothing
    too_many = await place_order.asyncio_detailed(
        client=me_at_orders,
        body=order_models.OrderCreate(
            items=[order_models.ItemIn(sku=sku, quantity=4, unit_price=1500)]
        ),
        idempotency_key=uuid.uuid4().hex,
    )
    assert too_many.status_code == 202, too_many.content

    async def rejected() -> Any:
        read = await get_order.asyncio_detailed(too_many.parsed.id, client=me_at_orders)
        return read if read.parsed.status.value == "rejected" else None

    refused = await eventually(rejected, what="the second order rejected")
    assert refused.parsed.reason.value == "out_of_stock"

    # cancel it with the version you hold; the credit and the stock are released
    cancelled = await cancel_order.asyncio_detailed(
        order_id, client=me_at_orders, if_match=read.headers["ETag"]
    )
    assert cancelled.status_code == 200, cancelled.content
    assert cancelled.parsed.status.value == "cancelled"
    stale = await cancel_order.asyncio_detailed(
        order_id, client=me_at_orders, if_match=read.headers["ETag"]
    )
    assert (stale.status_code, stale.parsed.status) == (412, 412)

    async def released() -> bool:
        me = await get_current_user.asyncio_detailed(client=me_at_users)
        return bool(me.parsed.credit_reserved == 0)

    await eventually(released, what="credit released")

    async def stock_released() -> bool:
        read = await get_stock.asyncio_detailed(sku, client=me_at_inventory)
        return bool((read.parsed.reserved, read.parsed.available) == (0, 5))

    await eventually(stock_released, what="stock released")

    # your orders, newest first
    listed = await list_orders.asyncio_detailed(client=me_at_orders, limit=10)
    assert [(o.id, o.status.value) for o in listed.parsed.items] == [
        (too_many.parsed.id, "rejected"),
        (order_id, "cancelled"),
    ]
    assert listed.parsed.next_cursor is None
