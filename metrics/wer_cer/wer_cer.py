"""Corpus word and character error rates as an `evaluate` module over the project's own
implementation, `core.metrics.wer_cer` (jiwer; an empty reference counts insertions)."""

import datasets
import evaluate

from core.metrics import wer_cer

_DESCRIPTION = "Corpus WER and CER (substitutions + deletions + insertions over reference words / characters)."
_INPUTS = "predictions: list of str (transcripts). references: list of str (true transcripts), same order."


class WerCer(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_INPUTS,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions: list, references: list) -> dict:
        return wer_cer(references, predictions)
