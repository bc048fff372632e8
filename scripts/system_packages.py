"""The Debian packages some scripts call (`.ci/run` installs them): a missing one is named, with
the command that installs it, instead of failing deep inside a subprocess."""

from __future__ import annotations

import shutil

INSTALL = "apt-get install -y --no-install-recommends chromium espeak-ng sox ffmpeg"


class MissingSystemPackage(RuntimeError):
    """A program this needs is not on PATH."""


def require(*programs: str) -> dict[str, str]:
    """Each program's path; raises `MissingSystemPackage` naming the first one missing."""
    found = {}
    for program in programs:
        path = shutil.which(program)
        if path is None and program == "chromium":
            path = shutil.which("chromium-browser")
        if path is None:
            raise MissingSystemPackage(f"{program} is not installed: `{INSTALL}`")
        found[program] = path
    return found
