"""Operator settings (core/settings.py): one module reads them, a typo is logged and the default
served, and the table in docs/serving.md is the one the module prints."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from core import settings

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("app.py", "core", "speech", "qa", "slots", "serving", "ui", "train")


def test_a_number_that_is_not_usable_keeps_the_default(monkeypatch, caplog):
    for value, served in (("2", 2), (" 5 ", 5), ("two", 3), ("0", 3), ("-1", 3), ("2.5", 3), ("", 3)):
        monkeypatch.setenv("LIVE_PLACES", value)
        assert settings.read_number("LIVE_PLACES", 3, int, least=1) == served, value
    for value, served in (("0", 0.0), ("7.5", 7.5), ("nan", 15.0), ("-3", 15.0), ("soon", 15.0)):
        monkeypatch.setenv("LIVE_TURN_S", value)
        assert settings.read_number("LIVE_TURN_S", 15.0) == served, value
    monkeypatch.delenv("LIVE_TURN_S")
    assert settings.read_number("LIVE_TURN_S", 15.0) == 15.0
    assert "LIVE_TURN_S='soon' is not a number >= 0; using 15" in caplog.text


@pytest.mark.slow
def test_the_app_starts_with_a_typo_in_every_setting_and_serves_the_defaults():
    names = ("AUDIO_MAX_SECONDS", "UPLOAD_MAX_MB", "HUB_TIMEOUT_S", "HUB_RETRY_S", "LOAD_WAIT_S", "MODEL_NICE")
    names += ("LIVE_PLACES", "LIVE_TURN_S", "LIVE_PER_ADDRESS", "UPLOAD_MAX_FILES", "UPLOAD_CLIENT_MB")
    code = (
        "import json, app\n"
        "from core import inference\n"
        "from serving import live_places, server, upload_guard\n"
        "from slots import hub, slot\n"
        "from speech import audio\n"
        "print(json.dumps([audio.DEFAULT_MAX_DURATION_S, server.UPLOAD_MAX_MB, hub.HUB_TIMEOUT_S, slot.RETRY_S,"
        " slot.LOAD_WAIT_S, inference.STEP, live_places.PLACES, live_places.TURN_S, live_places.PER_ADDRESS,"
        " upload_guard.UPLOAD_MAX_FILES, upload_guard.UPLOAD_CLIENT_MB]))\n"
    )
    env = {**os.environ, **dict.fromkeys(names, "ten")}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    served = json.loads(done.stdout.strip().splitlines()[-1])
    assert served == [600.0, 128.0, 10.0, 30.0, 120.0, 10, 5, 15.0, 2, 4, 1024.0]
    for name in names:
        assert f"{name}='ten' is not a number" in done.stderr, name


def test_the_command_line_listens_where_spaces_says(monkeypatch):
    from serving import server

    monkeypatch.setattr(settings, "SERVER_NAME", "0.0.0.0")
    monkeypatch.setattr(settings, "SERVER_PORT", 7861)
    args = server.parse_args([])
    assert (args.host, args.port, server.parse_args(["--port", "9000"]).port) == ("0.0.0.0", 7861, 9000)


def test_every_setting_is_read_in_one_module():
    readers = []
    for place in PRODUCT:
        for path in sorted((ROOT / place).rglob("*.py")) if (ROOT / place).is_dir() else [ROOT / place]:
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if re.search(r"os\.environ|getenv", line):
                    readers.append(f"{path.relative_to(ROOT)}:{number}")
    others = [r for r in readers if not r.startswith("core/settings.py:")]
    # The session patch keeps Gradio's own test flag as Gradio reads it.
    assert [r.split(":")[0] for r in others] == ["serving/sessions.py"], others


def test_the_docs_table_is_the_one_the_module_prints():
    docs = (ROOT / "docs" / "serving.md").read_text()
    assert settings.markdown_table() in docs
    assert [s.name for s in settings.TABLE if f"`{s.name}`" not in docs] == []


def test_a_model_variable_is_read_as_the_slot_loads_and_names_only_the_slots(monkeypatch):
    from slots.table import SLOTS

    assert sorted(spec.env_var for spec in SLOTS.values()) == sorted(settings.MODEL_VARIABLES)
    monkeypatch.setenv("KWS_MODEL", "  someone/kws@main ")
    assert settings.model_source("KWS_MODEL") == "someone/kws@main"
    monkeypatch.delenv("KWS_MODEL")
    assert settings.model_source("KWS_MODEL") == ""
    try:
        settings.model_source("HOME")
    except KeyError as err:
        assert "not a model setting" in str(err)
    else:
        raise AssertionError("HOME was read as a model setting")
