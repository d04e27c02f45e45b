"""ASGI middleware: the bearer-token check, the body-size limit and one log line per request.

Both run before any route: an unauthenticated or oversized request never reaches the JSON parser.
The body is read here, at most ``max_body_bytes`` of it (a ``Content-Length`` above the limit is
refused before a byte is read), and replayed to the app. The log line holds the method, path,
status, latency and the token counts a route left in ``request.state.usage``: never a prompt,
an output, a query string or a header.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from typing import Any, Awaitable, Callable

from llmcycle.serving.protocol import APIError

log = logging.getLogger("llmcycle.serving")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


async def send_error(send: Send, error: APIError) -> None:
    """Answer with ``error`` in OpenAI's shape (outside FastAPI's exception handlers)."""
    body = json.dumps(error.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if error.status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """Refuse requests without the API key (401) or with a body over ``max_body_bytes`` (413)."""

    def __init__(self, app: App, api_key: str | None, max_body_bytes: int):
        self.app, self.api_key, self.max_body_bytes = app, api_key, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        if self.api_key and scope["path"].startswith("/v1") and not self._authorized(headers):
            return await send_error(send, APIError(
                401, "missing or wrong API key: send the header `Authorization: Bearer <key>` with the key the "
                "server was started with (--api-key / LLMCYCLE_API_KEY)", code="invalid_api_key"))
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        length = headers.get(b"content-length", b"").decode("latin-1").strip()
        if length and (not length.isdigit() or int(length) > self.max_body_bytes):
            return await send_error(send, self._too_large(length))
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                return await send_error(send, self._too_large(f"more than {self.max_body_bytes}"))
            if not message.get("more_body", False):
                break
        return await self.app(scope, _replay(bytes(body), receive), send)

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.api_key.encode())

    def _too_large(self, size: str) -> APIError:
        return APIError(413, f"request body too large: {size} bytes, the limit is {self.max_body_bytes} "
                        "(--max-body-bytes)", code="request_too_large")


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body already read, then passes through (disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class RequestLog:
    """One INFO line per HTTP request: method, path, status, latency, token counts (no payloads)."""

    def __init__(self, app: App, enabled: bool = True):
        self.app, self.enabled = app, enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.enabled:
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500  # what the client sees if the app fails before answering

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            usage = (scope.get("state") or {}).get("usage") or {}
            tokens = "".join(f" {k}={usage[k]}" for k in ("prompt_tokens", "completion_tokens") if k in usage)
            log.info("%s %s %d %.1fms%s", scope["method"], scope["path"], status,
                     (time.perf_counter() - start) * 1000, tokens)
