"""A test that needs a missing Debian package skips with the package's name by hand, and fails
where CI requires every package (tests/system_packages.py)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.helpers import ROOT

NEEDS_A_MISSING_PROGRAM = """
from scripts.system_packages import require


def test_needs_it():
    require("surely-not-installed-program")
"""


def run_pytest(folder, **env) -> subprocess.CompletedProcess:
    test = folder / "test_needs_a_program.py"
    test.write_text(NEEDS_A_MISSING_PROGRAM)
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "tests.system_packages", str(test)]
    command += ["-p", "no:cacheprovider", "--rootdir", str(folder), "-c", os.devnull]
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run(command, cwd=folder, env=environment, capture_output=True, text=True, timeout=120)


def test_a_missing_package_is_a_skip_that_names_it_by_hand(tmp_path):
    done = run_pytest(tmp_path, REQUIRE_SYSTEM_PACKAGES="0")
    assert done.returncode == 0, done.stdout[-2000:]
    assert "1 skipped" in done.stdout
    assert "missing system package: surely-not-installed-program is not installed: `apt-get install" in done.stdout


def test_a_missing_package_fails_where_ci_requires_them(tmp_path):
    done = run_pytest(tmp_path, REQUIRE_SYSTEM_PACKAGES="1")
    assert done.returncode == 1 and "1 failed" in done.stdout, done.stdout[-2000:]
