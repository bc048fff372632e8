"""A pytest plugin (conftest.py loads it): a test that needs a Debian package this machine lacks
(Chromium, espeak-ng, sox, ffmpeg: `scripts.system_packages.require` raises) is skipped with a
reason naming the package and the install command, when run by hand. With
`REQUIRE_SYSTEM_PACKAGES=1` (as `.ci/run` sets it) it fails instead: CI never passes by skipping."""

from __future__ import annotations

import os

import pytest

from scripts.system_packages import MissingSystemPackage


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if call.excinfo is None or not call.excinfo.errisinstance(MissingSystemPackage):
        return
    if os.environ.get("REQUIRE_SYSTEM_PACKAGES") == "1":
        return  # a failure, as raised
    path, line, _ = item.location
    report.outcome = "skipped"
    report.longrepr = (path, (line or 0) + 1, f"Skipped: missing system package: {call.excinfo.value}")
