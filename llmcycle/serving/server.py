"""Running the app with uvicorn: ``serve`` in the foreground, ``BackgroundServer`` on a thread.

``serve(config)`` binds the socket itself (so ``port=0`` works and the real port is printed), then
runs uvicorn with the app's lifespan. On SIGTERM or SIGINT uvicorn stops accepting connections,
lets in-flight requests finish (up to ``graceful_shutdown_s``), then the lifespan shutdown finishes
queued work and stops the model thread. uvicorn's access log is off: the app logs its own line
per request, without payloads.

``BackgroundServer`` runs the same server on a thread of the calling process, on a free loopback
port: for tests, notebooks and benchmarks that talk to it over real HTTP.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from typing import Any

from llmcycle.core.errors import LLMCycleError
from llmcycle.serving.config import ServeConfig

log = logging.getLogger("llmcycle.serving")


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on ``host:port`` (``port=0``: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise LLMCycleError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port or --host") \
            from None
    sock.set_inheritable(True)
    return sock


def uvicorn_server(app: Any, graceful_shutdown_s: float | None, log_level: str = "info") -> Any:
    import uvicorn

    config = uvicorn.Config(app, lifespan="on", access_log=False, log_level=log_level,
                            timeout_graceful_shutdown=graceful_shutdown_s, server_header=False)
    return uvicorn.Server(config)


def _log_to_stderr() -> None:
    """Request lines on stderr, timestamped, once: the server's own handler, and no second copy through the root
    logger's (the CLI sets one up for every other command)."""
    logger = logging.getLogger("llmcycle.serving")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def serve(config: ServeConfig | dict[str, Any] | None = None, loaded: Any = None) -> None:
    """Load the model and adapters, then serve until SIGTERM/SIGINT (graceful: in-flight requests finish)."""
    from llmcycle.serving.app import create_app  # FastAPI, torch

    if not isinstance(config, ServeConfig):
        config = ServeConfig.from_dict(config, where="serve")
    _log_to_stderr()
    app = create_app(config, loaded)
    sock = bind(config.host, config.port)
    host, port = sock.getsockname()[:2]
    names = ", ".join(app.state.service.models.names)
    log.info("serving %s as %s on http://%s:%d/v1 (batching %s)", config.model, names, host, port,
             f"up to {config.max_batch_size}, {config.max_wait_ms:g} ms" if config.batching else "off")
    uvicorn_server(app, config.graceful_shutdown_s).run(sockets=[sock])


class BackgroundServer:
    """``with BackgroundServer(app) as server: server.url``: the app served on a thread, on loopback."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, graceful_shutdown_s: float | None = 30,
                 start_timeout_s: float = 120):
        self.app, self.host, self.port = app, host, port
        self.graceful_shutdown_s, self.start_timeout_s = graceful_shutdown_s, start_timeout_s
        self.server: Any = None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "BackgroundServer":
        sock = bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        self.server = uvicorn_server(self.app, self.graceful_shutdown_s, log_level="warning")
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True,
                                       name="llmcycle-uvicorn")
        self.thread.start()
        deadline = time.monotonic() + self.start_timeout_s
        while not self.server.started:  # poll with a deadline: startup includes the app's lifespan
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise LLMCycleError(f"the server did not start on {self.url} within {self.start_timeout_s:g} s")
            time.sleep(0.01)
        return self

    def stop(self, timeout_s: float = 60) -> None:
        """What SIGTERM does: stop accepting, let in-flight requests finish, run the lifespan shutdown."""
        if self.server is not None:
            self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout_s)

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
