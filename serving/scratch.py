"""Scratch folders a process removes when it exits: the app's files for download, a benchmark's
models and audio (megabytes to gigabytes each run, which would otherwise pile up in /tmp)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path


def scratch_folder(prefix: str) -> Path:
    """A new folder in the system's temporary directory, removed at this process's normal exit
    (also after Ctrl-C, and after SIGTERM where the app turns it into one: serving/server.py)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder
