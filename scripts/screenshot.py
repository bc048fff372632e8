"""Screenshot the running app in headless Chromium (Debian's /usr/bin/chromium via Playwright).

    python -m scripts.screenshot --url http://127.0.0.1:7860 --tab Models --out docs/models.png

Prints the visible tab names, so a script or test can check what rendered.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from scripts.system_packages import require

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # This machine's network is closed: background fetches would fail noisily at every start.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    return require("chromium")["chromium"]


@contextmanager
def open_page(
    url: str, fake_microphone: Path | None = None, timeout_ms: int = 30_000, width: int = 1280, height: int = 900
) -> Iterator:
    """A Playwright page on `url` once the app's tabs are drawn, in a `width` x `height` window
    (390 x 844 is a phone). With `fake_microphone` (a WAV file), Chromium grants microphone
    access and plays that file, looped, as the microphone."""
    with open_pages(url, 1, fake_microphone, timeout_ms, width, height) as pages:
        yield pages[0]


@contextmanager
def open_pages(
    url: str,
    count: int,
    fake_microphone: Path | None = None,
    timeout_ms: int = 30_000,
    width: int = 1280,
    height: int = 900,
) -> Iterator[list]:
    """`count` pages as `open_page` opens one, each a visitor of its own (its own browser
    context, so its own Gradio session), in one browser. `timeout_ms` bounds both the pages'
    actions and `expect` assertions (whose own default, 5 s, is shorter than a page of plots and
    players takes to draw when the browser shares two cores with the app)."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=timeout_ms)

    args = list(CHROMIUM_ARGS)
    if fake_microphone is not None:
        args += [
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={fake_microphone}",
        ]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=args)
        try:
            permissions = ["microphone"] if fake_microphone else []
            pages = []
            for _ in range(count):
                context = browser.new_context(viewport={"width": width, "height": height}, permissions=permissions)
                page = context.new_page()
                page.set_default_timeout(timeout_ms)
                page.goto(url)
                page.get_by_role("tab").first.wait_for()
                pages.append(page)
            try:
                yield pages
            except BaseException:
                for page in pages:  # a failed check says what the visitor saw
                    print(page_text(page), file=sys.stderr)
                raise
        finally:
            browser.close()


def page_text(page, limit: int = 4000) -> str:
    """The notices and the text a visitor of `page` sees, for a failure report."""
    try:
        toasts = page.locator(".toast-body").all_inner_texts()
        text = page.evaluate("() => document.body.innerText")
    except Exception as error:  # the page itself may be what failed
        return f"(the page could not be read: {error})"
    return f"---- the page's notices: {toasts}\n---- its text (first {limit} characters):\n{text[:limit]}"


def tab_names(page) -> list[str]:
    """The app's top-level tabs (the first tab list; tasks have tab lists of their own)."""
    return [t.strip() for t in page.get_by_role("tablist").first.get_by_role("tab").all_inner_texts()]


def screenshot(url: str, out: Path, tab: str | None = None, wait_for: str | None = None) -> list[str]:
    """Open `url`, optionally click `tab` and wait for `wait_for` text, save a full-page PNG.
    Returns the names of the tabs on the page."""
    with open_page(url) as page:
        if tab:
            page.get_by_role("tab", name=tab).click()
        if wait_for:
            page.get_by_text(wait_for).first.wait_for()
        page.wait_for_timeout(1000)  # let plots and cards finish drawing
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=True)
        return tab_names(page)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:7860")
    parser.add_argument("--out", type=Path, default=Path("screenshot.png"))
    parser.add_argument("--tab", help="tab to open before the screenshot, e.g. Models")
    parser.add_argument("--wait-for", help="text to wait for before the screenshot")
    args = parser.parse_args()
    print("tabs:", ", ".join(screenshot(args.url, args.out, args.tab, args.wait_for)))
    print("saved", args.out)


if __name__ == "__main__":
    main()
