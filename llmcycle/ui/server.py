"""Running the UI: ``serve_ui`` in the foreground, with the serving package's socket and uvicorn setup.

``serve_ui`` binds the socket itself (so ``port=0`` works and the real address is printed), prints
the address to open, and serves until SIGTERM or Ctrl-C. Runs started from the page are processes of
their own: they go on when the UI stops, and stay resumable. Tests and the start-up benchmark run the
same app on a thread with ``llmcycle.serving.server.BackgroundServer``.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from llmcycle.serving.server import bind, uvicorn_server
from llmcycle.ui.config import UIConfig

log = logging.getLogger("llmcycle.ui")


def serve_ui(config: UIConfig | dict[str, Any] | None = None, announce: Callable[[str], None] | None = None) -> None:
    """Serve the UI for ``config`` until stopped; ``announce`` gets the line saying where (default: stdout)."""
    from llmcycle.ui.app import create_ui_app  # FastAPI: only when the UI runs

    if not isinstance(config, UIConfig):
        config = UIConfig.from_dict(config, where="ui")
    app = create_ui_app(config)
    sock = bind(config.host, config.port)
    sock.listen(128)  # connections made once the address is printed wait for uvicorn instead of being refused
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    say = announce or (lambda line: print(line, flush=True))
    say(f"llmcycle ui: http://{shown}:{port}/ (runs directory {config.runs_dir}"
        + (", API key required" if config.api_key else "") + "); Ctrl-C stops it")
    uvicorn_server(app, graceful_shutdown_s=5, log_level="warning").run(sockets=[sock])
