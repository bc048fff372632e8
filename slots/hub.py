"""Fetching a slot's model from the Hugging Face Hub: pinned revisions, safetensors only, the
tokenizer before the weights, a deadline on every request, and download progress.

The hub is reached only through huggingface_hub's public API (`HfApi.list_repo_tree`,
`snapshot_download`), so `HF_ENDPOINT`, `HF_HOME` and `HF_HUB_OFFLINE` work as users expect.
"""

from __future__ import annotations

import fnmatch
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tqdm.std import tqdm

from core import settings
from core.errors import NO_SAFETENSORS, NoModelFiles

# Seconds a hub step may go without an answer (no response, no new bytes) before the load gives up
# for now; the slot then retries later. Applies to every request of a load, not only file bodies.
HUB_TIMEOUT_S = settings.HUB_TIMEOUT_S
# Files worth fetching: configs, tokenizer/processor files and safetensors weights. Pickled weights
# are never downloaded, so they can never be loaded.
WEIGHT_PATTERNS = ["*.safetensors"]
PROCESSOR_PATTERNS = ["*.json", "*.txt", "*.model", "*.spm"]
PICKLE_PATTERNS = ["*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl"]
# A checkpoint published from train/ carries its per-example results (core/examples.py): fetched
# with the weights, so a Space serving it from the hub shows its error analysis too.
EXAMPLE_PATTERNS = ["examples/*"]
SERVED_PATTERNS = PROCESSOR_PATTERNS + WEIGHT_PATTERNS + EXAMPLE_PATTERNS  # what a slot fetches to serve

T = TypeVar("T")


class HubTimeout(TimeoutError):
    """The hub went `HUB_TIMEOUT_S` without answering; transient, worth retrying."""


@dataclass(frozen=True)
class HubSource:
    """A hub repository at one revision (a commit sha, a branch, a tag or `refs/pr/N`)."""

    repo_id: str
    revision: str | None = None


def parse_source(text: str) -> HubSource | None:
    """`owner/name` or `owner/name@revision` as a `HubSource`; None for anything else (a path)."""
    text = text.strip()
    if text.startswith((".", "/", "~")):
        return None
    repo_id, at, revision = text.partition("@")
    parts = repo_id.split("/")
    if not 1 <= len(parts) <= 2 or not all(parts) or (at and not revision):
        return None
    return HubSource(repo_id, revision or None)


def is_pinned(source: HubSource) -> bool:
    """Whether `source` names one commit (a full sha): nothing newer can appear under it, while a
    branch, a tag or `refs/pr/N` may move."""
    return source.revision is not None and re.fullmatch(r"[0-9a-f]{40}", source.revision) is not None


def latest_commit(source: HubSource) -> str:
    """The commit `source` points at now (`main` when it names no revision): one API call."""
    from huggingface_hub import HfApi

    install_timeouts()
    return HfApi().model_info(source.repo_id, revision=source.revision or "main").sha


def offline() -> bool:
    """Whether huggingface_hub is offline (`HF_HUB_OFFLINE=1`): only the local cache counts."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


class Progress:
    """Bytes fetched of a download, as the slot's status reports it ('downloading 42 %')."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.done = 0
        self.total = 0
        self.changed = time.monotonic()  # the last time anything moved: the stall clock

    def touch(self) -> None:
        self.changed = time.monotonic()

    def record(self, done: int, total: int) -> None:
        with self._lock:
            if (done, total) != (self.done, self.total):
                self.done = max(self.done, done)
                self.total = max(self.total, total)
                self.touch()

    @property
    def fraction(self) -> float | None:
        return min(1.0, self.done / self.total) if self.total else None

    def tqdm_class(self) -> type[tqdm]:
        """A tqdm class for `snapshot_download` that reports byte counts here and prints nothing."""
        progress = self

        class _Recorder(tqdm):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                kwargs.pop("name", None)
                super().__init__(*args, **{**kwargs, "file": _Silent(), "disable": False})

            def update(self, n: float | None = 1) -> bool | None:
                shown = super().update(n)
                if self.unit == "B":  # file counts ("it") are not bytes
                    progress.record(int(self.n), int(self.total or 0))
                return shown

        return _Recorder


class _Silent:
    def write(self, _: str) -> None:
        pass

    def flush(self) -> None:
        pass


_timeouts_lock = threading.Lock()
_timeouts_installed = False


def install_timeouts() -> None:
    """Give huggingface_hub's shared HTTP client a timeout: by default its API calls (repo info,
    tree listing) have none, so a hub that never answers would hang a load forever. Once per
    process: installing a factory closes the shared client, under any download using it."""
    global _timeouts_installed
    import huggingface_hub
    from huggingface_hub.utils import _http

    def client_factory():
        client = _http.default_client_factory()
        client.timeout = HUB_TIMEOUT_S  # connect, read, write and pool, each
        return client

    with _timeouts_lock:  # slots load in parallel: the first installs, the others wait for it
        if not _timeouts_installed:
            huggingface_hub.set_client_factory(client_factory)
            _timeouts_installed = True


def with_deadline(fn: Callable[[], T], progress: Progress, what: str) -> T:
    """Run `fn` in a worker thread; give up once `progress` has not moved for `HUB_TIMEOUT_S`.

    The worker is abandoned, not killed: its own request timeouts end it later. Nothing waits
    for it, so a stalled hub holds no lock that a request needs."""
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["value"] = fn()
        except BaseException as err:  # noqa: BLE001 - handed to the caller below
            result["error"] = err

    worker = threading.Thread(target=work, name=f"hub: {what}", daemon=True)
    progress.touch()
    worker.start()
    while worker.is_alive():
        worker.join(timeout=0.1)
        if worker.is_alive() and time.monotonic() - progress.changed > HUB_TIMEOUT_S:
            raise HubTimeout(f"the hub did not answer within {HUB_TIMEOUT_S:g} s ({what})")
    if "error" in result:
        raise result["error"]
    return result["value"]


def list_files(source: HubSource) -> dict[str, int]:
    """Path -> size of every file at `source.revision` (one API call, paginated)."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    tree = HfApi().list_repo_tree(source.repo_id, revision=source.revision, recursive=True)
    return {f.path: int(f.size or 0) for f in tree if isinstance(f, RepoFile)}


def matching(files: dict[str, int], patterns: list[str]) -> dict[str, int]:
    """The entries of `files` whose paths match any of the glob `patterns`."""
    return {p: s for p, s in files.items() if any(fnmatch.fnmatch(p, pat) for pat in patterns)}


def require_safetensors(source: HubSource, files: dict[str, int]) -> None:
    """Refuse a revision without safetensors weights, before anything is downloaded."""
    if matching(files, WEIGHT_PATTERNS):
        return
    pickled = sorted(matching(files, PICKLE_PATTERNS))
    at = f"revision {source.revision}" if source.revision else "its default branch"
    raise NoModelFiles(
        f"{source.repo_id} has no safetensors weights at {at}"
        + (f" (only pickled {', '.join(pickled)}, which is never loaded)" if pickled else ""),
        NO_SAFETENSORS,
    )


def download(source: HubSource, patterns: list[str], progress: Progress | None = None) -> Path:
    """The snapshot folder holding the files of `source` that match `patterns`. Offline
    (`HF_HUB_OFFLINE=1`), only the local cache is consulted, so a machine without a network
    fails at once. Its bytes are counted in `progress`, if given; no progress bar is printed: the
    slots download at once, and their bars interleaved in the server log (`/status` says how far
    each download is)."""
    from huggingface_hub import snapshot_download

    return Path(
        snapshot_download(
            source.repo_id,
            revision=source.revision,
            allow_patterns=patterns,
            etag_timeout=HUB_TIMEOUT_S,
            local_files_only=offline(),
            tqdm_class=(progress or Progress()).tqdm_class(),
        )
    )


def preloaded(source: HubSource, files: tuple[str, ...]) -> Path | None:
    """The snapshot folder of pinned `source` if every one of `files` is in the local cache (a
    Space's `preload_from_hub` put them there at build), else None. Asks the hub nothing."""
    from huggingface_hub import try_to_load_from_cache

    if not files or not is_pinned(source):
        return None
    found = [try_to_load_from_cache(source.repo_id, name, revision=source.revision) for name in files]
    if not all(isinstance(path, str) for path in found):
        return None
    return Path(found[0]).parent


def vanished(err: BaseException) -> bool:
    """Whether `err` says the revision asked for is not on the hub (a pinned commit that is gone)."""
    from huggingface_hub.errors import RevisionNotFoundError

    return isinstance(err, RevisionNotFoundError)


def is_transient(err: BaseException) -> bool:
    """Whether a failed hub step is worth retrying: timeouts, lost connections, the hub's own
    5xx/429 answers. A missing repo or revision, refused weights or offline mode are not."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OfflineModeIsEnabled):
            return False
        if isinstance(current, (HubTimeout, httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError)):
            return True
        if isinstance(current, HfHubHTTPError) and current.response is not None:
            status = current.response.status_code
            if status >= 500 or status == 429:
                return True
        current = current.__cause__ or current.__context__
    return False


def plain_reason(err: BaseException) -> str | None:
    """A few plain words for a failed hub step that a visitor may read (no URL, no path, no
    library advice), or None when `err` is not a hub failure."""
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(err, (OfflineModeIsEnabled, LocalEntryNotFoundError)):
        return "the model hub is not reachable from this server"
    if isinstance(err, (RepositoryNotFoundError, RevisionNotFoundError)):
        return "not found on the model hub"
    if is_transient(err):
        return "the model hub did not answer"
    if isinstance(err, HfHubHTTPError):
        return "the model hub refused the request"
    return None
