"""A visitor's first screen, in a real browser at a desktop and a phone width: one instruction at
the top of every tab, no control that can only fail, every result in view after its action, a
keyword headline that agrees with the threshold, and two apps on one machine that never clear
each other's files."""

from __future__ import annotations

import shutil
import urllib.request

import pytest

from tests.helpers import ROOT, START_S, held_pick, pick_example_clip, wait_for_http

pytestmark = pytest.mark.browser

WIDTHS = {"phone": (390, 844), "desktop": (1280, 900)}
INSTRUCTIONS = {
    "Speech recognition": "Record or upload English speech",
    "Keyword spotting": "Say one short English word, or upload a clip",
    "Question answering": "Paste a passage of text and ask a question about it",
}
VISIBLE = "(s) => [...document.querySelectorAll(s)].filter((e) => e.offsetParent !== null).map((e) => e.innerText)"


def in_view(page, selector: str) -> dict:
    """The element's box, asserted inside the window (the visitor sees it without scrolling)."""
    box = page.locator(selector).first.bounding_box()
    height = page.viewport_size["height"]
    assert box is not None and box["y"] >= -1 and box["y"] + box["height"] <= height + 1, (selector, box, height)
    return box


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).first.click()
    page.get_by_text(INSTRUCTIONS[name]).first.wait_for()


@pytest.mark.parametrize("size", list(WIDTHS))
def test_without_models_every_tab_says_what_to_do_and_offers_nothing_that_can_only_fail(size, launch, tmp_path):
    from playwright.sync_api import expect

    from scripts.screenshot import open_page

    width, height = WIDTHS[size]
    with open_page(launch(tmp_path), width=width, height=height) as page:
        for tab, button in (("Speech recognition", "Transcribe"), ("Keyword spotting", "Spot")):
            open_tab(page, tab)
            card = page.get_by_text(f"{tab}: this model is not available on this server").first
            card.wait_for()
            # Plain reasons: no hub id, revision or folder for the visitor.
            assert "/" not in card.inner_text() and "@" not in card.inner_text()
            # The instruction comes first, above the card.
            instruction = page.get_by_text(INSTRUCTIONS[tab]).first.bounding_box()
            assert instruction["y"] < card.bounding_box()["y"]
            expect(page.get_by_role("button", name=button, exact=True)).to_be_disabled()
            for sub in ("Record or upload", "Live"):  # no Record where the model is missing
                page.get_by_role("tab", name=sub, exact=True).locator("visible=true").first.click()
                expect(page.locator("button.record-button:visible")).to_have_count(0)
        open_tab(page, "Question answering")
        expect(page.get_by_role("button", name="Answer with both models")).to_be_disabled()
        assert page.evaluate(VISIBLE, ".toast-body") == [] and page.evaluate(VISIBLE, ".error") == []


@pytest.mark.parametrize("size", list(WIDTHS))
def test_every_result_lands_in_view_and_a_guess_below_the_threshold_is_no_keyword(size, launch, tiny_checkpoints):
    from playwright.sync_api import expect

    from scripts.screenshot import open_page

    width, height = WIDTHS[size]
    with open_page(launch(tiny_checkpoints), width=width, height=height) as page:
        page.get_by_text("About this model").first.wait_for()
        expect(page.locator("button.record-button:visible")).to_have_count(1)  # with a model, Record is there
        pick_example_clip(page)
        page.get_by_role("button", name="Transcribe").click()
        page.get_by_text("s of audio transcribed in").wait_for()
        page.wait_for_timeout(800)  # the smooth scroll
        in_view(page, "#asr-transcript")

        open_tab(page, "Keyword spotting")
        page.get_by_text("About this model").locator("visible=true").first.wait_for()
        top5, timeline = page.get_by_text("Top 5", exact=True), page.get_by_text("Timeline: waveform")
        expect(top5).to_have_count(0)  # no empty plots before there is a result
        expect(timeline).to_have_count(0)
        pick = held_pick(page)  # Spot pressed before the picked clip arrives: it waits for it
        page.locator("button.gallery-item").locator("visible=true").first.click()
        page.get_by_role("button", name="Spot", exact=True).click()
        page.wait_for_timeout(300)
        pick.release()
        page.get_by_text("s of audio classified in").wait_for()
        page.wait_for_timeout(800)
        in_view(page, "#kws-result")  # the headline and the top-5 bars under it
        expect(top5.locator("visible=true")).to_have_count(1)
        verdict = page.locator("#kws-verdict").bounding_box()
        # A random tiny model gives each class about 1/12: the headline is no keyword, not its best guess.
        text = page.locator("#kws-verdict").inner_text()
        assert text.startswith("No keyword") and "a keyword needs 80%" in text, text
        assert verdict["height"] > 30  # large type, the top-5 bars under it

        open_tab(page, "Question answering")
        page.get_by_text("Examples: pick one to fill in both boxes").click()
        page.locator("#qa-answers").wait_for(state="attached")
        examples = page.locator("tr.tr-body").locator("visible=true")
        spans = page.get_by_text("Best spans")
        expect(spans).to_have_count(0)  # no empty tables before a question is asked
        pick = held_pick(page)  # Enter pressed before the picked example arrives: it waits for it
        examples.first.locator("td").first.click()
        page.get_by_label("Question (Enter to ask)").press("Enter")  # Enter asks, as the button does
        page.wait_for_timeout(300)
        expect(page.get_by_label("Question (Enter to ask)")).to_have_value("")
        pick.release()
        expect(examples).to_have_count(0)  # the pick closed the list
        expect(page.get_by_label("Question (Enter to ask)")).not_to_have_value("")  # filled in by the server
        expect(page.locator("#qa-answers")).to_contain_text("The models")  # agree or disagree: both answered
        expect(spans.locator("visible=true")).to_have_count(2)  # each model's spans, in its details
        page.wait_for_timeout(800)
        box = in_view(page, "#qa-answers")
        assert box["height"] < height  # both answers together, the details after them
        assert page.evaluate(VISIBLE, ".toast-body") == []


def test_two_apps_on_one_machine_keep_their_files_apart(app_process, tiny_checkpoints, tmp_path):
    """Each app has a folder of its own for Gradio's copies of uploads and examples, so one's
    hourly sweep of old files never removes what the other serves; it goes when its app stops."""
    tmp = tmp_path / "tmp"  # the apps' temporary folder: other processes' folders stay out of sight
    tmp.mkdir()
    apps, folders = [], []
    for _ in range(2):
        before = set(tmp.glob("gradio-*"))
        proc, url = app_process("--checkpoints", str(tiny_checkpoints), env={"TMPDIR": str(tmp)})
        wait_for_http(url, timeout_s=START_S)
        (folder,) = set(tmp.glob("gradio-*")) - before
        apps.append((proc, url))
        folders.append(folder)
    copies = sorted(folders[1].rglob("*.wav"))
    clips = {p.name for p in (ROOT / "assets").glob("*/*.wav")}
    assert {p.name for p in copies} == clips and {p.name for p in folders[0].rglob("*.wav")} == clips
    shutil.rmtree(folders[0])  # what the first app's sweep could do to its own files
    for path in copies:
        with urllib.request.urlopen(f"{apps[1][1]}gradio_api/file={path}", timeout=30) as response:
            assert response.status == 200 and response.read() == (path.read_bytes())
    apps[1][0].terminate()
    apps[1][0].wait(timeout=30)
    assert not folders[1].exists()


def test_live_shows_its_transcript_and_input_level_in_view_while_recording(launch, tiny_checkpoints):
    from scripts.screenshot import open_page

    clip = sorted((ROOT / "assets" / "asr").glob("*.wav"))[0]
    width, height = WIDTHS["phone"]
    with open_page(launch(tiny_checkpoints), fake_microphone=clip, width=width, height=height) as page:
        page.get_by_text("About this model").first.wait_for()
        page.get_by_role("tab", name="Live", exact=True).locator("visible=true").first.click()
        page.wait_for_timeout(1500)  # the streaming recorder's encoder loads with the tab
        page.get_by_role("button", name="Record").locator("visible=true").first.click()
        page.get_by_text("Input level").first.wait_for()  # under the transcript, as in keyword spotting
        page.wait_for_timeout(1500)
        in_view(page, "#asr-live-audio")  # Stop, and the transcript starting under it
        page.get_by_role("button", name="Stop").locator("visible=true").first.click()
        page.get_by_text("Final transcript of").wait_for()
