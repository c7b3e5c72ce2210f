"""The harness's outputs: the results dataset, its Markdown tables (DAPPER's style: mean ±
its standard error over test trajectories) and the figure (nRMSE against time per regime)."""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

__all__ = ["TABLE_COLUMNS", "collect", "format_da_summary", "format_da_table", "plot_da",
           "summaries"]


def collect(workspace, cells, specs, regimes) -> xr.Dataset:
    """One dataset with dims (da_method, regime, ...) from the finished test cells."""
    rows = []
    for spec in specs:
        column = []
        for regime in regimes:
            cell = cells[spec.label, regime]
            with xr.open_dataset(workspace.cell(cell)) as ds:
                ds = ds.load()
            for name in ("nfe_per_step", "seconds_per_step", "wall_time_s"):
                ds[name] = ((), float(ds.attrs[name]))
            ds["settings"] = ((), np.array(json.dumps(dict(cell.settings)), dtype=object))
            ds["model"] = ((), np.array(ds.attrs["model"], dtype=object))
            ds.attrs = {}
            column.append(ds)
        rows.append(xr.concat(column, dim="regime"))
    result = xr.concat(rows, dim="da_method")  # not "method": xarray's .sel has that keyword
    labels = np.array([s.label for s in specs], dtype=object)  # Zarr's variable-length strings
    return result.assign_coords(da_method=labels,
                                regime=np.array(list(regimes), dtype=object))


TABLE_COLUMNS = (("nrmse_short", "nRMSE short"), ("nrmse_long", "nRMSE long"),
                 ("nrmse_unobserved", "unobserved"), ("spread_ratio", "spread/RMSE"),
                 ("crps", "CRPS"), ("rank_reliability", "rank RI"),
                 ("series_error", "series error"), ("spectrum_error", "spectrum"),
                 ("tail_ks", "tail KS"), ("exceedance_ratio", "exceedance 0.99"),
                 ("stable", "stable"))


WITHHELD_COLUMNS = (("withheld_rmse", "withheld RMSE"),
                    ("withheld_rmse_background", "withheld, background"))


def table_columns(result: xr.Dataset) -> tuple[tuple[str, str], ...]:
    """The table's score columns: :data:`TABLE_COLUMNS`, and the RMSE at withheld stations
    where a regime holds stations back (imported data)."""
    if "withheld_rmse" not in result:
        return TABLE_COLUMNS
    return TABLE_COLUMNS[:1] + WITHHELD_COLUMNS + TABLE_COLUMNS[1:]


def _mean_and_error(values: np.ndarray) -> tuple[float, float]:
    """Mean over test trajectories and its standard error (NaN for one trajectory)."""
    data = values.astype(float)
    mean = np.nanmean(data) if np.isfinite(data).any() else np.nan
    error = np.nanstd(data, ddof=1) / np.sqrt(data.size) if data.size > 1 else np.nan
    return mean, error


def format_da_table(result: xr.Dataset) -> str:
    """Markdown: one row per (regime, method), mean ± standard error over trajectories."""
    horizons = json.loads(result.attrs.get("horizons", "[0, 0]"))
    header = ["regime", "method", "settings",
              *[label + (f" ({horizons[0]})" if name == "nrmse_short" else
                         f" ({horizons[1]})" if name == "nrmse_long" else "")
                for name, label in table_columns(result)], "s / step", "NFE / step"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for regime in result["regime"].values:
        for method in result["da_method"].values:
            cell = result.sel(da_method=method, regime=regime)
            values = []
            for name, _ in table_columns(result):
                mean, error = _mean_and_error(cell[name].values)
                values.append(f"{mean:.3g}" if name == "stable" or not np.isfinite(error)
                              else f"{mean:.3g} ± {error:.2g}")
            settings = json.loads(str(cell["settings"].values))
            lines.append("| " + " | ".join([
                str(regime), str(method),
                ", ".join(f"{k}={v}" for k, v in settings.items()) or "–", *values,
                f"{float(cell['seconds_per_step']):.3g}",
                f"{float(cell['nfe_per_step']):.3g}"]) + " |")
    return "\n".join(lines)


def format_da_summary(result: xr.Dataset, score: str = "nrmse_long") -> str:
    """Markdown, DAPPER's layout: one row per regime, one column per method, ``score``'s
    mean ± standard error over test trajectories with the tuned value in brackets; the
    lowest mean of each row in bold."""
    from assimilate.da.methods import method_class

    methods = [str(m) for m in result["da_method"].values]
    lines = ["| regime | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods)]
    for regime in result["regime"].values:
        cells, means = [], []
        for method in methods:
            cell = result.sel(da_method=method, regime=regime)
            mean, error = _mean_and_error(cell[score].values)
            text = f"{mean:.3f}" + (f" ± {error:.3f}" if np.isfinite(error) else "")
            tuning = method_class(method.split(":")[0]).tuning
            settings = json.loads(str(cell["settings"].values))
            tuned = [f"{t.symbol}={settings[t.key]}" for t in
                     (tuning.parameters if tuning else ()) if settings.get(t.key)]
            cells.append((text, f" ({', '.join(tuned)})" if tuned else ""))
            means.append(mean if np.isfinite(mean) else np.inf)
        best = int(np.argmin(means))
        lines.append(f"| {regime} | " + " | ".join(
            (f"**{text}**" if i == best else text) + tuned
            for i, (text, tuned) in enumerate(cells)) + " |")
    return "\n".join(lines)


def summaries(result: xr.Dataset) -> str:
    """The summary of the long-horizon nRMSE, and where stations were held back the one of
    the RMSE at them (in the field's units)."""
    text = format_da_summary(result)
    if "withheld_rmse" in result:
        text += ("\n\nRMSE at the withheld stations (observation minus ensemble-mean analysis, "
                 "the stations' noise included):\n\n" + format_da_summary(result, "withheld_rmse"))
    return text


def plot_da(result: xr.Dataset, path) -> None:
    """nRMSE of the ensemble mean against time, one panel per regime."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    regimes = list(result["regime"].values)
    columns = min(3, len(regimes))
    rows = -(-len(regimes) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 3.2 * rows),
                             squeeze=False, sharey=True)
    for ax, regime in zip(axes.flat, regimes, strict=False):
        for i, method in enumerate(result["da_method"].values):
            curve = result["nrmse_time"].sel(da_method=method, regime=regime).mean(
                "trajectory")
            ax.plot(np.arange(curve.size), curve.values, label=str(method), lw=1.2,
                    color=plt.cm.tab20(i % 20))  # 11 methods: more than the default cycle
        ax.set_yscale("log")
        ax.set_title(f"regime {regime}")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(regimes):]:
        ax.set_visible(False)
    axes[0, 0].set_ylabel("nRMSE of the ensemble mean")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)
