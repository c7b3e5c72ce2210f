"""Errors the command line reports as one clear line (no traceback)."""

from __future__ import annotations

__all__ = ["TrainingError"]


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, a checkpoint of another run, ...)."""
