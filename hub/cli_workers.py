"""`alerthub serve --workers N`: the deployment aiohttp documents for several processes on one
host, gunicorn's arbiter with aiohttp's gunicorn worker, built here as a gunicorn application in
this process (no gunicorn command line, no config file). The arbiter keeps N workers, replaces
one that dies, and on SIGTERM has each drain its open requests as a single `serve` does.

Each worker is a fork of this process that builds its own app (`create_app`) after the fork: no
Redis connection, task or loop is shared. The sockets are bound by `serve` before the embedded
Redis starts (so a port in use is one line, as without workers) and handed to the arbiter.

The workers keep their counters in prometheus_client's multiprocess mode, in a fresh folder the
arbiter makes and removes (`shared_metrics`), so that /metrics answers the host's sum whichever
worker the kernel picks (hub/ops/metrics.py)."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web
from gunicorn import glogging
from gunicorn.app.base import BaseApplication
from gunicorn.errors import HaltServer
from prometheus_client import multiprocess, values

from hub.app import create_app
from hub.settings import Settings

# Like web.run_app's shutdown_timeout: how long open requests get to finish on SIGTERM. The
# aiohttp worker waits 95% of it, then the arbiter SIGKILLs what is left.
GRACEFUL_TIMEOUT_S = 60
# A worker that has not told the arbiter it lives for this long (its loop blocked) is replaced.
WORKER_TIMEOUT_S = 60
KEEPALIVE_S = 75  # aiohttp's own keep-alive, which a single `serve` uses
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def worker_class() -> str:
    """aiohttp's uvloop worker where uvloop is installed (as `serve` uses it), else asyncio's."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "aiohttp.worker.GunicornWebWorker"
    return "aiohttp.worker.GunicornUVLoopWebWorker"


class HubLogs(glogging.Logger):
    """gunicorn's own lines (worker booted, exited, replaced) through the hub's JSON renderer on
    the root logger (hub/logs.py), instead of handlers of gunicorn's own. No access log: the
    hub's middleware writes one line per request."""

    def setup(self, cfg: Any) -> None:
        self.cfg = cfg
        self._access_log_enabled = False
        self.loglevel = logging.getLogger().level
        self.error_log.propagate = True
        self.error_log.setLevel(logging.getLogger().level)
        self.access_log.propagate = False
        self.access_log.disabled = True


class HubWorkers(BaseApplication):  # type: ignore[misc]  # gunicorn has no type hints
    """The arbiter's configuration and the app factory each worker calls after its fork."""

    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self._settings = settings
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for name, value in self._options.items():
            if name in self.cfg.settings:  # an option an older gunicorn lacks stays unset
                self.cfg.set(name, value)

    def load(self) -> Callable[[], Awaitable[web.Application]]:
        settings = self._settings

        async def build() -> web.Application:
            app = create_app(settings)
            gc.freeze()  # as serve does: what lives as long as the worker leaves the GC's passes
            return app

        return build


@contextlib.contextmanager
def shared_metrics() -> Iterator[str]:
    """A fresh, empty folder for prometheus_client's multiprocess mode, named in this process's
    environment for the workers it forks; removed when the arbiter stops (by the arbiter only:
    each worker leaves through this frame too)."""
    owner = os.getpid()
    before = os.environ.get(MULTIPROC_ENV)
    path = tempfile.mkdtemp(prefix="alerthub-metrics-")
    os.environ[MULTIPROC_ENV] = path
    # prometheus_client chooses how metrics keep their values when it is first imported, which
    # hub.app did before this: choose again, so that the metrics each worker builds after its
    # fork keep them in files of `path`.
    values.ValueClass = values.get_value_class()
    try:
        yield path
    finally:
        if os.getpid() == owner:
            if before is None:
                os.environ.pop(MULTIPROC_ENV, None)
            else:
                os.environ[MULTIPROC_ENV] = before
            values.ValueClass = values.get_value_class()
            shutil.rmtree(path, ignore_errors=True)


def run_workers(
    settings: Settings,
    sockets: list[socket.socket],
    workers: int,
    announce: Callable[[str], None],
) -> int:
    """Run `workers` hub processes on `sockets` (bound and listening) until SIGTERM or Ctrl-C;
    0 then, 3 when a worker could not start (gunicorn stops them all)."""
    fds = [sock.detach() for sock in sockets]  # the arbiter owns and closes them from here
    with shared_metrics() as metrics_dir:
        settings = dataclasses.replace(settings, metrics_dir=metrics_dir)
        return _run_arbiter(settings, fds, workers, announce)


def _run_arbiter(
    settings: Settings, fds: list[int], workers: int, announce: Callable[[str], None]
) -> int:
    metrics_dir = settings.metrics_dir
    options: dict[str, Any] = {
        "bind": [f"fd://{fd}" for fd in fds],
        "workers": workers,
        "worker_class": worker_class(),
        "graceful_timeout": GRACEFUL_TIMEOUT_S,
        "timeout": WORKER_TIMEOUT_S,
        "keepalive": KEEPALIVE_S,
        "logger_class": f"{__name__}.HubLogs",
        "proc_name": "alerthub",
        "when_ready": lambda _arbiter: announce(""),
        # A worker that exited keeps its counters in the sum (counters never go down); this
        # drops only the files of live gauges, prometheus_client's bookkeeping for a dead pid.
        "child_exit": lambda _arbiter, worker: multiprocess.mark_process_dead(
            worker.pid, metrics_dir
        ),
        # gunicorn 23+ opens a control socket for `gunicornc`; the hub is managed by signals.
        "control_socket_disable": True,
    }
    try:
        HubWorkers(settings, options).run()
    except HaltServer as e:
        # The arbiter halts by sys.exit, but when a second worker fails to boot while the first
        # failure's halt is reaping, gunicorn raises HaltServer out of halt() itself.
        print(f"alerthub: {e.reason}", file=sys.stderr)
        return int(e.exit_status) or 3
    except SystemExit as e:  # the arbiter leaves by sys.exit, in itself as in each worker
        if isinstance(e.code, int) and e.code:
            return e.code
        if e.code not in (None, 0):
            raise
    return 0
