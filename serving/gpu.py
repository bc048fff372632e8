"""Every request's model work, one function per kind of work, each lent a GPU on ZeroGPU.

On a ZeroGPU Space (`SPACES_ZERO_GPU=true`, set by the Space) a GPU exists only inside a function
decorated with `spaces.GPU`: the `spaces` package forks a worker that gets a real GPU, runs the
function there and sends its result back, both pickled (spaces/zero/wrappers.py). So:

- each function here takes a `LoadedModel` (pickled as a reference: the worker, forked from this
  process, finds the same model, `slots.sources.served`) and plain arrays or strings, and returns
  plain values;
- each asks for a `duration` computed from its work and bounded (`seconds`): the Space asks the
  GPU queue for that long, a shorter request queues ahead, and a visitor whose daily quota has less
  left is refused before anything runs;
- a refusal by ZeroGPU (quota spent, no GPU free within a minute) reaches the visitor as one
  plain sentence (`plain`), the full message goes to the log, and the app keeps serving;
- input refused by `core` inside the worker travels back as a `gr.Error` (any other exception
  would arrive as its class name only).

Live never comes here on ZeroGPU: a call per half second of audio would queue for a GPU each time
and spend a visitor's daily quota in minutes, so the Live tabs run the CPU copy of each speech model
(`LoadedModel.live_model`) and cost no GPU time. Everywhere else `spaces.GPU` is a no-op
(spaces/zero/decorator.py returns the function itself) and these run in the request's thread.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar

import gradio as gr
import numpy as np

from core import settings
from core.errors import InputError
from qa import extractive
from qa.squad_data import Example
from slots.loading import load_model
from slots.sources import LoadedModel
from speech import long_audio, spotting
from speech.audio import TARGET_RATE
from speech.ctc import Word

try:  # in requirements.txt; a Space on ZeroGPU installs it anyway
    import spaces
except ImportError:  # pragma: no cover - a trimmed install: nothing is lent, nothing changes
    spaces = None

P = ParamSpec("P")
R = TypeVar("R")
logger = logging.getLogger(__name__)

ZERO_GPU = settings.ZERO_GPU
# Seconds asked for the least work: a fresh worker forks, starts CUDA and moves every model's
# weights to the GPU before the first call runs.
LEAST_S = 10
# The most any call asks for: spaces' own default (hub-docs, spaces-zerogpu.md), under the free
# visitor's daily 2 min (unauthenticated) and 5 min (signed in).
MOST_S = 60


def seconds(work_s: float) -> int:
    """The duration to ask for: `LEAST_S` plus the work's estimated GPU seconds, at most `MOST_S`."""
    return int(min(MOST_S, math.ceil(LEAST_S + max(0.0, work_s))))


# ZeroGPU's refusals (spaces/zero/client.py raises each as a gr.Error with one of these titles),
# in the words a visitor reads.
REFUSALS = {
    "ZeroGPU quota exceeded": "Your free GPU time on this Space is used up for now (signing in to Hugging Face "
    "gives more).",
    "ZeroGPU queue timeout": "No GPU came free within a minute: please try again in a moment.",
    "ZeroGPU illegal duration": "This needs more GPU time than one request may have here: try a shorter clip "
    "or fewer questions.",
    "ZeroGPU pending credits exceeded": "Too many of your requests are running at once: try again when they end.",
}
FAILED = "The GPU could not run this request: please try again."
_WAIT = re.compile(r"Try again in ([0-9:]+)")


def plain(err: gr.Error, work: str) -> gr.Error:
    """ZeroGPU's refusal `err` as a sentence for a visitor (logged in full); any other error as it is."""
    title = getattr(err, "title", None) or ""
    if not title.startswith("ZeroGPU"):
        return err
    logger.warning("ZeroGPU refused %s: %s: %s", work, title, err.message)
    sentence = REFUSALS.get(title, FAILED)
    if title == "ZeroGPU quota exceeded" and (wait := _WAIT.search(str(err.message))):
        sentence += f" It comes back in {wait.group(1)} (hours:minutes:seconds)."
    return gr.Error(sentence)


def lent(duration: Callable[..., int]) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """`fn` run on a lent GPU on ZeroGPU (asking for `duration(*args)` seconds), in the calling
    thread elsewhere; ZeroGPU's refusals in plain words."""

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def inside(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except InputError as err:  # back from a worker as a gr.Error, with its sentence
                raise gr.Error(str(err)) from err

        on_gpu = spaces.GPU(inside, duration=duration) if spaces is not None else inside

        @functools.wraps(fn)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return on_gpu(*args, **kwargs)
            except gr.Error as err:
                raise plain(err, fn.__name__) from err

        return call

    return wrap


def audio_duration(loaded: LoadedModel, samples: np.ndarray, *rest: Any, **kw: Any) -> int:
    """A GPU reads a minute of audio in well under a second with these models: 1 s per 30 s of it."""
    return seconds(len(samples) / TARGET_RATE / 30)


def text_duration(loaded: LoadedModel, context: str, *rest: Any, **kw: Any) -> int:
    """A window of 384 tokens (~1,500 characters) takes milliseconds: 1 s per 20,000 characters."""
    return seconds(len(context) / 20_000)


def examples_duration(loaded: LoadedModel, examples: list[Example], *rest: Any, fp32: bool = False, **kw: Any) -> int:
    """About 20 questions a second, twice the work with the fp32 reference (loaded in the call)."""
    return seconds(len(examples) / 20 * (2 if fp32 else 1) + (5 if fp32 else 0))


@lent(audio_duration)
def transcribe(loaded: LoadedModel, samples: np.ndarray) -> tuple[str, list[Word]]:
    """The transcript of 16 kHz mono `samples` and each word's times (`long_audio.transcribe_words`)."""
    return long_audio.transcribe_words(loaded.model, loaded.processor, samples)


@lent(audio_duration)
def keyword_scan(loaded: LoadedModel, samples: np.ndarray) -> spotting.Scan:
    """Keyword probabilities for each 1 s window of 16 kHz mono `samples` (`spotting.sliding_probs`)."""
    return spotting.sliding_probs(loaded.model, loaded.processor, samples)


@lent(text_duration)
def answer(
    loaded: LoadedModel,
    context: str,
    question: str,
    threshold: float,
    options: extractive.AnswerOptions | None = None,
) -> extractive.Prediction:
    """One QA model's answer (`extractive.answer`, with the pipeline's controls `options`)."""
    return extractive.answer(loaded.model, loaded.processor, context, question, threshold, options=options)


@lent(examples_duration)
def answer_all(
    loaded: LoadedModel,
    examples: list[Example],
    threshold: float,
    fp32: bool = False,
    progress: Iterable[Example] | None = None,
) -> dict[str, str]:
    """Question id -> answer text ("" = no answer) for every example; with `fp32`, by the same
    model read again from its folder in fp32 on the served device (what the precision costs).
    `progress`: `examples` wrapped by a progress bar (only where the call runs in this process)."""
    model = loaded.model
    if fp32:
        weight = next(model.parameters())
        model = load_model("question-answering", loaded.path).to(weight.device).eval()
    return {
        e.id: extractive.answer(model, loaded.processor, e.context, e.question, threshold).text
        for e in progress or examples
    }


def progress_allowed() -> bool:
    """Whether a progress bar may wrap a call's examples (not through a ZeroGPU worker's pickling)."""
    return not ZERO_GPU
