"""The errors a user can cause, each reported by the command line as one clear line.

They live in one light module (no NumPy, no JAX) so that the command line can catch them
without importing what raises them.
"""

from __future__ import annotations

__all__ = ["ClusterError", "ConfigError", "IntegrityError", "OutputError", "StoreError"]


class ConfigError(ValueError):
    """A configuration file or value is missing, malformed or impossible."""


class StoreError(ValueError):
    """A store is missing, foreign, of the wrong kind, incomplete or cannot be written."""


class IntegrityError(StoreError):
    """Stored data are damaged (missing, corrupt or truncated chunks) or not finite."""


class OutputError(ValueError):
    """An output cannot be written: a bad path, an input, a held lock, a failed write."""


class ClusterError(ValueError):
    """A Dask scheduler cannot be reached, or a local cluster cannot start."""
