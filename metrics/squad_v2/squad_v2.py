"""SQuAD v2 (exact match and F1, answerable and unanswerable questions, best null threshold) as an
`evaluate` module over the project's own implementation, `qa.squad_metric.squad_v2`."""

import datasets
import evaluate

from qa.squad_metric import squad_v2

_DESCRIPTION = "SQuAD v2: exact match and F1 over answerable and unanswerable questions (official rules)."
_INPUTS = """
predictions: list of {"id": str, "prediction_text": str ("" = no answer), "null_score_diff": float
    (optional: null score minus best span score; enables the best-threshold search)}.
references: list of {"id": str, "answers": {"text": [str], "answer_start": [int]}} ([] texts for
    an unanswerable question).
"""
_CITATION = "Rajpurkar, Jia and Liang (2018), Know What You Don't Know: Unanswerable Questions for SQuAD."


class SquadV2(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=datasets.Features(
                {
                    "predictions": {
                        "id": datasets.Value("string"),
                        "prediction_text": datasets.Value("string"),
                        "null_score_diff": datasets.Value("float64"),
                    },
                    "references": {
                        "id": datasets.Value("string"),
                        "answers": datasets.Sequence(
                            {"text": datasets.Value("string"), "answer_start": datasets.Value("int32")}
                        ),
                    },
                }
            ),
        )

    def _compute(self, predictions: list, references: list, threshold: float = 0.0) -> dict:
        golds = {r["id"]: list(r["answers"]["text"]) for r in references}
        texts = {p["id"]: p["prediction_text"] for p in predictions}
        margins = {p["id"]: p["null_score_diff"] for p in predictions}
        with_margins = all(m is not None for m in margins.values())
        return squad_v2(golds, texts, margins if with_margins else None, threshold)
