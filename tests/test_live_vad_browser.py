"""Live with voice-activity detection in a real browser: Chromium's fake microphone speaks three
sentences with pauses; each turns final without Stop, about a second after it ends, with the
readouts on the page, and the silence costs no model time."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from scripts.make_smoke_data import speak
from slots.table import SLOTS
from speech import vad
from tests.helpers import call, serving_for_good
from tests.test_vad import voiced

pytestmark = [pytest.mark.browser, pytest.mark.quiet]  # times the page: CI runs it alone (.ci/run)
RATE = 16_000
PAUSE_S = 2.5
SENTENCES = ("the quick brown fox jumps over the lazy dog", "speech recognition turns audio into text",
             "paris is the capital of france")  # fmt: skip


def test_three_sentences_turn_final_without_stop(launch, tiny_checkpoints, tmp_path):
    from scripts.screenshot import open_page

    pieces, ends, at = [np.zeros(RATE // 2, np.float32)], [], RATE // 2
    for i, text in enumerate(SENTENCES):
        voice = sf.read(speak(text, tmp_path / f"{i}.wav"), dtype="float32")[0]
        ends.append((at + voiced(voice)[1] * RATE) / RATE)
        pieces += [voice, np.zeros(int(PAUSE_S * RATE), np.float32)]
        at += len(voice) + int(PAUSE_S * RATE)
    pieces.append(np.zeros(4 * RATE, np.float32))
    microphone = tmp_path / "three.wav"
    sf.write(microphone, np.concatenate(pieces), RATE, subtype="PCM_16")
    url = launch(tiny_checkpoints)
    # The page is timed alone: the int8 exports that begin with the app (a few seconds of both
    # cores) are over before Record, as on a Space whose visitor comes after its start.
    serving_for_good(url, list(SLOTS))
    with open_page(url, fake_microphone=microphone, timeout_ms=60_000) as page:
        page.get_by_text("About this model").first.wait_for()
        page.get_by_role("tab", name="Live").click()
        page.wait_for_timeout(1500)  # the streaming recorder's encoder loads with the tab
        page.evaluate(
            """() => { window.finals = {}; new MutationObserver(() => {
                const m = document.body.innerText.match(/(\\d+) sentences? final/);
                if (m && !(m[1] in window.finals)) window.finals[m[1]] = performance.now(); })
                .observe(document.body, {subtree: true, childList: true, characterData: true}); }"""
        )
        started = page.evaluate("() => performance.now()")
        page.get_by_role("button", name="Record").first.click()
        # No Stop pressed. (The observer sees every count; a locator's polling can miss one.)
        page.wait_for_function("() => Object.keys(window.finals).some(n => n >= 3)", timeout=60_000)
        finals = page.evaluate("() => window.finals")
        readouts = page.get_by_text("model time").first.inner_text()
        page.get_by_role("button", name="Stop").first.click()
        page.get_by_text("Final transcript of").wait_for()
    # Each count shown: a count never drawn (two sentences ended in one update) means the page did
    # not keep up with the microphone.
    assert all(str(n) in finals for n in (1, 2, 3)), (finals, started, ends)
    shown = [(finals[str(n)] - started) / 1000 for n in (1, 2, 3)]
    status = call(url, "status")
    summary = status["asr"]["live"]["readouts"]
    assert summary["recordings"] == 1 and summary["speech_share"] < 0.75  # the pauses cost no model time
    # Each sentence final about a chunk after the pause that ends it, on the server's clock (from
    # the arrival of the audio where the speech ended to the final text: `speech.utterances`).
    assert summary["final_s"] <= vad.END_SILENCE_S + 1.0, summary
    # On the page's clock too, which also holds the recorder's start after the press and the
    # browser's delivery of each chunk (a busy host delays them: in CI once 1.3 s more between two
    # finals than between their sentences' ends). The finals follow the sentences, not Stop.
    assert shown[0] <= ends[0] + vad.END_SILENCE_S + 3.0, (shown, ends, summary)
    for n in (1, 2):
        assert abs((shown[n] - shown[n - 1]) - (ends[n] - ends[n - 1])) <= 2.0, (shown, ends, summary)
    assert "first word" in readouts or "final" in readouts
