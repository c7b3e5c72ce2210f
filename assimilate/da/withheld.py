"""Verification against observations never assimilated (withheld stations).

Operational centres keep some stations back and score an analysis against them: an
analysis may fit the observations it was given and still be wrong in between.
``withheld_scores`` compares the ensemble mean of the analysis (and of the background) at
each withheld observation time, through the withheld operator, with the withheld values;
the observation error is in the score (it is observation minus analysis, not truth minus
analysis), as operational scores are.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from assimilate.observe import Observations
from pde.io.errors import ConfigError

__all__ = ["check_withheld", "withheld_scores"]


def check_withheld(withheld: Observations, assimilated: Observations, source: str) -> None:
    """Refuse withheld observations that were also assimilated (the same step and place): a
    score against them would flatter the analysis and still look like verification."""
    shared = sorted(set(map(int, withheld.steps)) & set(map(int, assimilated.steps)))
    overlap = 0
    for step in shared:
        given = {tuple(np.round(place, 9)) for place in assimilated.at(step).operator.locations}
        overlap += sum(tuple(np.round(place, 9)) in given
                       for place in withheld.at(step).operator.locations)
    if overlap:
        raise ConfigError(f"{source} include {overlap} observations that were assimilated (the "
                          "same step and place); verification needs stations never assimilated "
                          "(a regime's `observe: withheld`)")


def withheld_scores(analysis: xr.Dataset, withheld: Observations, *, spin_up: int = 0,
                    source: str = "withheld observations") -> dict[str, float]:
    """``withheld_rmse.a`` / ``withheld_rmse.f``: the RMSE of observation minus analysis /
    background ensemble mean over every withheld value at steps ``>= spin_up``,
    ``withheld_bias.a`` the mean of observation minus analysis, ``withheld_count`` the
    number of values scored."""
    variable = next(name for name in analysis.data_vars if not name.endswith("_background"))
    labels = np.asarray(analysis["trajectory"].values)
    if not np.array_equal(np.asarray(withheld.trajectory_labels), labels):
        raise ConfigError(f"{source} are of trajectories {list(withheld.trajectory_labels)}, "
                          f"the analysis of {list(labels)}; observe the same trajectories")
    n_steps = analysis.sizes["time"] - 1
    steps = [int(s) for s in withheld.steps if spin_up <= s <= n_steps]
    if not steps:
        raise ConfigError(f"{source} hold no time within steps {spin_up}..{n_steps} of the run")
    residuals: dict[str, list[np.ndarray]] = {"a": [], "f": []}
    for label, name in (("a", variable), ("f", f"{variable}_background")):
        mean = analysis[name].mean("member").values  # (trajectory, time, *space)
        for step in steps:
            at = withheld.at(step)
            predicted = at.operator.apply(mean[:, step].astype(np.float64))
            residuals[label].append((at.values - predicted)[at.mask])
    found = {label: np.concatenate(values) for label, values in residuals.items()}
    return {"withheld_rmse.a": float(np.sqrt(np.mean(found["a"] ** 2))),
            "withheld_rmse.f": float(np.sqrt(np.mean(found["f"] ** 2))),
            "withheld_bias.a": float(np.mean(found["a"])),
            "withheld_count": int(found["a"].size)}
