"""Gradio's per-session copy of the page's config, built on first use instead of up front.

For every new session, Gradio 6 builds the config of every component on the page (here ~200,
each with its JSON schemas): 41 ms of CPU and ~330 KB kept per session. Every call without a
session (a plain HTTP `/gradio_api/call/...` or `/run/...`, a health check) starts a new one, and
up to `STATE_SESSIONS` of them stay in memory: most of the memory the app gained under load
(`docs/measurements.md`). Only the deep-link route reads
that copy whole; a call reads at most the configs of its own outputs. So each config is built when
it is first read, from the session's own blocks, which gives the same values as building it up
front (a block replaced in a session writes its config at once, as in Gradio).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from copy import copy
from typing import Any

from gradio.state_holder import SessionState


class LazyConfigs(dict):
    """Block id → the block's config (what `SessionState.config_values` holds), each built on first read."""

    def __init__(self, blocks_config: Any, ids: list[int]) -> None:
        super().__init__()
        self._blocks_config = blocks_config
        self._order = ids
        self._pending = set(ids)

    def _build(self, key: int) -> dict:
        value = self._blocks_config.config_for_block(key, [], self._blocks_config.blocks[key])
        self._pending.discard(key)
        super().__setitem__(key, value)
        return value

    def _build_all(self) -> None:
        if not self._pending:
            return
        built = {key: self[key] for key in self._order}
        extra = {key: value for key, value in super().items() if key not in built}
        super().clear()
        super().update({**built, **extra})  # Gradio's order: the page's blocks first

    def __missing__(self, key: int) -> dict:
        if key in self._pending:
            return self._build(key)
        raise KeyError(key)

    def __setitem__(self, key: int, value: Any) -> None:
        self._pending.discard(key)
        super().__setitem__(key, value)

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key) or key in self._pending

    def get(self, key: int, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __len__(self) -> int:
        return super().__len__() + len(self._pending)

    def __iter__(self) -> Iterator[int]:
        self._build_all()
        return super().__iter__()

    def keys(self):  # type: ignore[override]
        self._build_all()
        return super().keys()

    def values(self):  # type: ignore[override]
        self._build_all()
        return super().values()

    def items(self):  # type: ignore[override]
        self._build_all()
        return super().items()


def _lazy_init(self: SessionState, blocks: Any) -> None:
    # The attributes of Gradio's own `SessionState.__init__` (6.x); tests/test_sessions.py checks
    # that they are the same names, so an upgrade that adds one fails there, not in a visitor's call.
    self.blocks_config = copy(blocks.default_config)
    ids = [key for key in self.blocks_config.blocks if key in blocks.blocks]
    self.config_values = LazyConfigs(self.blocks_config, ids)
    self.state_data = {}
    self._state_ttl = {}
    self.is_closed = False
    self.STATE_TTL_WHEN_CLOSED = 1 if os.getenv("GRADIO_IS_E2E_TEST", None) else 3600


_EAGER_INIT = SessionState.__init__


def install() -> None:
    """Make every Gradio session build its configs on first use (idempotent)."""
    SessionState.__init__ = _lazy_init  # type: ignore[method-assign]


def uninstall() -> None:
    """Gradio's own behaviour again (for the comparison in the tests)."""
    SessionState.__init__ = _EAGER_INIT  # type: ignore[method-assign]
