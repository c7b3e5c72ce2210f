"""Evaluation: forecast skill, the DA harness, and the scores both tabulate.

- ``scores.py``: every score, defined once (errors, ensemble calibration, spectra,
  stability) and the DA harness's table of them.
- ``defaults.py``: the defaults of ``assimilate evaluate`` that depend on the physics.
- ``forecast_skill.py``: ``assimilate evaluate forecast``.
- ``robustness.py``: relaxation of imperfect states, synchronisation under nudging.
- ``harness/``: ``assimilate evaluate da``: methods × regimes × trajectories, tuned honestly.

May import every other room of ``assimilate`` except ``cli``; nothing imports it but the
command line, except ``scores.py``, which imports nothing of ``assimilate`` and which
:func:`assimilate.da.contract.score` calls too.
"""
