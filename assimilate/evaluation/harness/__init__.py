"""The DA evaluation harness: methods × regimes × held-out trajectories, tuned honestly.

    evaluate_da(config, HarnessSettings(methods=["free", "dps", "letkf"],
                                        regimes=["dense", "gap-5"],
                                        forecaster="checkpoints/ks-small-forecaster.pt"),
                out="results.zarr")

Sizes (test and validation trajectories, members) and the default method list come from
the config's ``evaluation`` section: small for the CPU configs, the published scale for
the reference ones.

1. Truth stores are simulated into ``OUT.work/`` from the config's simulator: test
   trajectories and validation trajectories of two seeds other than the training one, and
   a climatology (first backgrounds, OI's covariance). Observations are synthesised for
   each regime from both.
2. **Tuning**, on validation trajectories only (never test ones): each method's main
   hyper-parameter, as its class declares it (DPS ζ, filter inflation, LETKF radius, OI
   scale, nudging α, optimised control's energy weight λ), over a small grid, scored by
   the analysis nRMSE over half the short horizon; a value the user set with
   ``name:key=value`` is kept as given. The tuned values are recorded.
3. **Test** cells (method, regime), every test trajectory batched in one run, scored by
   :func:`assimilate.evaluation.scores.analysis_scores`.

Each cell is a task: in this process by default, fanned out over Dask with ``workers``
(a LocalCluster) or ``scheduler`` (an existing cluster). A finished cell is saved in
``OUT.work/cells/`` at once (atomically), so a killed run resumes without redoing it.
Outputs: the results store ``OUT``, the Markdown table ``OUT.md`` (DAPPER's style: mean ±
its standard error over test trajectories) and the figure ``OUT.png`` (nRMSE against time
per regime).

Modules: ``specs`` (methods as named), ``cells`` (one run each, the workspace), ``tuning``,
``tables`` (the results dataset, tables, figure), ``evaluate`` (the verb).

May import ``pde``, ``assimilate.config``, ``observe``, ``da``, ``models``, ``training`` and
the evaluation scores; nothing imports it but the command line.
"""

from __future__ import annotations

from assimilate.evaluation.harness.evaluate import HarnessSettings, evaluate_da
from assimilate.evaluation.harness.specs import MethodSpec, fill_controller, parse_method
from assimilate.evaluation.harness.tables import format_da_summary, format_da_table, summaries

__all__ = [
           "HarnessSettings",
           "MethodSpec",
           "evaluate_da",
           "fill_controller",
           "format_da_summary",
           "format_da_table",
           "parse_method",
           "summaries",
]
