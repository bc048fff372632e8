"""Helpers the tests import (fixtures live in conftest.py): ports, waiting for the app, calling an
endpoint over plain HTTP, the settled `/status`, the browser's recordings, pressing Record."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client

from scripts.local_app import ROOT, free_port, settled_status  # noqa: F401 - the tests' names for them

TAB_NAMES = ["Speech recognition", "Keyword spotting", "Question answering", "Models"]
# What the tiny CTC models are built to spell (their character vocabulary).
LONG_AUDIO_TEXT = "hello little letters the quick brown fox jumps over the lazy dog all week"
# A context of distinct tokens, so a span's position says which window holds it.
QA_CONTEXT = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma"

# Seconds `python app.py` may take to answer: importing torch, transformers and Gradio alone takes
# 13-17 s on a 2-core machine; a start that waits on the hub would take far longer.
START_S = 30


def call(url: str, api: str, *args, timeout: float = 30):
    """One endpoint over plain HTTP (Gradio's call API): the value, or raises with its error."""
    request = urllib.request.Request(
        f"{url}gradio_api/call/{api}",
        data=json.dumps({"data": list(args)}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        event = json.load(response)["event_id"]
    with urllib.request.urlopen(f"{url}gradio_api/call/{api}/{event}", timeout=timeout) as response:
        lines = response.read().decode().splitlines()
    kind = next(line.split(": ", 1)[1] for line in lines if line.startswith("event:"))
    data = json.loads(next(line.split(": ", 1)[1] for line in lines if line.startswith("data:")))
    if kind != "complete":
        raise RuntimeError(f"{api} failed: {data}")
    return data[0]


def wait_for_http(url: str, timeout_s: float) -> float:
    """Seconds until `url` answered 200; fails the test after `timeout_s`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return time.monotonic() - start
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"{url} did not answer within {timeout_s} s")


def recordings(upload_dir: Path) -> list[Path]:
    """WAV files the browser uploaded to Gradio, without the example clips Gradio copies there."""
    from ui import asr, kws

    examples = {Path(e).name for e in asr.EXAMPLES + kws.EXAMPLES}
    return [p for p in Path(upload_dir).rglob("*.wav") if p.name not in examples]


class Held:
    """Holds back the page's requests matching `pattern` until `release`: what the page does
    meanwhile is what it does on a slow connection before their answers arrive."""

    def __init__(self, page, pattern: str) -> None:
        self.pattern = pattern
        self.held = []
        self.released = False
        page.route(pattern, self._route)

    def _route(self, route) -> None:
        if self.released:
            route.continue_()
        else:
            self.held.append(route)

    def assert_held(self) -> None:
        assert self.held, f"no request matched {self.pattern}: has Gradio renamed it?"

    def release(self) -> None:
        self.released = True
        for route in self.held:
            route.continue_()


def held_recorder(page) -> Held:
    """Gradio's streaming-recorder scripts, the chunks it imports when a streaming microphone
    mounts, held: a Record pressed meanwhile finds no recorder (nothing is recorded while the page
    shows a recording)."""
    return Held(page, "**/assets/module-*.js")


def held_pick(page) -> Held:
    """Gradio's unqueued requests held: an example's pick (a POST to .../run/predict) has not
    landed, and the inputs are still the old ones."""
    return Held(page, "**/gradio_api/run/predict")


def record_until_heard(page, heard: Callable[[], bool], tries: int = 3) -> None:
    """Press Record, and when the page says no sound arrives (`ui.live.watch`), do
    as it asks: Stop and Record again, until `heard()`."""
    from ui.live import NO_SOUND_S

    note = no_sound_note(page)
    for _ in range(tries):
        page.get_by_role("button", name="Record").first.click()
        note.first.wait_for(state="hidden")  # the last press's note, cleared by this one
        deadline = time.monotonic() + NO_SOUND_S + 30  # a busy machine can answer late
        while not heard() and not note.count() and time.monotonic() < deadline:
            page.wait_for_timeout(250)
        if heard():
            return
        assert note.count(), "no audio reached the server and the page did not say so"
        page.get_by_role("button", name="Stop").first.click()
    raise AssertionError(f"no audio after {tries} presses of Record")


def pick_example_clip(page) -> None:
    """Click the open tab's first example clip and wait until a player for it appears (the pick is
    a round trip to the server)."""
    players = "() => [...document.querySelectorAll('button[aria-label=Play]')].filter((e) => e.offsetParent).length"
    before = page.evaluate(players)
    page.locator("button.gallery-item").locator("visible=true").first.click()
    page.wait_for_function(f"({players})() > {before}")


def no_sound_note(page):
    """The page's "no sound has reached the app" note (`ui.live.watch`)."""
    from ui.live import NO_SOUND

    return page.get_by_text(NO_SOUND.split(". ")[0])


class Clock:
    """A clock that moves only when a test sets `t` (seconds)."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@contextmanager
def served(checkpoints: Path) -> Iterator[Client]:
    """The app on `checkpoints` in this process (no preload), and a client of it."""
    demo, url = serve_here(checkpoints, preload=False)
    try:
        yield Client(url, verbose=False)
    finally:
        close_app(demo)


def serve_here(checkpoints: Path, preload: bool | None = None) -> tuple[Any, str]:
    """The app on `checkpoints` served in this process: (its Blocks, its URL). Stop it with
    `close_app`.

    As in `python app.py`, the models start loading (with `preload`, by default the app's) once
    the app answers: loads begun before the launch (a tiny model's int8 export runs in this
    process and holds the GIL) delayed the server's first answer to Gradio's reachability check
    (0.72 s against 0.04 s on an idle box), past its 3 s in CI's loaded one, and `launch` gave
    up. Unlike the app's start (`serving.server.warm_start`), the heap is not frozen (a test
    process's objects are not meant to live forever) and the audio decoding workers start on the
    first file (started with every app, they added 17 s to the quick tier)."""
    import app
    from serving.server import preload_default

    registry = app.open_registry(checkpoints, preload=False)
    demo = app.build_app(registry)
    port = free_port()

    def started() -> None:
        if preload_default() if preload is None else preload:
            registry.preload()

    app.serve(demo, "127.0.0.1", port, started=started, prevent_thread_lock=True, quiet=True)
    return demo, f"http://127.0.0.1:{port}/"


def close_app(demo) -> None:
    """Close an app served in this process and wait until its server has stopped. The server's
    last act deletes the files the app handed out, example clips included, at paths the next app
    of this process shares (`tests/conftest.py`); Gradio's own close waits 5 s at most."""
    server = demo.server
    demo.close()
    if server is not None:
        server.thread.join(timeout=120)
        assert not server.thread.is_alive(), "the app's server did not stop within 120 s"


def serving_for_good(client: Client | str, names: list[str], timeout_s: float = 120) -> dict:
    """Ask for each of `names`' models through the server's /status (of a client, or at a URL)
    until each is loaded with its int8 export done (no "upgrading"): the precision it serves from
    now on, whichever finished first."""
    start = time.monotonic()
    while True:
        status = call(client, "status") if isinstance(client, str) else client.predict(api_name="/status")
        if all(status[n]["state"] == "loaded" and "upgrading" not in status[n] for n in names):
            return status
        if time.monotonic() - start > timeout_s:
            raise TimeoutError(f"{names} did not settle: {[status[n].get('state') for n in names]}")
        time.sleep(0.3)
