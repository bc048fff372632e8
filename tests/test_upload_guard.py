"""Upload volume: files and bytes per request, bytes per client over time, nothing stored for a
refused request (serving/upload_guard.py)."""

from __future__ import annotations

import httpx
import pytest

from serving.upload_guard import PartCounter
from tests.helpers import START_S, wait_for_http


def multipart(files: dict[str, bytes], boundary: str = "b0undary") -> tuple[bytes, str]:
    body = b""
    for name, data in files.items():
        body += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + data
            + b"\r\n"
        )
    body += f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("count", [1, 4, 5])
def test_parts_are_counted_wherever_the_chunks_split_and_the_body_is_cut_at_the_fifth(count):
    body, _ = multipart({f"f{i}.wav": b"RIFF" + bytes(30) + b"--b0und" for i in range(count)})
    for size in (1, 2, 7, 13, len(body)):
        counter = PartCounter(b"b0undary", 4)
        chunks = [body[i : i + size] for i in range(0, len(body), size)]
        passed = b"".join(counter.feed(c, i == len(chunks) - 1) for i, c in enumerate(chunks))
        if count <= 4:
            assert passed == body and counter.parts == count and not counter.tripped
        else:
            assert counter.tripped and counter.parts == 5
            cut = body.index(b"--b0undary", body.index(b"f4.wav") - 80) + len(b"--b0undary")
            assert passed == body[:cut] + b"\r\nContent-Disposition: form-data\r\n\r\n"


def stored(cache) -> list:
    return [p for p in cache.rglob("*") if p.is_file()] if cache.exists() else []


def test_upload_volume_is_bounded_per_request_and_per_client_and_a_refusal_stores_nothing(app_process, tmp_path):
    cache = tmp_path / "gradio-cache"
    env = {"UPLOAD_MAX_MB": "0.5", "UPLOAD_CLIENT_MB": "2", "GRADIO_TEMP_DIR": str(cache)}
    _, url = app_process("--checkpoints", str(tmp_path / "none"), env=env)  # a fraction of a MB starts
    wait_for_http(url, START_S)
    upload = f"{url}gradio_api/upload"

    def post(files: dict[str, bytes]) -> httpx.Response:
        body, content_type = multipart(files)
        return httpx.post(upload, content=body, headers={"content-type": content_type}, timeout=30)

    accepted = post({"a.wav": b"RIFF" + bytes(400_000)})  # under 0.5 MB
    assert accepted.status_code == 200 and len(accepted.json()) == 1
    before = stored(cache)
    too_many = post({f"{i}.wav": b"RIFF" + bytes(1000) for i in range(5)})
    assert too_many.status_code == 413
    assert too_many.text == "An upload may hold at most 4 files: send the others separately."
    too_big = post({"b.wav": b"RIFF" + bytes(600_000)})  # over 0.5 MB: refused from Content-Length
    assert too_big.status_code == 413 and too_big.text == "The file is too large: an upload may hold at most 0.5 MB."
    two = post({"c.wav": b"RIFF" + bytes(200_000), "d.wav": b"RIFF" + bytes(200_000)})
    assert two.status_code == 200 and len(two.json()) == 2
    assert len(stored(cache)) == len(before) + 2  # nothing from the refused requests
    for i in range(3):  # 0.4 MB each, 1.9 MB in all: the client's 2 MB an hour run out
        assert post({"e.wav": b"RIFF" + bytes([i + 1]) + bytes(400_000)}).status_code == 200
    over = post({"f.wav": b"RIFF" + bytes(400_000)})
    assert over.status_code == 429 and over.text.startswith("You have uploaded 2 MB in the last 60 minutes")
    chunked = httpx.post(
        upload, content=iter([b"x" * 10]), headers={"content-type": "multipart/form-data; boundary=x"}
    )
    assert chunked.status_code == 411
    # Gradio's other multipart routes: the same limits, and no screen-recording transcoder.
    body, content_type = multipart({f"{i}.wav": b"RIFF" for i in range(5)})
    component = httpx.post(f"{url}gradio_api/component_server", content=body, headers={"content-type": content_type})
    assert component.status_code == 413
    body, content_type = multipart({"screen.mp4": b"\x00" * 1000})
    recording = httpx.post(f"{url}gradio_api/process_recording", content=body, headers={"content-type": content_type})
    assert recording.status_code == 404
    assert len(stored(cache)) == len(before) + 2 + 3  # the two, then three 0.4 MB uploads: nothing else
