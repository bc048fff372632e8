"""The three training datasets as tiny hub repositories for the stand-in hub (tests/hub_standin.py),
laid out as the real ones are as far as public facts show (their dataset pages' file lists and
README `configs:`; not checked against the hub itself, which no machine of this project reaches):

- `google/speech_commands`: `main` holds the loading script (which datasets 5 does not run); the
  parquet export, `refs/convert/parquet`, holds `v0.01/<split>/0000.parquet` and `v0.02/...` and
  declares no configs;
- `openslr/librispeech_asr`: parquet files under `<config>/<split>/`, the README declaring the
  configs `clean` (`train.100`, `train.360`, `validation`, `test`) and `other`;
- `rajpurkar/squad_v2`: `squad_v2/<split>-00000-of-00001.parquet`, the README declaring `squad_v2`.

Audio is FLAC noise (the scripts only need it to decode); the features, label names included,
travel in the parquet files' own metadata, as datasets writes them.
"""

from __future__ import annotations

import io
import json

import numpy as np
import soundfile as sf

from tests.hub_standin import Repo

SPEECH_COMMANDS_V001 = [
    *[
        "yes",
        "no",
        "up",
        "down",
        "left",
        "right",
        "on",
        "off",
        "stop",
        "go",
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
    ],
    *["bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow", "_silence_"],
]
PARQUET_EXPORT = "refs/convert/parquet"


def flac(seconds: float, seed: int) -> dict:
    """A `datasets` audio value: FLAC bytes of noise and a file name."""
    samples = (np.random.default_rng(seed).standard_normal(int(16_000 * seconds)) * 0.1).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, samples, 16_000, format="FLAC")
    return {"bytes": buffer.getvalue(), "path": f"{seed}.flac"}


def parquet(rows: list[dict], features) -> bytes:
    """Rows as a parquet file carrying `features` in its metadata (what `datasets` writes)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(rows, schema=features.arrow_schema)
    metadata = {"huggingface": json.dumps({"info": {"features": features.to_dict()}})}
    buffer = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(metadata), buffer)
    return buffer.getvalue()


def readme(configs: dict[str, dict[str, str]]) -> bytes:
    """A dataset card whose front matter declares `configs` (name -> split -> file pattern)."""
    lines = ["---", "configs:"]
    for name, splits in configs.items():
        lines += [f"- config_name: {name}", "  data_files:"]
        lines += [f"  - split: {split}\n    path: {pattern}" for split, pattern in splits.items()]
    return ("\n".join([*lines, "---", "", "A stand-in."]) + "\n").encode()


def speech_commands(clips: int = 24) -> Repo:
    from datasets import Audio, ClassLabel, Features, Value

    features = Features(
        {
            "file": Value("string"),
            "audio": Audio(sampling_rate=16_000),
            "label": ClassLabel(names=SPEECH_COMMANDS_V001),
            "is_unknown": Value("bool"),
            "speaker_id": Value("string"),
            "utterance_id": Value("int8"),
        }
    )

    def rows(split: str, seed: int, count: int) -> list[dict]:
        out = []
        for i in range(count):
            label = i % len(SPEECH_COMMANDS_V001)
            word = SPEECH_COMMANDS_V001[label]
            seconds = 3.0 if word == "_silence_" else 1.0  # the background-noise files are long
            out.append(
                {
                    "file": f"{word}/{seed:04d}_nohash_{i}.wav",
                    "audio": flac(seconds, seed + i),
                    "label": label,
                    "is_unknown": label >= 10,
                    "speaker_id": f"{seed:04d}",
                    "utterance_id": i % 5,
                }
            )
        return out

    export = {
        f"v0.01/{split}/0000.parquet": parquet(rows(split, 1000 * k, clips), features)
        for k, split in enumerate(("train", "validation", "test"), 1)
    }
    export.update(
        {f"v0.02/{split}/0000.parquet": parquet(rows(split, 9000, 4), features) for split in ("train", "test")}
    )
    main = {"README.md": b"---\nlicense: cc-by-4.0\n---\n", "speech_commands.py": b"# the loading script\n"}
    return Repo(commits={"5c" * 20: main, "e7" * 20: export}, refs={"main": "5c" * 20, PARQUET_EXPORT: "e7" * 20})


def librispeech(utterances: int = 6, seconds: float | None = None) -> Repo:
    """Each split `utterances` long; `seconds` each (default 1 s, 1.25 s, 1.5 s, ...)."""
    from datasets import Audio, Features, Value

    features = Features(
        {
            "file": Value("string"),
            "audio": Audio(sampling_rate=16_000),
            "text": Value("string"),
            "speaker_id": Value("int64"),
            "chapter_id": Value("int64"),
            "id": Value("string"),
        }
    )
    words = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog"]

    def rows(seed: int) -> list[dict]:
        return [
            {
                "file": f"{seed}-{i}.flac",
                "audio": flac(seconds or 1.0 + 0.25 * i, seed + i),
                "text": " ".join(words[i % 3 : i % 3 + 4]).upper(),
                "speaker_id": seed,
                "chapter_id": i,
                "id": f"{seed}-{i:04d}",
            }
            for i in range(utterances)
        ]

    files: dict[str, bytes] = {}
    configs: dict[str, dict[str, str]] = {}
    for config, splits in (("clean", ("train.100", "train.360", "validation", "test")), ("other", ("train.500",))):
        configs[config] = {}
        for k, split in enumerate(splits):
            files[f"{config}/{split}/0000.parquet"] = parquet(rows(100 * k + 7), features)
            configs[config][split] = f"{config}/{split}/*"
    files["README.md"] = readme(configs)
    return Repo(commits={"1b" * 20: files}, refs={"main": "1b" * 20})


def squad_v2(paragraphs: list[dict]) -> Repo:
    """`paragraphs`: dicts of context and questions ({"question", "answers": [{"text", "answer_start"}]})."""
    from datasets import Features, Sequence, Value

    features = Features(
        {
            "id": Value("string"),
            "title": Value("string"),
            "context": Value("string"),
            "question": Value("string"),
            "answers": Sequence({"text": Value("string"), "answer_start": Value("int32")}),
        }
    )
    rows = []
    for p, paragraph in enumerate(paragraphs):
        for q, qa in enumerate(paragraph["qas"]):
            answers = qa["answers"]
            rows.append(
                {
                    "id": f"p{p}q{q}",
                    "title": f"paragraph {p}",
                    "context": paragraph["context"],
                    "question": qa["question"],
                    "answers": {
                        "text": [a["text"] for a in answers],
                        "answer_start": [a["answer_start"] for a in answers],
                    },
                }
            )
    files = {
        "squad_v2/train-00000-of-00001.parquet": parquet(rows, features),
        "squad_v2/validation-00000-of-00001.parquet": parquet(rows[::-1], features),
        "README.md": readme({"squad_v2": {"train": "squad_v2/train-*", "validation": "squad_v2/validation-*"}}),
    }
    return Repo(commits={"3d" * 20: files}, refs={"main": "3d" * 20})
