"""The training scripts' arguments: the report's and SUPERB's configs parse with their heads, and a
bad config file or data that cannot be read is a one-line error (train/common.py `parse_args`,
`Run.reading_data`)."""

from __future__ import annotations

import pytest

from train import asr as train_asr
from train import kws as train_kws
from train import qa as train_qa
from train.frozen_head import FeatureArguments


@pytest.mark.parametrize(
    "script, config",
    [(train_asr, "asr_superb"), (train_kws, "kws_superb"), (train_asr, "asr_hw4"), (train_kws, "kws_hw4")],
)
def test_report_and_superb_configs_parse_with_their_heads(script, config):
    from transformers import TrainingArguments

    from train.common import RunArguments, parse_args

    model_args, feature_args, *_ = parse_args(
        (script.ModelArguments, FeatureArguments, script.DataArguments, RunArguments, TrainingArguments),
        [f"train/configs/{config}.json"],
    )
    assert model_args.freeze == "encoder" and feature_args.feature_cache
    assert feature_args.head == ("superb" if "superb" in config else "linear")


@pytest.mark.parametrize(
    "content, error",
    [
        (None, "no config file {path}"),
        (
            '{"learning_rate": 1e-3,}',
            "{path} is not valid JSON (Expecting property name enclosed in double quotes, line 1, column 24)",
        ),
        ("[1, 2]", "{path} holds a JSON list, not an object of argument names and values"),
        ('{"learning_rat": 1e-3}', "{path} sets unknown arguments: learning_rat"),
    ],
)
def test_a_bad_config_file_is_one_line_of_error_not_a_traceback(tmp_path, capsys, content, error):
    from transformers import TrainingArguments

    from train.common import RunArguments, parse_args

    path = tmp_path / "config.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SystemExit) as exit_:
        parse_args(
            (train_kws.ModelArguments, FeatureArguments, train_kws.DataArguments, RunArguments, TrainingArguments),
            [str(path)],
        )
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith("error: " + error.format(path=path))


@pytest.mark.parametrize(
    "script, flags, error",
    [
        (train_kws, ["--data_dir", "{missing}"], "Speech Commands folder {missing} does not exist"),
        (train_asr, ["--data_dir", "{missing}"], "LibriSpeech split folder {missing}/train-clean-100 does not exist"),
        (train_qa, ["--train_file", "{missing}"], "[Errno 2] No such file or directory: '{missing}'"),
        (train_qa, ["--train_file", "{not_squad}"], "{not_squad}: This is not SQuAD v2: the top level has no 'data'"),
    ],
)
def test_data_that_cannot_be_read_is_one_line_of_error_not_a_traceback(tmp_path, capsys, script, flags, error):
    names = {"missing": tmp_path / "nowhere", "not_squad": tmp_path / "squad.json"}
    names["not_squad"].write_text('{"version": "v2.0"}')
    argv = [f.format(**names) for f in flags] + ["--output_dir", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit_:
        script.main(argv)
    assert exit_.value.code == 2
    line = capsys.readouterr().err.splitlines()[-1]
    assert line.split(": error: ")[1].startswith(error.format(**names))
