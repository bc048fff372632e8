"""Training data from the hub, as a run uses it: the files of the splits it reads, at one commit,
and nothing else.

A dataset is its id, a revision (a branch, a tag, `refs/convert/parquet`, a commit) and either a
config the dataset's README declares (`clean` of `openslr/librispeech_asr`) or a folder of a
parquet export (`v0.01/` of `google/speech_commands`' `refs/convert/parquet`, which declares no
configs). `open_splits` resolves the revision to the commit it names now, asks the hub which files
hold each split (a listing: nothing is downloaded), and returns them; `read_split` reads one
split's files as parquet. Loading a dataset by name instead would download and prepare every split
of the config (`train.360` too, for a run that reads `train.100`).

What goes wrong on the way (no network, no such dataset, revision, config or split) is one
`DataSourceError` sentence saying which flag to change, or `--data_dir` for a local copy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from core.errors import InputError

logger = logging.getLogger(__name__)
LOCAL = "or use --data_dir for a local copy"  # the way out of every hub failure


class DataSourceError(InputError):
    """The hub dataset a run asked for cannot be read."""


@dataclass(frozen=True)
class HubDataset:
    """A hub dataset as a run's arguments name it."""

    name: str
    revision: str | None = None
    config: str | None = None
    folder: str | None = None


@dataclass
class OpenedDataset:
    """The dataset at the commit its revision named when the run started: what metrics.json and
    the model card record, and the files each split used is read from."""

    name: str
    revision: str
    commit: str
    config: str | None
    folder: str | None
    files: dict[str, list[str]]


def dataset_record(opened: OpenedDataset | None) -> dict[str, Any]:
    """`{"dataset": ...}` for metrics.json's `extra` when the data came from the hub, else {}."""
    if opened is None:
        return {}
    return {"dataset": {k: v for k, v in asdict(opened).items() if v is not None}}


def open_splits(dataset: HubDataset, splits: list[str]) -> OpenedDataset:
    """`dataset` resolved to a commit, with the files of `splits` (a listing, no download)."""
    from datasets import load_dataset_builder
    from huggingface_hub import HfApi

    revision = dataset.revision or "main"
    with hub_errors(dataset):
        commit = HfApi().dataset_info(dataset.name, revision=revision).sha
        builder = load_dataset_builder(dataset.name, dataset.config, data_dir=dataset.folder, revision=commit)
    available = {str(split): [str(f) for f in files] for split, files in (builder.config.data_files or {}).items()}
    missing = [s for s in splits if not available.get(s)]
    if missing:
        has = ", ".join(sorted(available)) or "none"
        raise DataSourceError(
            f"{_where(dataset)} has no split {', '.join(missing)} (it has: {has}); check --dataset_config, {LOCAL}"
        )
    files = {s: available[s] for s in splits}
    opened = OpenedDataset(dataset.name, revision, commit, dataset.config, dataset.folder, files)
    logger.info("dataset %s at commit %s: %s", _where(dataset), commit, opened.files)
    return opened


@dataclass(frozen=True, eq=False)
class DatasetAudio:
    """One row's encoded audio in a memory-mapped split, read when used (`speech.audio.stored`):
    a run holds its clips' positions, not their bytes (train-clean-100's ~6 GB of FLAC stays on
    disk)."""

    table: Any  # a `datasets` Dataset whose audio column is `Audio(decode=False)`
    index: int

    def encoded(self) -> dict[str, Any]:
        return self.table[self.index]["audio"]


def audio_rows(table: Any) -> list[DatasetAudio]:
    """Every row's audio of a split read with `read_split`, without reading any of it."""
    from datasets import Audio

    table = table.cast_column("audio", Audio(decode=False))
    return [DatasetAudio(table, i) for i in range(len(table))]


def read_split(opened: OpenedDataset, split: str, streaming: bool = False) -> Any:
    """One split's files as a `datasets` Dataset (memory-mapped on disk), or an IterableDataset
    that reads them as it goes (`streaming`)."""
    import pyarrow
    from datasets import load_dataset

    with hub_errors(HubDataset(opened.name, opened.commit, opened.config, opened.folder)):
        table = load_dataset("parquet", data_files={split: opened.files[split]}, split=split, streaming=streaming)
    # Converting the files into the memory-mapped cache leaves Arrow's allocator holding a split's
    # worth of freed buffers; handed back, the process keeps only the positions of the rows.
    pyarrow.default_memory_pool().release_unused()
    return table


def first_rows(table: Any, n: int | None) -> Any:
    """The first `n` rows of a split (all of them when None), in the dataset's order."""
    return table if n is None or n >= len(table) else table.select(range(n))


@contextmanager
def hub_errors(dataset: HubDataset) -> Iterator[None]:
    """Errors of the hub clients as one sentence naming the flag to change."""
    from datasets.exceptions import DatasetNotFoundError
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = _where(dataset)
    try:
        yield
    except RevisionNotFoundError as err:
        raise DataSourceError(
            f"{where}: no revision {dataset.revision!r} on the hub; check --dataset_revision, {LOCAL}"
        ) from err
    except (RepositoryNotFoundError, DatasetNotFoundError) as err:
        raise DataSourceError(f"{where}: no such dataset on the hub; check --dataset_name, {LOCAL}") from err
    except EntryNotFoundError as err:
        raise DataSourceError(f"{where}: a file the dataset lists is missing on the hub ({err}); {LOCAL}") from err
    except (ValueError, FileNotFoundError) as err:  # datasets: a config or folder the dataset does not have
        raise DataSourceError(f"{where}: {_short(err)}; check --dataset_config, {LOCAL}") from err
    except HfHubHTTPError as err:
        raise DataSourceError(f"{where}: the hub refused the request ({_short(err)}); {LOCAL}") from err
    except Exception as err:
        if not isinstance(err, OfflineModeIsEnabled) and not _unreachable(err):
            raise
        raise DataSourceError(f"{where}: the hub could not be reached ({_short(err)}); {LOCAL}") from err


def _where(dataset: HubDataset) -> str:
    where = f"hub dataset {dataset.name}"
    if dataset.config or dataset.folder:
        where += f" ({dataset.config or dataset.folder})"
    if dataset.revision:
        where += f"@{dataset.revision}"
    return where


def _unreachable(err: BaseException | None) -> bool:
    """Whether `err` (or what caused it) is the network failing: no route, refused, timed out.
    The HTTP clients' own exception classes differ by version, so they are known by module."""
    while err is not None:
        module = type(err).__module__.split(".")[0]
        if isinstance(err, (ConnectionError, TimeoutError)) or module in ("httpx", "httpx2", "httpcore", "httpcore2"):
            return True
        err = err.__cause__ or err.__context__
    return False


def _short(err: BaseException) -> str:
    return str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
