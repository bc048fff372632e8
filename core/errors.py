"""The one exception type the tabs turn into a message for the user."""

from __future__ import annotations


class InputError(ValueError):
    """Input a user gave that the app refuses; the message is a sentence meant for them
    (what is wrong and what is accepted), shown as it is."""
