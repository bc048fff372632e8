"""Upload volume per request and per client, checked before Gradio stores anything.

Gradio's upload route (and `/component_server`) takes up to 1,000 files a request, each up to the per-file cap, and no
limit per client: ten 100 MB files were stored in 4.5 s by one request. `UploadGuard` wraps the
app (pure ASGI, so it sees the request before the route reads it):
- a request must state its size (`Content-Length`; browsers and `gradio_client` do), at most one
  file's cap plus its multipart headers, else it is refused before a byte is read;
- a client (`serving.clients`) may upload `UPLOAD_CLIENT_MB` per `UPLOAD_WINDOW_S`, counted by what
  its requests state;
- a request holding more than `UPLOAD_MAX_FILES` files is cut where the next file begins: the rest
  of its body is replaced by a part Gradio's parser rejects, which makes Gradio delete the files
  it had begun, and the visitor gets this guard's sentence instead of the parser's.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from core import settings
from serving.clients import client_address

UPLOAD_MAX_FILES = settings.UPLOAD_MAX_FILES
UPLOAD_CLIENT_MB = settings.UPLOAD_CLIENT_MB
UPLOAD_WINDOW_S = 3600.0  # Gradio's cache keeps an upload about this long (app.CACHE_SWEEP_S)
HEADERS_ALLOWANCE = 64 * 1024  # multipart boundaries and part headers on top of the files

# A part without a field name: Gradio's parser refuses it and deletes the files of the request.
_REJECTED_PART = b"\r\nContent-Disposition: form-data\r\n\r\n"

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class PartCounter:
    """Counts the parts of a multipart body as it streams by, and cuts it where part
    `max_parts + 1` begins (`tripped`)."""

    def __init__(self, boundary: bytes, max_parts: int):
        self.delimiter = b"--" + boundary
        self.max_parts = max_parts
        self.parts = 0
        self.tripped = False
        self._held = b""  # the end of the stream so far, where a delimiter may have begun

    def feed(self, chunk: bytes, last: bool) -> bytes:
        """The bytes to pass on for `chunk` (the last one when `last`)."""
        if self.tripped:
            return b""
        data = self._held + chunk
        start = 0
        while (found := data.find(self.delimiter, start)) >= 0:
            after = found + len(self.delimiter)
            if after + 2 > len(data) and not last:  # closing ("--") or not: the next chunk says
                self._held = data[found:]
                return data[:found]
            if data[after : after + 2] != b"--":
                self.parts += 1
                if self.parts > self.max_parts:
                    self.tripped = True
                    return data[:after] + _REJECTED_PART
            start = after
        keep = 0 if last else min(len(data) - start, len(self.delimiter) + 1)
        self._held = data[len(data) - keep :] if keep else b""
        return data[: len(data) - keep]


class UploadGuard:
    """ASGI middleware over Gradio's app: the limits above on every multipart `POST` (Gradio's
    `/upload`, and `/component_server`, which also takes files); Gradio's `/process_recording`
    (it runs FFmpeg on an uploaded video, for a screen recorder this app does not use) answers 404."""

    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        max_file_bytes: float,
        max_files: int | None = None,
        client_bytes: float | None = None,
        window_s: float = UPLOAD_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.app = app
        self.max_request_bytes = int(max_file_bytes) + HEADERS_ALLOWANCE
        self.max_files = UPLOAD_MAX_FILES if max_files is None else max_files
        self.client_bytes = UPLOAD_CLIENT_MB * 2**20 if client_bytes is None else client_bytes
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._sent: dict[str, deque[tuple[float, int]]] = {}  # client -> (when, bytes stated)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        if scope["path"].endswith("/process_recording"):  # Gradio's screen-recording transcoder: not offered here
            await _respond(send, 404, "Not Found")
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        boundary = _boundary(headers.get("content-type", ""))
        if boundary is None:  # not a file upload (Gradio's upload route refuses it, storing nothing)
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await _respond(send, *refusal)
            return
        counter = PartCounter(boundary, self.max_files)

        async def counted() -> dict[str, Any]:
            if counter.tripped:  # the body ended where the part past the limit began
                return {"type": "http.request", "body": b"", "more_body": False}
            message = await receive()
            if message["type"] != "http.request":
                return message
            last = not message.get("more_body", False)
            body = counter.feed(message.get("body", b""), last)
            return {**message, "body": body, "more_body": not last and not counter.tripped}

        async def answered(message: dict[str, Any]) -> None:
            if not counter.tripped:
                await send(message)
            elif message["type"] == "http.response.start":  # the parser's refusal: ours instead
                await _respond(
                    send, 413, f"An upload may hold at most {self.max_files} files: send the others separately."
                )

        await self.app(scope, counted, answered)

    def _refusal(self, scope: dict[str, Any], headers: dict[str, str]) -> tuple[int, str] | None:
        stated = headers.get("content-length", "")
        if not stated.isdigit():
            return 411, "An upload must state its size (Content-Length)."
        size = int(stated)
        if size > self.max_request_bytes:
            most = (self.max_request_bytes - HEADERS_ALLOWANCE) / 2**20
            return 413, f"The file is too large: an upload may hold at most {most:g} MB."
        peer = (scope.get("client") or (None,))[0]
        client = client_address(peer, headers.get("x-forwarded-for")) or "unknown"
        with self._lock:
            now = self._clock()
            sent = self._sent.setdefault(client, deque())
            while sent and now - sent[0][0] > self.window_s:
                sent.popleft()
            total = sum(n for _, n in sent)
            if total + size > self.client_bytes:
                wait_min = max(1, round((self.window_s - (now - sent[0][0])) / 60)) if sent else 1
                return 429, (
                    f"You have uploaded {total / 2**20:.0f} MB in the last {self.window_s / 60:.0f} minutes, "
                    f"the most this server takes: try again in about {wait_min} minutes."
                )
            sent.append((now, size))
            for quiet in [c for c, s in self._sent.items() if now - s[-1][0] > self.window_s]:
                del self._sent[quiet]  # nothing of theirs in the window: forgotten
        return None


def _boundary(content_type: str) -> bytes | None:
    kind, _, params = content_type.partition(";")
    if kind.strip().lower() != "multipart/form-data":
        return None
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.lower() == "boundary" and value:
            return value.strip('"').encode("latin-1")
    return None


async def _respond(send: Send, status: int, text: str) -> None:
    body = text.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
