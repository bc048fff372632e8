"""The test suite (`python -m pytest -q`): offline, on tiny models; what several test modules share
is in helpers.py (functions) and conftest.py (fixtures)."""
