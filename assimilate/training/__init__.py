"""Training: the one loop every model uses, its checkpoints, and store → batches.

- ``recipe.py``: :func:`train`, the steps every trainer shares (open, split, normalise,
  validation windows, seed, build, checkpoint metadata); a trainer says what differs.
- ``loop.py``: :func:`fit` (AdamW, warm-up, EMA, validation, exact resume) and the
  checkpoint files it writes.
- ``batches.py``: trajectory stores → normalised PyTorch batches, the train/validation split.

May import ``pde`` and ``assimilate.config``; knows no model.
"""
