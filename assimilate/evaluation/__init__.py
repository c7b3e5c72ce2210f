"""Evaluation: forecast skill, the DA harness, and the scores both tabulate.

- ``metrics.py``, ``scores.py``: the scores (errors, ensemble calibration, spectra, tails).
- ``forecast_skill.py``: ``assimilate evaluate forecast``.
- ``robustness.py``: relaxation of imperfect states, synchronisation under nudging.
- ``harness.py``: ``assimilate evaluate da``: methods × regimes × trajectories, tuned honestly.

May import every other room of ``assimilate`` except ``cli``; nothing imports it but the
command line.
"""
