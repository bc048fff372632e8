"""A stand-in for ZeroGPU's device API on loopback, the service the `spaces` package asks for a GPU
(`SPACES_ZERO_DEVICE_API_URL`; spaces/zero/api.py and client.py, 0.51.3, are the protocol):

- `POST /startup-report`: the app is up (200);
- `POST /schedule?taskId=&durationSeconds=&...`: a GPU for one call: 200 with `{idle, nvidiaIndex,
  nvidiaUUID, allowToken}`, or 429 with `{left, wait}` when the duration asked for exceeds the
  quota left (the visitor's quota is spent);
- `POST /allow?allowToken=&pid=`: the forked worker that will use it (200);
- `POST /release?allowToken=&fail=`: the call ended (200); the seconds between schedule and
  release are charged to the quota, as ZeroGPU charges the effective duration.

`with DeviceApi(quota_s=120, gpu="GPU-<uuid>") as api:` serves until the block ends; `api.url` for
`SPACES_ZERO_DEVICE_API_URL`, `api.calls` records each call (task, duration asked, seconds used,
failed). On a CUDA machine this lets the real package's ZeroGPU mode run end to end; on a CPU its
client is checked against it (`tests/test_zerogpu.py`).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Call:
    task: int
    asked_s: int
    token: str
    started: float
    used_s: float | None = None
    failed: bool = False


class DeviceApi:
    def __init__(self, quota_s: float = 300.0, gpu: str = "0", wait_s: float = 3600.0):
        self.quota_s, self.gpu, self.wait_s = quota_s, gpu, wait_s
        self.calls: list[Call] = []
        self.allowed: list[int] = []
        self.startups = 0
        self._lock = threading.Lock()

    @property
    def used_s(self) -> float:
        return sum(c.used_s or 0.0 for c in self.calls)

    def __enter__(self) -> DeviceApi:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                with api._lock:
                    if parts.path == "/startup-report":
                        api.startups += 1
                        return self._send(200)
                    if parts.path == "/schedule":
                        return self._schedule(query)
                    if parts.path == "/allow":
                        api.allowed.append(int(query["pid"]))
                        return self._send(200)
                    if parts.path == "/release":
                        call = next((c for c in api.calls if c.token == query.get("allowToken")), None)
                        if call is None:
                            return self._send(404)
                        call.used_s = round(time.monotonic() - call.started, 3)
                        call.failed = query.get("fail", "false").lower() == "true"
                        return self._send(200)
                return self._send(404)

            def _schedule(self, query: dict[str, str]) -> None:
                asked = int(query.get("durationSeconds", 60))
                left = api.quota_s - api.used_s
                if asked > left:
                    return self._send(429, {"left": int(left), "wait": api.wait_s})
                token = uuid.uuid4().hex
                api.calls.append(Call(int(query.get("taskId", 0)), asked, token, time.monotonic()))
                body = {"idle": True, "nvidiaIndex": 0, "nvidiaUUID": api.gpu, "allowToken": token}
                return self._send(200, body)

            def _send(self, status: int, body: dict | None = None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
