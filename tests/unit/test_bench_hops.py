"""The latency model's arithmetic: each hop taken apart at its instants, the parts adding up
along the saga's critical path through whichever participant's reservation came second.

Pure functions only; the benchmark itself never runs here.
"""

from __future__ import annotations

from bench import hops

# One order's instants, in seconds: POST sent at 0, each hop's instants a few ms apart. Stock
# is reserved first; the credit reservation comes second and completes the order.
INSTANTS = {
    "sent": 100.000,
    "order.created:commit": 100.004,
    "order.created:claimed": 100.006,
    "order.created:delivered": 100.009,
    "order.created:applied@inventory_svc": 100.009,
    "order.created:applied@user_svc": 100.010,
    "inventory.stock_reserved:commit": 100.011,
    "inventory.stock_reserved:claimed": 100.012,
    "inventory.stock_reserved:delivered": 100.014,
    "inventory.stock_reserved:applied": 100.015,
    "user.credit_reserved:commit": 100.013,
    "user.credit_reserved:claimed": 100.016,
    "user.credit_reserved:delivered": 100.018,
    "user.credit_reserved:applied": 100.021,
    "order.confirmed:commit": 100.025,
    "order.confirmed:claimed": 100.027,
    "order.confirmed:delivered": 100.030,
}
CREDIT_LAST = hops.Timeline(INSTANTS, later="user_svc")


def by_name(section: dict[str, object]) -> dict[str, dict[str, object]]:
    return {hop["name"]: hop for hop in section["hops"]}  # type: ignore[attr-defined,index]


def test_an_asynchronous_hop_is_publish_network_and_consume() -> None:
    hop = by_name(hops.summarise([CREDIT_LAST], []))["order.created"]

    assert hop["parts"] == {
        "publish": {"p50_ms": 2.0, "p99_ms": 2.0},
        "network": {"p50_ms": 3.0, "p99_ms": 3.0},
        "consume: waiting": {"p50_ms": 1.0, "p99_ms": 1.0},
        "consume: transaction": {"p50_ms": 3.0, "p99_ms": 3.0},
    }
    assert hop["total"] == {"p50_ms": 9.0, "p99_ms": 9.0}


def test_the_path_runs_through_the_participant_whose_reservation_came_second() -> None:
    hop = by_name(hops.summarise([CREDIT_LAST], []))["the later reservation"]

    assert hop["parts"]["publish"] == {"p50_ms": 3.0, "p99_ms": 3.0}  # type: ignore[index]
    assert hop["total"] == {"p50_ms": 12.0, "p99_ms": 12.0}


def test_the_path_follows_stock_when_stock_came_second() -> None:
    stock_last = hops.Timeline(INSTANTS, later="inventory_svc")

    hop = by_name(hops.summarise([stock_last], []))["order.created"]

    assert hop["parts"]["consume: waiting"] == {"p50_ms": 0.0, "p99_ms": 0.0}  # type: ignore[index]
    assert hop["total"] == {"p50_ms": 7.0, "p99_ms": 7.0}


def test_the_hops_add_up_to_the_sagas_latency() -> None:
    section = hops.summarise([CREDIT_LAST], [])

    whole = sum(hop["total"]["p50_ms"] for hop in section["hops"])  # type: ignore[index]
    assert round(whole, 3) == section["saga"]["p50_ms"] == 30.0  # type: ignore[index]


def test_each_participants_branch_runs_from_the_orders_commit_to_its_reservations_delivery() -> (
    None
):
    section = hops.summarise([CREDIT_LAST], [])

    assert section["participants"] == [
        {
            "name": "user_svc",
            "reservation": "user.credit_reserved",
            "later_share": 1.0,
            "branch": {"p50_ms": 14.0, "p99_ms": 14.0},
        },
        {
            "name": "inventory_svc",
            "reservation": "inventory.stock_reserved",
            "later_share": 0.0,
            "branch": {"p50_ms": 10.0, "p99_ms": 10.0},
        },
    ]


def test_an_order_is_timed_only_with_every_instant_of_its_path() -> None:
    assert hops.needed("user_svc") <= INSTANTS.keys()
    assert "order.created:applied@inventory_svc" not in hops.needed("user_svc")


def test_the_last_hop_ends_at_the_delivery_of_order_confirmed() -> None:
    hop = by_name(hops.summarise([CREDIT_LAST], []))["order.confirmed"]

    assert list(hop["parts"]) == ["publish", "network"]  # type: ignore[arg-type]


def test_a_read_is_request_response_and_network() -> None:
    reads = [{"request": 0.0005, "response": 0.0001, "network": 0.0004}] * 3

    hop = by_name(hops.summarise([], reads))["GET /orders/{id}"]

    assert hop["total"] == {"p50_ms": 1.0, "p99_ms": 1.0}
    assert hop["parts"]["request"] == {"p50_ms": 0.5, "p99_ms": 0.5}  # type: ignore[index]


def test_no_timed_orders_leave_the_saga_hops_empty() -> None:
    section = hops.summarise([], [])

    assert section["saga"] is None
    assert all(hop["total"] is None for hop in section["hops"])  # type: ignore[index]
