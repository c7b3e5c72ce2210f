"""Training: the one loop every model uses, its checkpoints, and store → batches.

- ``loop.py``: :func:`fit` (AdamW, warm-up, EMA, validation, exact resume) and the
  checkpoint files it writes.
- ``batches.py``: trajectory stores → normalised PyTorch batches, the train/validation split.

May import ``pde`` and ``assimilate.config``; knows no model.
"""
