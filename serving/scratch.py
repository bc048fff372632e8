"""Scratch folders a process removes when it exits: the app's files for download, a benchmark's
models and audio (megabytes to gigabytes each run, which would otherwise pile up in /tmp)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from core import settings


def scratch_folder(prefix: str) -> Path:
    """A new folder in the system's temporary directory, removed at this process's normal exit
    (also after Ctrl-C, and after SIGTERM where the app turns it into one: serving/server.py)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def own_gradio_folder() -> Path:
    """Gradio's folder for uploads and example copies (`GRADIO_TEMP_DIR`), a new one for this app
    unless the operator named one. Gradio's default is one folder per machine, which every app's
    hourly sweep (`delete_cache`) clears of the files the others serve. Call it before Gradio is
    imported: Gradio reads the variable at import."""
    if settings.GRADIO_TEMP_DIR:
        return Path(settings.GRADIO_TEMP_DIR)
    folder = scratch_folder("gradio-")
    settings.set_gradio_temp_dir(folder)
    return folder
