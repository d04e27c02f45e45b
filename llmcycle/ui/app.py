"""``create_ui_app``: the FastAPI application of ``llmcycle ui`` (one page and its JSON API).

The page (``static/``: one HTML file, one script, one style sheet, no framework and nothing fetched
from elsewhere) talks to these routes:

* ``GET /``: the page; ``GET /static/{app.js,style.css}``; ``GET /api/health``;
* ``GET /api/options``: builtin models, templates, shipped recipes, presets, the generation settings'
  fields (type, default, description) and the models the runs made;
* ``POST /api/settings/check``: ``{"generation": {...}}`` -> ``{"errors": {field: message}}``;
* ``POST /api/generate``: the playground (``llmcycle.ui.playground``), newline-delimited JSON events;
* ``GET /api/runs``, ``GET /api/runs/{run}``, ``GET /api/runs/{run}/report``,
  ``GET /api/runs/{run}/files/{path}`` (a download; ``?inline=1`` to view), ``GET /api/compare?run=A&run=B``;
* ``POST /api/launch/check``, ``POST /api/launch``, ``GET /api/jobs/{run}``, ``POST /api/jobs/{run}/cancel``,
  ``GET /api/jobs`` (every run started from the page), ``POST /api/runs/{run}/resume`` (``llmcycle.ui.launcher``).

Every error is ``{"error": message}`` (plus ``"fields": {path: message}`` for invalid fields) with a
4xx status; a failure nobody foresaw is a 500 saying so, its traceback only in the UI's log. Requests
are guarded before any route: when listening on loopback, a request must name a loopback host (a web
page elsewhere cannot reach the UI by DNS rebinding); with an API key, every ``/api`` route but health
and login needs it (``Authorization: Bearer KEY``, or the cookie ``POST /api/login`` sets); POST bodies
must be JSON (``Content-Type: application/json``: a form on another site cannot post one without a
CORS preflight, which this app never grants) of at most ``MAX_BODY_BYTES``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmcycle.core.errors import LLMCycleError
from llmcycle.generation import PRESETS, GenerationSettings
from llmcycle.models.builtins import BUILTINS
from llmcycle.prompts import list_templates
from llmcycle.recipe.recipe import builtin_recipes
from llmcycle.ui.config import UIConfig
from llmcycle.ui.launcher import Launcher, check_recipe, log_tail
from llmcycle.ui.playground import FieldErrors, Playground, parse_request, settings_errors
from llmcycle.ui.runs import (
    UI_FOLDER,
    RunNotFound,
    compare_runs,
    headline,
    list_files,
    list_runs,
    read_run,
    report_html,
    run_file,
    run_models,
    run_path,
)

log = logging.getLogger("llmcycle.ui")

MAX_BODY_BYTES = 2_000_000
COOKIE = "llmcycle_ui_key"
STATIC = {"app.js": "text/javascript", "style.css": "text/css"}
OPEN_ROUTES = ("/api/health", "/api/login")
# A run's report and files hold text from data sets and models (Markdown passes HTML through): shown in the UI's
# own origin, they must not run scripts or load anything, whatever they contain.
RUN_CONTENT_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
                               "sandbox allow-same-origin",
    "X-Content-Type-Options": "nosniff",
}


class UIError(LLMCycleError):
    """An error with its HTTP status (the routes raise it; the handler answers ``{"error": ...}``)."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


def create_ui_app(config: UIConfig | dict[str, Any] | None = None) -> FastAPI:
    """The UI for ``config`` (runs directory, host, API key). Nothing is loaded until the page asks."""
    if not isinstance(config, UIConfig):
        config = UIConfig.from_dict(config, where="ui")
    runs_dir = Path(config.runs_dir)
    playground = Playground(runs_dir)
    launcher = Launcher(runs_dir)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            playground.close()
            running = launcher.running()
            if running:  # separate processes: they finish (or fail) on their own and stay resumable
                log.info("the UI stops; these runs go on in their own processes: %s", ", ".join(running))

    app = FastAPI(title="llmcycle ui", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.config, app.state.playground, app.state.launcher = config, playground, launcher
    _add_page_routes(app)
    _add_playground_routes(app, playground, runs_dir)
    _add_run_routes(app, runs_dir, launcher)
    _add_launch_routes(app, runs_dir, launcher)
    _add_error_handlers(app)
    app.add_middleware(Guard, api_key=config.api_key, allowed_hosts=config.allowed_hosts)
    return app


# ---- the page --------------------------------------------------------------------------------------------------


def _static(name: str) -> str:
    return (resources.files("llmcycle.ui") / "static" / name).read_text(encoding="utf-8")


def _add_page_routes(app: FastAPI) -> None:
    @app.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        return HTMLResponse(_static("index.html"), headers={"Cache-Control": "no-cache"})

    @app.get("/static/{name}")
    async def static(name: str) -> Response:
        if name not in STATIC:
            raise UIError(404, f"no static file {name!r}")
        return Response(_static(name), media_type=STATIC[name], headers={"Cache-Control": "no-cache"})

    @app.get("/api/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok"}

    @app.post("/api/login")
    async def login(request: Request) -> JSONResponse:
        key = app.state.config.api_key
        body = await json_body(request)
        given = body.get("key") if isinstance(body, dict) else None
        if not key:
            return JSONResponse({"ok": True, "needed": False})
        if not isinstance(given, str) or not hmac.compare_digest(given.encode(), key.encode()):
            raise UIError(401, "wrong key: give the key the UI was started with (--api-key / LLMCYCLE_API_KEY)")
        response = JSONResponse({"ok": True, "needed": True})
        response.set_cookie(COOKIE, cookie_token(key), httponly=True, samesite="strict")
        return response


# ---- the playground --------------------------------------------------------------------------------------------


def generation_fields() -> list[dict[str, Any]]:
    """The settings' fields for the form: name, type, default, description, choices."""
    schema = GenerationSettings.model_json_schema()["properties"]
    out = []
    for name, f in GenerationSettings.model_fields.items():
        if name == "preset":
            continue
        default = f.default_factory() if f.default_factory else f.default
        prop = schema.get(name, {})
        kind = prop.get("type") or "string"
        choices = None
        if "anyOf" in prop:  # early_stopping: true, false or "never"
            extra = [c for a in prop["anyOf"] for c in (a["enum"] if "enum" in a else [a["const"]] if "const" in a else [])]
            kind, choices = "choice", [True, False] + extra
        out.append({"name": name, "type": kind, "default": default, "description": f.description or "",
                    "choices": choices})
    return out


def _add_playground_routes(app: FastAPI, playground: Playground, runs_dir: Path) -> None:
    @app.get("/api/options")
    async def options() -> dict[str, Any]:
        made = []
        for info in list_runs(runs_dir):
            if info.recipe is not None:
                made += [{"value": f"run:{info.name}/{label}", "label": f"{info.name}: {label} ({h.what})"}
                         for label, h in run_models(info)]
        return {"builtins": [{"value": f"builtin:{b.name}", "label": f"builtin:{b.name}: {b.description}"}
                             for b in BUILTINS.values()],
                "run_models": made,
                "templates": [{"name": t.name, "description": t.description} for t in list_templates()],
                "recipes": builtin_recipes(), "presets": PRESETS, "generation_fields": generation_fields(),
                "runs_dir": str(runs_dir)}

    @app.post("/api/settings/check")
    async def check_settings(request: Request) -> dict[str, Any]:
        body = await json_body(request)
        _, errors = settings_errors(body.get("generation") if isinstance(body, dict) else None)
        return {"errors": errors}

    @app.post("/api/generate")
    async def generate(request: Request) -> StreamingResponse:
        req, settings = parse_request(await json_body(request))
        prepared = await playground.run_on_worker(playground.prepare, req, settings)
        return StreamingResponse(_ndjson(playground.events(prepared)), media_type="application/x-ndjson",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _ndjson(events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[str]:
    """Events as JSON lines; an error after the stream started is sent in-band, as an ``error`` event."""
    try:
        async for event in events:
            yield json.dumps(event, ensure_ascii=False) + "\n"
    except LLMCycleError as exc:
        yield json.dumps({"type": "error", "message": str(exc)}) + "\n"
    except Exception as exc:  # the stream has started: report in-band, log the bug
        log.exception("playground generation failed")
        yield json.dumps({"type": "error", "message": f"internal error ({type(exc).__name__}); see the UI's log"}) + "\n"


# ---- runs -------------------------------------------------------------------------------------------------------


def _add_run_routes(app: FastAPI, runs_dir: Path, launcher: Launcher) -> None:
    @app.get("/api/runs")
    async def runs() -> dict[str, Any]:
        rows = []
        for info in list_runs(runs_dir):
            row = info.to_dict()
            row["headline"] = headline(info.metrics)
            job = launcher.jobs.get(info.name)
            row["job"] = job.state if job is not None else None
            rows.append(row)
        return {"runs_dir": str(runs_dir), "exists": runs_dir.is_dir(), "runs": rows}

    @app.get("/api/runs/{name}")
    async def run(name: str) -> dict[str, Any]:
        info = read_run(run_path(runs_dir, name))
        job = launcher.jobs.get(name)
        out = info.to_dict() | {"headline": headline(info.metrics), "files": list_files(runs_dir, name),
                                "models": [{"value": f"run:{name}/{label}", "label": label, "what": h.what}
                                           for label, h in run_models(info)],
                                "log": log_tail(runs_dir / UI_FOLDER / f"{name}.log"),
                                "job": job.state if job is not None else None}
        return out

    @app.get("/api/runs/{name}/report", response_class=HTMLResponse)
    async def report(name: str) -> HTMLResponse:
        return HTMLResponse(report_html(read_run(run_path(runs_dir, name))), headers=RUN_CONTENT_HEADERS)

    @app.get("/api/runs/{name}/files/{relative:path}")
    async def file(name: str, relative: str, inline: bool = False) -> FileResponse:
        path = run_file(runs_dir, name, relative)
        return FileResponse(path, filename=path.name, content_disposition_type="inline" if inline else "attachment",
                            headers=RUN_CONTENT_HEADERS)

    @app.get("/api/compare")
    async def compare(request: Request) -> dict[str, Any]:
        return compare_runs(runs_dir, request.query_params.getlist("run"))


# ---- the launcher -----------------------------------------------------------------------------------------------


def _launch_args(body: Any) -> tuple[str | None, str | None, Any]:
    if not isinstance(body, dict):
        raise UIError(400, "the request must be a JSON object: {recipe or yaml, overrides}")
    recipe, text = body.get("recipe"), body.get("yaml")
    for key, value in (("recipe", recipe), ("yaml", text)):
        if value is not None and not isinstance(value, str):
            raise UIError(400, f"{key}: expected text, got {type(value).__name__}")
    return recipe or None, text if text is not None and text.strip() else None, body.get("overrides")


def _add_launch_routes(app: FastAPI, runs_dir: Path, launcher: Launcher) -> None:
    @app.post("/api/launch/check")
    async def check(request: Request) -> dict[str, Any]:
        checked = check_recipe(*_launch_args(await json_body(request)), runs_dir=runs_dir)
        return {"ok": True, "plan": checked.plan, "source": checked.source, "overrides": checked.overrides}

    @app.post("/api/launch")
    async def launch(request: Request) -> dict[str, Any]:
        checked = check_recipe(*_launch_args(await json_body(request)), runs_dir=runs_dir)  # whole, again
        job = launcher.start(checked)
        return launcher.status(job.run) | {"plan": checked.plan}

    @app.get("/api/jobs")
    async def jobs() -> dict[str, Any]:
        return {"jobs": [launcher.status(name) for name in launcher.jobs]}

    @app.get("/api/jobs/{name}")
    async def job(name: str) -> dict[str, Any]:
        return launcher.status(name)

    @app.post("/api/jobs/{name}/cancel")
    async def cancel(name: str) -> dict[str, Any]:
        launcher.cancel(name)
        return launcher.status(name)

    @app.post("/api/runs/{name}/resume")
    async def resume(name: str) -> dict[str, Any]:
        job = launcher.resume(name)
        return launcher.status(job.run)


# ---- requests and errors ----------------------------------------------------------------------------------------


async def json_body(request: Request) -> Any:
    """The request's JSON body: ``Content-Type: application/json``, at most ``MAX_BODY_BYTES``."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise UIError(415, f"send the body as JSON (Content-Type: application/json), not {ctype or 'no type'}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise UIError(413, f"request body too large: more than {MAX_BODY_BYTES:,} bytes")
    if not body:
        return {}
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise UIError(400, "the body is not UTF-8 text") from None
    except ValueError as exc:
        raise UIError(400, f"the body is not valid JSON ({exc.args[0] if exc.args else exc})") from None


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LLMCycleError)
    async def user_error(_: Request, exc: LLMCycleError) -> JSONResponse:
        if isinstance(exc, FieldErrors):
            return JSONResponse({"error": str(exc), "fields": exc.fields}, status_code=422)
        status = exc.status if isinstance(exc, UIError) else 404 if isinstance(exc, RunNotFound) else 400
        return JSONResponse({"error": str(exc)}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            message = f"no page {request.url.path}"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        return JSONResponse({"error": message}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def bug(_: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error in the UI")
        return JSONResponse({"error": f"internal error ({type(exc).__name__}); see the UI's log"}, status_code=500)


class Guard:
    """ASGI middleware: the loopback host check and the API key, before any route (see the module docstring)."""

    def __init__(self, app: Any, api_key: str | None, allowed_hosts: set[str] | None):
        self.app, self.api_key, self.allowed_hosts = app, api_key, allowed_hosts

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        host = _hostname(headers.get(b"host", b"").decode("latin-1"))
        if self.allowed_hosts is not None and host not in self.allowed_hosts:
            return await _refuse(send, 403, f"this UI answers requests to {', '.join(sorted(self.allowed_hosts))} "
                                 f"only (the request named host {host or '(none)'!r})")
        path = scope.get("path", "")
        if self.api_key and path.startswith("/api/") and path not in OPEN_ROUTES and not self._authorized(headers):
            return await _refuse(send, 401, "this UI needs its key: enter it in the page, or send `Authorization: "
                                 "Bearer KEY` (the key given with --api-key / LLMCYCLE_API_KEY)")
        return await self.app(scope, receive, send)

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        assert self.api_key is not None
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.api_key.encode()):
            return True
        token = cookie_token(self.api_key).encode()
        for part in headers.get(b"cookie", b"").decode("latin-1").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE and hmac.compare_digest(value.strip().encode(), token):
                return True
        return False


def cookie_token(key: str) -> str:
    """What the login cookie holds: a hash of the key (cookie-safe characters, and not the key itself)."""
    return hashlib.sha256(f"llmcycle-ui:{key}".encode()).hexdigest()


def _hostname(host: str) -> str:
    """``host`` of a Host header without its port (``[::1]:7860`` -> ``::1``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


async def _refuse(send: Any, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
