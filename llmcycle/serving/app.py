"""``create_app``: the FastAPI application of ``llmcycle serve``.

Endpoints (OpenAI-compatible where OpenAI has them):

* ``POST /v1/completions``: text completion, one prompt or a list; ``stream: true`` for SSE chunks
  (a streamed request runs alone, bypassing batching: its tokens are sent as they are generated);
* ``POST /v1/chat/completions``: chat messages rendered into one prompt (``llmcycle.serving.models``);
* ``GET /v1/models``, ``GET /v1/models/{name}``: the base model and each adapter, by served name;
* ``GET /health``: status, served names and batching counters (no auth; 503 while shutting down).

Every error, including unknown routes and failures nobody foresaw, is answered in OpenAI's shape
``{"error": {"message", "type", "param", "code"}}``. The scheduler starts and stops with the app's
lifespan: on shutdown (uvicorn stops on SIGTERM/SIGINT once in-flight requests finish) queued
requests are finished before the model thread stops.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmcycle.core.errors import LLMCycleError
from llmcycle.serving.config import ServeConfig
from llmcycle.serving.middleware import RequestGuard, RequestLog
from llmcycle.serving.models import ServedModels
from llmcycle.serving.protocol import APIError, ChatRequest, CompletionRequest, parse_request
from llmcycle.serving.service import Service

log = logging.getLogger("llmcycle.serving")

ROUTES = "POST /v1/completions, POST /v1/chat/completions, GET /v1/models, GET /health"


def create_app(config: ServeConfig | dict[str, Any] | None = None, loaded: Any = None) -> FastAPI:
    """The server for ``config``; the model and adapters load now (errors surface before serving).

    ``loaded``: an already loaded ``LoadedModel`` to serve instead of loading ``config.model`` (adapters
    in ``config.adapters`` are attached to it, in place).
    """
    if not isinstance(config, ServeConfig):
        config = ServeConfig.from_dict(config, where="serve")
    service = Service(config, ServedModels.load(config, loaded))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        service.scheduler.start()
        try:
            yield
        finally:
            await service.scheduler.close()

    app = FastAPI(title="llmcycle", summary=f"OpenAI-compatible server for {config.model}", lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.service = service
    _add_routes(app, service)
    _add_error_handlers(app)
    _document_bodies(app)
    app.add_middleware(RequestGuard, api_key=config.api_key, max_body_bytes=config.max_body_bytes)
    app.add_middleware(RequestLog, enabled=config.log_requests)  # outermost: logs 401s and 413s too
    return app


def _add_routes(app: FastAPI, service: Service) -> None:
    @app.get("/health")
    async def health() -> JSONResponse:
        body = service.health()
        return JSONResponse(body, status_code=503 if service.scheduler.closing else 200)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [service.model_card(name) for name in service.models.names]}

    @app.get("/v1/models/{name:path}")
    async def model(name: str) -> dict[str, Any]:
        return service.model_card(service.model_name(name))

    @app.post("/v1/completions", openapi_extra=_body("CompletionRequest"))
    async def completions(request: Request) -> Any:
        req = parse_request(await request.body(), CompletionRequest)
        return _respond(await service.completions(req, request.state))

    @app.post("/v1/chat/completions", openapi_extra=_body("ChatRequest"))
    async def chat(request: Request) -> Any:
        req = parse_request(await request.body(), ChatRequest)
        return _respond(await service.chat(req, request.state))


def _body(model: str) -> dict[str, Any]:
    """The OpenAPI request body of a route whose JSON body is parsed by hand (``parse_request``)."""
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model}"}}}}}


def _document_bodies(app: FastAPI) -> None:
    """Put the request models' schemas into ``/openapi.json`` (what clients and schema fuzzers read): the bodies
    are validated by ``parse_request``, not by FastAPI, so FastAPI does not know them by itself."""
    default = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = default()
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            for cls in (CompletionRequest, ChatRequest):
                body = cls.model_json_schema(ref_template="#/components/schemas/{model}")
                schemas.update(body.pop("$defs", {}))
                schemas[cls.__name__] = body
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _respond(result: Any) -> Any:
    if isinstance(result, dict):
        return JSONResponse(result)
    return StreamingResponse(result, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(_: Request, exc: APIError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(LLMCycleError)
    async def user_error(_: Request, exc: LLMCycleError) -> JSONResponse:
        return JSONResponse(APIError(400, str(exc)).body(), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            error = APIError(404, f"no route {request.method} {request.url.path}; this server answers {ROUTES}",
                             code="not_found")
        elif exc.status_code == 405:
            error = APIError(405, f"{request.method} is not allowed on {request.url.path}; this server answers "
                             f"{ROUTES}", code="method_not_allowed")
        else:
            error = APIError(exc.status_code, str(exc.detail), code="http_error")
        return JSONResponse(error.body(), status_code=error.status, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def bug(_: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error")
        return JSONResponse(APIError(500, f"internal server error ({type(exc).__name__}); see the server log",
                                     type="server_error").body(), status_code=500)
