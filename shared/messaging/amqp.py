"""How a service's AMQP connection notices a broker that went silent.

A broker node that dies with its host, freezes, or sits behind a broken network path closes
nothing: the TCP connection stays open and quiet, and without heartbeats the client would wait
on it for as long as TCP takes to give up (minutes), its publishes unconfirmed and its
consumer idle. With a heartbeat of `HEARTBEAT_SECONDS` both sides send a frame whenever they
have nothing else to say; aio-pika (aiormq) closes a connection that has received nothing for
three heartbeats plus a little, so a silent broker is noticed within about four heartbeats,
and the robust connection reconnects, through a load balancer or a Kubernetes Service, to a
node that is up. A `heartbeat` already set in `AMQP_URL` is kept.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit, urlunsplit

HEARTBEAT_SECONDS = 3


def with_heartbeat(url: str) -> str:
    """`url`, with `heartbeat=HEARTBEAT_SECONDS` unless it sets a heartbeat of its own."""
    parts = urlsplit(url)
    if "heartbeat" in parse_qs(parts.query):
        return url
    heartbeat = f"heartbeat={HEARTBEAT_SECONDS}"
    query = f"{parts.query}&{heartbeat}" if parts.query else heartbeat
    return urlunsplit(parts._replace(query=query))
