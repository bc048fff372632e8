"""Shared modules used by both `train/` and `tasks/`: one module per concern."""
