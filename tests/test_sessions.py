"""Gradio sessions built lazily (serving/sessions.py): the same configs as Gradio's own, computed
only when read, and a sessionless API call no longer copies the whole page."""

from __future__ import annotations

import pytest
from gradio.state_holder import SessionState

import app
from serving import sessions
from tests.helpers import call, close_app, free_port


@pytest.fixture
def demo(tiny_checkpoints):
    sessions.uninstall()
    yield app.build_app(app.open_registry(tiny_checkpoints, preload=False))
    sessions.uninstall()


def built(state: SessionState) -> int:
    """How many block configs a session holds already (without building the rest)."""
    return dict.__len__(state.config_values)


def test_a_lazy_session_holds_what_gradios_own_holds_once_read(demo):
    eager = SessionState(demo)
    sessions.install()
    lazy = SessionState(demo)
    assert set(vars(lazy)) == set(vars(eager))  # an upgrade that adds an attribute fails here
    assert built(lazy) == 0 and built(eager) > 150
    assert len(lazy.config_values) == len(eager.config_values)
    some = next(iter(dict(eager.config_values)))
    assert lazy.config_values[some] == eager.config_values[some] and built(lazy) == 1
    assert some in lazy.config_values and -1 not in lazy.config_values
    assert lazy.config_values.get(-1, "absent") == "absent"
    # The deep-link route reads them all, in the page's order.
    assert list(lazy.components) == list(eager.components)
    assert list(lazy.config_values) == list(eager.config_values)


def test_a_block_updated_in_a_session_has_its_new_config_as_in_gradio(demo):
    blocks = [b for b in demo.blocks.values() if type(b).__name__ == "Textbox"]
    target = blocks[0]
    states = [SessionState(demo)]
    sessions.install()
    states.append(SessionState(demo))
    for state in states:
        state._update_value_in_config(target._id, "a visitor's text")
        replaced = target.__class__(value="replaced", label="new label")
        replaced._id = target._id
        state[target._id] = replaced
    eager, lazy = (dict(s.config_values.items()) for s in states)
    assert lazy == eager
    assert set(lazy) == set(demo.blocks)  # and nothing left unbuilt


def test_api_calls_answer_the_same_and_stop_copying_the_page(demo):
    app.serve(demo, "127.0.0.1", free_port(), prevent_thread_lock=True, quiet=True)
    try:
        url = demo.local_url
        context = "The Eiffel Tower was built in 1889 by Gustave Eiffel. It stands in Paris."
        lazy = call(url, "answer", context, "When was the tower built?")
        holder = demo.state_holder
        new = list(holder.session_data.values())[-1]
        assert built(new) <= 4  # its two inputs (and outputs), not the page's ~200 blocks
        sessions.uninstall()
        eager = call(url, "answer", context, "When was the tower built?")
        assert built(list(holder.session_data.values())[-1]) > 150
        for answers in (lazy, eager):
            for model in ("qa-distilbert", "qa-xlmr"):
                answers[model].pop("seconds")  # how long it took: the one field that may differ
        assert lazy == eager and lazy["qa-xlmr"]["alternatives"]  # the same answers, both models
        sessions.install()
        for _ in range(5):
            assert set(call(url, "status")) >= {"asr", "kws", "qa-distilbert", "qa-xlmr"}
        assert [built(s) for s in list(holder.session_data.values())[-5:]] == [1] * 5  # its output only
    finally:
        close_app(demo)
