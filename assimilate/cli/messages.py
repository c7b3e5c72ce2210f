"""Messages to the user on stderr."""

from __future__ import annotations

import sys

__all__ = ["say"]


def say(message: str) -> None:
    """``message`` on stderr on a line of its own, after closing any progress bar that the
    failure left open (it would otherwise share the line)."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()
    print(message, file=sys.stderr)
