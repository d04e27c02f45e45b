"""``llmcycle ui``: the local web UI (playground, runs and reports, recipe launcher).

Option help comes from ``UIConfig``'s field descriptions (documented once).
"""

from __future__ import annotations

from typing import Optional

import typer

from llmcycle.cli.output import field_help
from llmcycle.ui.config import UIConfig


def ui_cmd(
    runs_dir: str = typer.Option("runs", "--runs-dir", help=field_help(UIConfig, "runs_dir")),
    port: int = typer.Option(7860, help=field_help(UIConfig, "port")),
    host: str = typer.Option("127.0.0.1", help=field_help(UIConfig, "host")),
    api_key: Optional[str] = typer.Option(None, envvar="LLMCYCLE_API_KEY", show_envvar=True, help=field_help(UIConfig, "api_key")),
) -> None:
    """Open the web UI on this machine: try models and settings side by side, browse and compare runs, start
    recipes. Local only unless --host and --api-key say otherwise."""
    from llmcycle.ui.server import serve_ui  # FastAPI, uvicorn: only when the UI runs

    serve_ui(UIConfig.from_dict({"runs_dir": runs_dir, "port": port, "host": host, "api_key": api_key or None},
                                where="ui"))
