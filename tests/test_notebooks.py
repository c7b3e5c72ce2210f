"""Every notebook in notebooks/ runs top to bottom in a fresh kernel (nbclient).

Each one must be committed without outputs, draw a figure, print no warning, and end with a
JSON summary line that its expectations below check: the numbers its text draws its
conclusions from.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.e2e  # subprocesses or a whole project built by the CLI

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def _quickstart(summary: dict, out: Path) -> None:
    nrmse = summary["nrmse"]
    assert all(math.isfinite(value) for value in nrmse.values()), nrmse
    # the table: the controller beats the free run (by far) and DPS, and ends level with
    # the forecaster's LETKF (the text: 0.030 against 0.030) ...
    assert nrmse["controller"] < 0.5 * nrmse["free"], nrmse
    assert nrmse["controller"] < nrmse["dps"], nrmse
    assert nrmse["controller"] < 1.25 * nrmse["letkf-forecaster"], nrmse
    # ... with an ensemble that has not collapsed (the text: over-dispersed on these steps)
    assert 0.7 < summary["spread_ratio_controller"] < 3.0, summary
    assert (out / "ks-assimilation.png").stat().st_size > 0


def _extremes(summary: dict, out: Path) -> None:
    assert summary["reference_kurtosis"] > 10, "the data set is meant to be heavy-tailed"
    assert set(summary["tail_scores"]) == {"EDM", "t-EDM nu=3"}
    # the text: both emulators draw some negative values of this positive field
    assert all(0 < value < 0.2 for value in summary["negative_fraction"].values()), summary
    for model, scores in summary["tail_scores"].items():
        assert all(math.isfinite(value) for value in scores.values()), (model, scores)
    assert set(summary["return_level_1000"]) == {"reference", "EDM", "t-EDM nu=3"}
    for label, (estimate, lower, upper) in summary["return_level_1000"].items():
        assert math.isfinite(lower) and math.isfinite(upper), label
        assert lower <= estimate <= upper, (label, lower, estimate, upper)
    page = (out / "emulator-tails-report.html").read_text(encoding="utf-8")
    assert page.count("<img") >= 5 and "EDM" in page
    climate = summary["climate"]  # the text: the median of a mostly dry record is exactly 0
    assert climate["median_all_days"] == 0.0 and 0.5 < climate["dry_fraction"] < 0.8, climate
    assert climate["return_period_units"] == "years"
    assert climate["fitted"] == climate["points"] == 96, climate
    assert climate["north_minus_south"] > 0, "the text: the north stands out"


def _kolmogorov(summary: dict, out: Path) -> None:
    nrmse, late = summary["nrmse"], summary["late_error"]
    assert summary["n_stations"] == 51, "the stations regime observes 5 % of 32 x 32 points"
    assert nrmse["controller"] < 0.8 * nrmse["free"], nrmse
    assert late["controller"] < 0.8 * late["free"], late
    assert summary["spread_ratio_controller"] < 0.5, "the text calls its ensemble collapsed"
    # the text: the controller's analysis has lost small-scale power, the free run has not
    power = summary["small_scale_power"]
    assert power["controller"] < 0.5 < power["free"], power
    assert (out / "kolmogorov-assimilation.png").stat().st_size > 0


def _era5(summary: dict, out: Path) -> None:
    forecast, rmse, withheld = summary["forecast_rmse"], summary["rmse"], summary["withheld_rmse"]
    # the text: it beats persistence at every lead and the diurnal climatology to about 6
    # hours; by 12 hours the diurnal climatology is as good or better
    for lead in ("1h", "3h", "6h", "12h"):
        assert forecast["ardm"][lead] < forecast["persistence"][lead], forecast
    assert forecast["ardm"]["6h"] < forecast["diurnal"]["6h"], forecast
    assert forecast["diurnal"]["12h"] < 1.05 * forecast["ardm"]["12h"], forecast
    # the text: every method far closer than the free run; OI and the LETKF 0.7-0.8 K, the
    # controller under 0.6 K; right between the stations too, the controller the best
    assert max(rmse["oi"], rmse["letkf"]) < 0.6 * rmse["free"], rmse
    assert rmse["controller"] < min(rmse["oi"], rmse["letkf"]), rmse
    assert max(withheld["oi"], withheld["letkf"]) < 0.7 * withheld["free"], withheld
    assert withheld["controller"] < min(withheld["oi"], withheld["letkf"]), withheld
    assert summary["stations"] == 40 and summary["withheld_stations"] == 20, summary
    assert summary["attribution"], "the Copernicus attribution travels with the data"
    assert (out / "era5-assimilation.png").stat().st_size > 0
    assert "<img" in (out / "era5-report.html").read_text(encoding="utf-8")


EXPECTATIONS: dict[str, Callable[[dict, Path], None]] = {
    "quickstart": _quickstart,
    "extremes": _extremes,
    "kolmogorov-assimilation": _kolmogorov,
    "era5-pilot": _era5,
}
WRITES_REPORT = {"extremes", "era5-pilot"}  # notebooks that render an HTML tail report


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS, "notebooks/ holds no notebook"


def test_every_notebook_has_expectations() -> None:
    stems = {path.stem for path in NOTEBOOKS}
    assert stems == set(EXPECTATIONS), (
        f"notebooks without expectations: {sorted(stems - set(EXPECTATIONS))}; "
        f"expectations without a notebook: {sorted(set(EXPECTATIONS) - stems)}")


def _summary(notebook: nbformat.NotebookNode, name: str) -> dict:
    """The JSON line the last code cell prints."""
    last = [cell for cell in notebook.cells if cell.cell_type == "code"][-1]
    text = "".join(output.get("text", "") for output in last.outputs
                   if output.output_type == "stream" and output.name == "stdout")
    lines = [line for line in text.splitlines() if line.startswith("{")]
    assert lines, f"{name}: the last cell prints no JSON summary line"
    return json.loads(lines[-1])


def _warnings(notebook: nbformat.NotebookNode) -> list[str]:
    return [f"cell {index}: {output.text.strip()[:400]}"
            for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"
            for output in cell.outputs
            if output.output_type == "stream" and output.name == "stderr"
            and "warning" in output.text.lower()]


def test_warnings_in_stderr_are_found() -> None:
    cell = nbformat.v4.new_code_cell("import warnings; warnings.warn('x')")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="Warning in stdout\n"),
                    nbformat.v4.new_output("stream", name="stderr",
                                           text="<stdin>:1: UserWarning: x\n")]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("Warning"), cell])
    assert _warnings(notebook) == ["cell 1: <stdin>:1: UserWarning: x"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs(path: Path, tmp_path: Path) -> None:
    assert path.stem in EXPECTATIONS, f"{path.name}: add its expectations to EXPECTATIONS"
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        assert cell.cell_type != "code" or (not cell.outputs and cell.execution_count is None), (
            f"{path.name}: commit notebooks without outputs (a cell has stored output)")
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError naming the failing cell
    images = [output for cell in notebook.cells if cell.cell_type == "code"
              for output in cell.outputs if "image/png" in output.get("data", {})]
    assert images, f"{path.name} drew no figure"
    warned = _warnings(notebook)
    assert not warned, f"{path.name} printed warnings:\n" + "\n".join(warned)
    out = tmp_path / "notebook-output"
    if path.stem in WRITES_REPORT:
        assert list(out.glob("*.html")), f"{path.name} wrote no report under notebook-output/"
    EXPECTATIONS[path.stem](_summary(notebook, path.name), out)
