"""An operator's numbers from the environment: a typo is logged and the default served."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from core import settings

ROOT = Path(__file__).resolve().parents[1]


def test_a_number_that_is_not_usable_keeps_the_default(monkeypatch, caplog):
    for value, served in (("2", 2), (" 5 ", 5), ("two", 3), ("0", 3), ("-1", 3), ("2.5", 3), ("", 3)):
        monkeypatch.setenv("LIVE_PLACES", value)
        assert settings.number("LIVE_PLACES", 3, int, least=1) == served, value
    for value, served in (("0", 0.0), ("7.5", 7.5), ("nan", 15.0), ("-3", 15.0), ("soon", 15.0)):
        monkeypatch.setenv("LIVE_TURN_S", value)
        assert settings.number("LIVE_TURN_S", 15.0) == served, value
    monkeypatch.delenv("LIVE_TURN_S")
    assert settings.number("LIVE_TURN_S", 15.0) == 15.0
    assert "LIVE_TURN_S='soon' is not a number >= 0; using 15" in caplog.text


def test_the_app_starts_with_a_typo_in_every_setting_and_serves_the_defaults():
    # Each module reads its numbers as it is imported: a typo used to stop the app there.
    names = ("AUDIO_MAX_SECONDS", "UPLOAD_MAX_MB", "HUB_TIMEOUT_S", "HUB_RETRY_S", "LOAD_WAIT_S", "MODEL_NICE")
    names += ("LIVE_PLACES", "LIVE_TURN_S", "LIVE_PER_ADDRESS", "UPLOAD_MAX_FILES", "UPLOAD_CLIENT_MB")
    code = (
        "import json, app\n"
        "from core import audio, hub, inference, slots\n"
        "from tasks import live, server, upload_guard\n"
        "print(json.dumps([audio.DEFAULT_MAX_DURATION_S, server.UPLOAD_MAX_MB, hub.HUB_TIMEOUT_S, slots.RETRY_S,"
        " slots.LOAD_WAIT_S, inference.STEP, live.PLACES, live.TURN_S, live.PER_ADDRESS,"
        " upload_guard.UPLOAD_MAX_FILES, upload_guard.UPLOAD_CLIENT_MB]))\n"
    )
    env = {**os.environ, **dict.fromkeys(names, "ten")}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [
        600.0,
        128.0,
        10.0,
        30.0,
        120.0,
        10,
        3,
        15.0,
        2,
        4,
        1024.0,
    ]
    for name in names:
        assert f"{name}='ten' is not a number" in done.stderr, name
