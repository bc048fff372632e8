"""The Compare views in a real browser, at a laptop's and a phone's width: each tab offers its
candidates, compares A and B on an upload or a question and over the stored evaluations."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from scripts.tiny_models import build_kws, build_qa_distilbert
from tests.test_compare_qa import store as store_qa
from tests.test_compare_speech import CLIP, CLIPS, HYPOTHESES, KWS_PREDICTED, TRUE, build_asr, store_asr

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def compare_root(tmp_path_factory, tiny_checkpoints) -> Path:
    from core.examples import ExampleSet, write_examples

    root = tmp_path_factory.mktemp("browser-candidates")
    for name in ("asr", "kws", "qa-distilbert", "qa-xlmr"):
        shutil.copytree(tiny_checkpoints / name, root / name)
    build_asr(root / "asr-seed2", seed=2)
    build_kws(root / "kws-seed2", seed=2)
    build_qa_distilbert(root / "qa-seed2", seed=2)
    for name in ("asr", "asr-seed2"):
        store_asr(root / name, HYPOTHESES[name])
    for name, predicted in KWS_PREDICTED.items():
        rows = [
            {"id": c, "true": t, "predicted": p, "top3": [[p, 0.9]]}
            for c, t, p in zip(CLIPS, TRUE, predicted, strict=True)
        ]
        write_examples(root / name, ExampleSet("kws", "test", rows))
    store_qa(root / "qa-distilbert", 0)
    store_qa(root / "qa-seed2", 1)
    return root


def fits(page, width: int) -> bool:
    """Whether the page itself never scrolls sideways (wide plots scroll inside their own box)."""
    return page.evaluate("() => document.documentElement.scrollWidth") <= width + 1


def pickers_filled(page) -> None:
    """Wait until the open tab's Model A and Model B hold a candidate each: the page fills them in a
    round trip once it has loaded (and again when Compare opens), and a comparison asked for before
    that lands is refused with "Choose two ... models"."""
    from playwright.sync_api import expect

    for name in ("Model A", "Model B"):
        expect(page.get_by_label(name, exact=True).locator("visible=true").first).not_to_have_value("")


@pytest.mark.parametrize("width", [1280, 390])
def test_every_tab_compares_two_candidates(launch, compare_root, width, tmp_path):
    from playwright.sync_api import expect

    from scripts.screenshot import open_page

    with open_page(launch(compare_root), width=width, height=900 if width > 400 else 844, timeout_ms=60_000) as page:
        # Speech recognition: one recording through both, then the stored evaluations paired
        page.get_by_role("tab", name="Compare").first.click()
        page.locator("#asr-compare-audio").get_by_label("Upload file").click()
        page.locator("#asr-compare-audio input[type=file]").set_input_files(str(CLIP))
        page.locator("#asr-compare-audio").get_by_label("Clear").wait_for()
        pickers_filled(page)
        page.get_by_role("button", name="Transcribe with both").click()
        page.get_by_text("real-time factor below 1 is faster").wait_for()
        assert page.get_by_text("checkpoint asr-seed2").count() >= 1
        page.get_by_role("button", name="Compare the two evaluations").first.click()
        page.get_by_text("On the same test set (4 utterances)").wait_for()
        page.get_by_text("B's WER is lower by 18.2 points (better)").first.wait_for()
        assert page.locator("audio").count() >= 1  # the stored clip of an utterance they differ on
        assert fits(page, width)
        page.screenshot(path=str(tmp_path / f"asr-{width}.png"), full_page=True)
        # Keyword spotting: both matrices and their difference over the same clips
        page.get_by_role("tab", name="Keyword spotting").first.click()
        page.get_by_role("tab", name="Compare", exact=True).first.click()
        pickers_filled(page)
        tops = page.get_by_text(re.compile(r"Model [AB]: top 5"))
        expect(tops).to_have_count(0)  # no empty plots before a clip is spotted
        page.locator("#kws-compare-audio").get_by_label("Upload file").click()
        page.locator("#kws-compare-audio input[type=file]").set_input_files(str(CLIP))
        page.locator("#kws-compare-audio").get_by_label("Clear").wait_for()
        page.get_by_role("button", name="Spot with both").click()
        expect(tops.locator("visible=true")).to_have_count(2)
        page.get_by_role("button", name="Compare the two evaluations").first.click()
        page.get_by_text("accuracy A 60.0%, B 80.0%").wait_for()
        page.get_by_text("McNemar's exact test: p = 1").wait_for()
        page.locator(".gtitle", has_text="green: B better").wait_for()  # the difference matrix, drawn
        assert page.locator(".gtitle", has_text="A: kws").count() == 1
        page.screenshot(path=str(tmp_path / f"kws-{width}.png"), full_page=True)
        assert fits(page, width)
        # Question answering: any two, chosen in the pickers
        page.get_by_role("tab", name="Question answering").first.click()
        page.get_by_role("tab", name="Compare any two").first.click()
        picker = page.get_by_role("combobox", name="Model B").first
        picker.click()
        page.get_by_role("option", name="qa-seed2", exact=False).first.click()
        page.get_by_text("its training run scored it on 2 validation questions").first.wait_for()
        pickers_filled(page)
        page.get_by_role("button", name="Compare the two evaluations").first.click()
        page.get_by_text("B's EM is lower by 25.0 points (worse)").wait_for()
        assert fits(page, width)
        page.screenshot(path=str(tmp_path / f"qa-{width}.png"), full_page=True)
