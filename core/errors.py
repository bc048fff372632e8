"""Exceptions with a meaning the app acts on: input it refuses (turned into a message for the user) and
model files it will not load."""

from __future__ import annotations

from typing import Any


class InputError(ValueError):
    """Input a user gave that the app refuses; the message is a sentence meant for them
    (what is wrong and what is accepted), shown as it is."""


NO_SAFETENSORS = "no safetensors weights (pickled weights are never loaded)"


class NoModelFiles(FileNotFoundError):
    """A source holds no model the app may load: no such folder, or no safetensors weights
    (pickled weights are never loaded). The message is for the operator and may name paths."""

    def __init__(self, message: str, plain: str):
        super().__init__(message)
        self.plain = plain  # the same in a few words a visitor may read


def json_kind(value: Any) -> str:
    """How a message names a JSON value's kind ("an object", "a list", "text", "a number"...), or
    a type's (`dict` -> "an object"), for sentences such as "'context' is a number, not text"."""
    names = {dict: "an object", list: "a list", str: "text", bool: "true/false", type(None): "null"}
    if isinstance(value, type):
        return "a number" if value in (int, float) else names.get(value, value.__name__)
    return names.get(type(value), "a number")
