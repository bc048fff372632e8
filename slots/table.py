"""Which model each slot serves: its title, environment variable, kind, the command that trains
it, and the public fine-tuned hub checkpoint it falls back to, pinned to a commit. Read by
`slots.slot` (which loads them) and documented in the README's slot table. The other models a task
may compare are slots too, found by `slots.candidates`."""

from __future__ import annotations

from dataclasses import dataclass, replace

# The task each model kind serves, as the tabs, `metrics.json` and the candidates' names say it.
TASK_OF_KIND = {"ctc": "asr", "audio-classification": "kws", "question-answering": "qa"}
TASK_TITLES = {"asr": "speech recognition", "kws": "keyword spotting", "qa": "question answering"}


@dataclass(frozen=True)
class SlotSpec:
    name: str
    title: str
    env_var: str  # "" for a candidate (`slots.candidates`): its source is fixed
    hub_id: str  # the public fine-tuned default; documented in the README's slot table ("": none)
    revision: str  # a commit of `hub_id` that holds safetensors weights (never a moving branch)
    kind: str  # "ctc", "audio-classification" or "question-answering"
    train_command: str
    # The files of the hub default that the slot reads (config, processor, safetensors weights): a
    # Space preloads exactly these at build (README's `preload_from_hub`), and a slot that finds
    # them all in the cache reads them without asking the hub (`slots.hub.preloaded`).
    files: tuple[str, ...] = ()
    # A candidate named in `$ASR_CANDIDATES` & co.: its one source (a folder, a hub id, `id@rev`);
    # "" for a slot read from `<checkpoints>/<name>/` (a default slot, or a candidate found there).
    source: str = ""
    default: bool = False  # one of the task's default slots (`SLOTS`): preloaded, never dropped
    # Where the hub default's model card measured the numbers it reports (they are not ours, and two
    # cards' numbers are comparable only when measured on the same set).
    card_measured_on: str = ""

    @property
    def task(self) -> str:
        return TASK_OF_KIND[self.kind]

    @property
    def hub_default(self) -> str:
        return f"{self.hub_id}@{self.revision}" if self.hub_id else ""

    @property
    def preload_entry(self) -> str:
        """This default as a Space's `preload_from_hub` entry: "repo file1,file2 commit"."""
        return f"{self.hub_id} {','.join(self.files)} {self.revision}"


# The hub defaults, each pinned to a commit with safetensors weights (why each: README, "Model slots").
SLOTS: dict[str, SlotSpec] = {
    spec.name: replace(spec, default=True)
    for spec in (
        SlotSpec(
            "asr",
            "Speech recognition",
            "ASR_MODEL",
            "facebook/wav2vec2-base-960h",
            "22aad52d435eb6dbaf354bdad9b0da84ce7d6156",
            "ctc",
            "python -m train.asr train/configs/asr_hw4.json",
            (
                "config.json",
                "preprocessor_config.json",
                "special_tokens_map.json",
                "tokenizer_config.json",
                "vocab.json",
                "model.safetensors",
            ),
        ),
        SlotSpec(
            "kws",
            "Keyword spotting",
            "KWS_MODEL",
            "anton-l/distilhubert-ft-keyword-spotting",
            "544d59e19da793285a8d9329742b31c7a5f0934b",
            "audio-classification",
            "python -m train.kws train/configs/kws_hw4.json",
            ("config.json", "preprocessor_config.json", "model.safetensors"),
        ),
        SlotSpec(
            "qa-distilbert",
            "Question answering (DistilBERT)",
            "QA_DISTILBERT_MODEL",
            "twmkn9/distilbert-base-uncased-squad2",
            "a9e4040300b0a2d802ae7c7cf6719e22f0fe79f8",
            "question-answering",
            "python -m train.qa train/configs/qa_distilbert.json",
            ("config.json", "special_tokens_map.json", "tokenizer_config.json", "vocab.txt", "model.safetensors"),
            card_measured_on="a 6,078-question subset of SQuAD v2's dev set",
        ),
        SlotSpec(
            "qa-xlmr",
            "Question answering (XLM-RoBERTa)",
            "QA_XLMR_MODEL",
            "deepset/xlm-roberta-base-squad2",
            "a17f72834366c08e1442ba44b483983d86d659bf",
            "question-answering",
            "python -m train.qa train/configs/qa_xlmr.json",
            (
                "config.json",
                "sentencepiece.bpe.model",
                "special_tokens_map.json",
                "tokenizer_config.json",
                "model.safetensors",
            ),
            card_measured_on="all 11,873 questions of SQuAD v2's dev set",
        ),
    )
}
