"""Progress bars for every command and notebook: ``from pde.io.progress import tqdm``.

tqdm's notebook widget where ``ipywidgets`` is installed, its text bar everywhere else.
``tqdm.auto`` alone would pick the widget in any Jupyter kernel and warn ("IProgress not
found") when ``ipywidgets`` is missing; the text bar renders fine in a notebook.
"""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("ipywidgets") is not None:
    from tqdm.auto import tqdm
else:
    from tqdm.std import tqdm

__all__ = ["tqdm"]
