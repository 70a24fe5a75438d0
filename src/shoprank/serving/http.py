"""HTTP edge rules BentoML leaves to the service: body size, 422 for invalid fields.

:class:`RequestLimits` is an ASGI middleware. It answers 413 before reading a body larger
than the limit; it turns BentoML's 400 for a request that fails pydantic validation into a
422 whose message names the fields; and it gives every 4xx the same JSON shape
(``{"error": ..., "fields": [...]}``). Responses never carry a stack trace: BentoML logs
exceptions and answers 500 with a generic message, which this leaves alone.
"""

from __future__ import annotations

import json
from typing import Any

Scope = dict[str, Any]


def _json_response(status: int, body: dict) -> tuple[dict, dict]:
    data = json.dumps(body).encode()
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(data)).encode()),
        ],
    }
    return start, {"type": "http.response.body", "body": data}


def field_name(location: list | tuple) -> str:
    """A pydantic error location as a dotted field path (``filters.max_price``)."""
    parts = [str(p) for p in location if p not in ("body", "root")]
    return ".".join(parts) or "body"


def rewrite_error(status: int, body: bytes) -> tuple[int, dict] | None:
    """The uniform error for a BentoML 4xx body, or None to pass it through unchanged."""
    try:
        data = json.loads(body or b"null")
    except ValueError:
        return None
    if isinstance(data, list) and len(data) == 1 and isinstance(data[0], dict):
        data = data[0]  # BentoML wraps a BentoMLException's message in a list
    if not isinstance(data, dict):
        return None
    detail = data.get("detail")
    if status == 400 and isinstance(detail, list) and detail:
        fields = [field_name(d.get("loc", ())) for d in detail if isinstance(d, dict)]
        messages = [f"{f}: {d.get('msg', 'invalid')}" for f, d in zip(fields, detail, strict=False)]
        return 422, {"error": "invalid request: " + "; ".join(messages), "fields": fields}
    if "error" in data:
        return status, {"error": str(data["error"]), "fields": data.get("fields", [])}
    return None


class RequestLimits:
    """ASGI middleware: 413 above ``max_bytes``, 422 naming invalid fields."""

    def __init__(self, app, max_bytes: int = 65_536):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive, send) -> None:
        """Apply the limits to HTTP requests; pass everything else through."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._too_large(send)
            return
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise _BodyTooLargeError
            return message

        try:
            await self.app(scope, limited_receive, _ErrorRewriter(send))
        except _BodyTooLargeError:
            await self._too_large(send)

    async def _too_large(self, send) -> None:
        start, body = _json_response(
            413, {"error": f"request body larger than {self.max_bytes} bytes", "fields": ["body"]}
        )
        await send(start)
        await send(body)


class _BodyTooLargeError(Exception):
    """The streamed body passed the limit."""


class _ErrorRewriter:
    """Buffers 4xx responses and sends them in the uniform shape."""

    def __init__(self, send):
        self.send = send
        self.start: dict | None = None
        self.chunks: list[bytes] = []

    async def __call__(self, message: dict) -> None:
        if message["type"] == "http.response.start" and 400 <= message["status"] < 500:
            self.start = message
            return
        if self.start is None:
            await self.send(message)
            return
        self.chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        body = b"".join(self.chunks)
        rewritten = rewrite_error(self.start["status"], body)
        if rewritten is None:
            headers = [(k, v) for k, v in self.start.get("headers", []) if k != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await self.send({**self.start, "headers": headers})
            await self.send({"type": "http.response.body", "body": body})
            return
        start, out = _json_response(*rewritten)
        await self.send(start)
        await self.send(out)
