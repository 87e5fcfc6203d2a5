"""The HTTP server every long-running role runs (uvicorn), and how it stops.

SIGTERM or SIGINT stops taking connections, lets in-flight requests finish, then runs the app's
shutdown, which drains the role's parts (`shared.runtime.parts`). A shutdown that hangs has two ways
out: a second signal exits at once, and so does the deadline after the first. A hard exit loses
nothing: messages are acked only after their commit (the broker redelivers the rest) and outbox
rows stay unpublished until a relay confirms them.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType

import uvicorn
from fastapi import FastAPI

log = logging.getLogger(__name__)

HTTP_DRAIN_SECONDS = 10
SHUTDOWN_DEADLINE_SECONDS = 30.0


class _Server(uvicorn.Server):
    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:
            log.warning("second %s during shutdown: exiting now", signal.Signals(sig).name)
            os._exit(1)
        super().handle_exit(sig, frame)
        deadline = threading.Timer(SHUTDOWN_DEADLINE_SECONDS, _exit_after_deadline)
        deadline.daemon = True
        deadline.start()


def _exit_after_deadline() -> None:
    log.error("shutdown took longer than %ss: exiting now", SHUTDOWN_DEADLINE_SECONDS)
    os._exit(1)


def run(app: FastAPI, *, host: str, port: int, access_log: bool, forwarded_allow_ips: str) -> None:
    """Serve `app` until SIGINT/SIGTERM."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=access_log,
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
        timeout_graceful_shutdown=HTTP_DRAIN_SECONDS,
    )
    _Server(config).run()
