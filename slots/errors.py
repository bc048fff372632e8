"""What a slot that cannot serve says: the errors requests get, and the plain, path-free
lines a visitor may read about what was tried (the operator's detail stays in each attempt)."""

from __future__ import annotations


class SlotUnavailable(RuntimeError):
    """No source of a slot could be loaded; `attempts` says what was tried and why it failed. The
    message is the plain one (see `plain_reasons`); the attempts hold the operator's detail."""

    def __init__(self, slot: str, attempts: list[dict[str, str]]):
        self.slot, self.attempts = slot, attempts
        super().__init__(f"No model for '{slot}' is available ({plain_reasons(attempts)}).")


class SlotNotReady(SlotUnavailable):
    """The slot is still fetching its model, or waiting to retry the hub: try again later."""

    def __init__(self, slot: str, attempts: list[dict[str, str]], state: str):
        super().__init__(slot, attempts)
        self.state = state
        self.args = (f"The model for '{slot}' is not ready yet ({state}).",)


def plain_attempts(attempts: list[dict[str, str]]) -> list[dict[str, str]]:
    """The visitor's view of failed sources: each one's label and plain reason."""
    return [{"source": a["label"], "reason": a["reason"]} for a in attempts]


def plain_reasons(attempts: list[dict[str, str]]) -> str:
    """One line a visitor may read: each source tried and why it failed, no server paths."""
    return "; ".join(f"{a['label']}: {a['reason']}" for a in attempts) or "nothing was tried"


def visitor_reasons(attempts: list[dict[str, str]]) -> str:
    """Why nothing could be loaded, for a visitor's notice: each plain reason once, without the
    sources' ids and revisions (the Models tab's operator section keeps them)."""
    return "; ".join(dict.fromkeys(a["reason"] for a in attempts)) or "nothing was tried"


def short_error(err: Exception) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 300 else text[:297] + "..."
