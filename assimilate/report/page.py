"""``render``: one self-contained HTML page (and optionally a PDF) from diagnostics Datasets.

The page embeds every figure as a base64 PNG and carries its own CSS, so it opens offline and
can be mailed as one file. Text from the Datasets is escaped with ``html.escape``. Both files
go through the guarded write path (:mod:`pde.io.output`): checked and locked before any work,
written to a temporary sibling, then renamed.
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import os
import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import xarray as xr
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from assimilate.report import extreme_figures, figures, tables
from assimilate.report.figures import Panel
from assimilate.report.inputs import bound_warnings, check_compatible
from assimilate.report.point_maps import point_maps
from assimilate.report.schema import Source, load
from pde.io.output import Output, OutputError, claim

__all__ = ["render"]

DPI = 100
SECTIONS = (("Distributions", ("histogram", "qq", "spectrum")),
            ("Extremes", ("threshold-stability", "return-levels", "series")),
            ("Maps", ("return-level-map", "interval-width-map", "scale-map", "trend-map",
                      "shape-map", "exceedance-map", "temporal-maximum-map")))
STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2430;
       margin: 0 auto; max-width: 1480px; padding: 1.2em 2em 3em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccd3dc;
       padding-bottom: 0.2em; margin-top: 1.8em; }
.meta { color: #5b6675; margin-top: 0; }
.warning { background: #fff4e0; border-left: 4px solid #d9822b; padding: 0.4em 0.8em; }
nav a { margin-right: 1.2em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
caption { text-align: left; color: #5b6675; padding-bottom: 0.3em; }
th, td { border: 1px solid #d5dbe3; padding: 0.25em 0.6em; }
th { background: #eef2f6; text-align: left; }
td { font-variant-numeric: tabular-nums; word-break: break-word; }
#summary-table td, #comparison-table td { text-align: right; white-space: nowrap; }
.scroll { overflow-x: auto; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr));
           gap: 1.2em; }
figure { margin: 0; padding: 0.6em; border: 1px solid #e1e6ec; border-radius: 6px; }
figure img { width: 100%; max-width: 760px; height: auto; display: block; margin: 0 auto; }
figcaption { font-size: 0.88em; color: #3c4654; margin-top: 0.4em; }
"""


def render(diagnostics: Source | Sequence[Source], out: str | os.PathLike, *,
           title: str | None = None, pdf: str | os.PathLike | None = None,
           overwrite: bool = False, separate: bool = False) -> Path:
    """Write the tail-analysis report of ``diagnostics`` to the HTML file ``out``.

    ``diagnostics``: "assimilate.diagnostics/1" Datasets or paths to Zarr stores holding
    them (a truth first reads best: later return-level figures also show its GPD estimate).
    Inputs of different variables or units are refused (``ValueError``) unless
    ``separate``, which draws every input on its own axes instead of overlaying them.
    ``pdf``: also write the figures, after a summary page, to this PDF. An existing ``out``
    or ``pdf`` is refused before any work unless ``overwrite``. Returns ``out``.
    """
    sources = [] if isinstance(diagnostics, xr.Dataset) else \
        [diagnostics] if isinstance(diagnostics, (str, os.PathLike)) else \
        [item for item in diagnostics if isinstance(item, (str, os.PathLike))]
    if pdf is not None and Path(pdf).resolve() == Path(out).resolve():
        raise OutputError(f"--pdf '{pdf}' is the same file as --out '{out}'; choose another")
    with contextlib.ExitStack() as stack:
        page_output = stack.enter_context(claim(out, kind="file", inputs=sources,
                                                overwrite=overwrite))
        pdf_output = None if pdf is None else stack.enter_context(
            claim(pdf, kind="file", inputs=sources, overwrite=overwrite, option="--pdf"))
        datasets = _checked(load(diagnostics), separate)
        title = title or "Tail analysis: " + ", ".join(d.attrs["label"] for d in datasets)
        created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        found = _ordered(panels(datasets, separate=separate) + point_maps(datasets))
        page = _page(datasets, found, title=title, created=created)
        with page_output.atomic() as scratch:
            scratch.write_text(page, encoding="utf-8")
        if pdf_output is not None:
            _write_pdf(pdf_output, datasets, found, title=title, created=created)
    return Path(out)


def panels(diagnostics: list[xr.Dataset], *, separate: bool = False) -> list[Panel]:
    """Every figure the data allows besides the per-point maps, in report order.

    Distributions overlay every input on one axes, unless ``separate``: then each input
    gets its own, and return-level figures leave out the first input's curve."""
    groups = [[d] for d in diagnostics] if separate else [diagnostics]
    found = [figure(group) for figure in (figures.histogram, figures.qq) for group in groups]
    found += [extreme_figures.threshold_stability(d) for d in diagnostics]
    found += [extreme_figures.return_levels(d, d if separate else diagnostics[0])
              for d in diagnostics]
    found += [extreme_figures.series(d) for d in diagnostics]
    found += figures.field_maps(diagnostics, "exceedance_map")
    found += figures.field_maps(diagnostics, "temporal_maximum")
    found += [figures.spectrum(group) for group in groups]
    return [panel for panel in found if panel is not None]


def _checked(datasets: list[xr.Dataset], separate: bool) -> list[xr.Dataset]:
    if not separate:
        check_compatible(datasets)
    return datasets


def plot(diagnostics: Source | Sequence[Source], *, separate: bool = False
         ) -> dict[str, Figure]:
    """The report's figures without the page, keyed by their HTML ids, in report order.

    For notebooks: ``plot(diag)["return-levels"]`` displays one figure. Keys are the figure
    kinds (``histogram``, ``qq``, ``threshold-stability``, ``return-levels``, ``series``,
    ``exceedance-map``, ``temporal-maximum-map``, ``spectrum``), with ``-1``, ``-2`` ...
    for the second and later diagnostics' own figures of a kind.
    """
    datasets = _checked(load(diagnostics), separate)
    found = _ordered(panels(datasets, separate=separate) + point_maps(datasets))
    return {figure_id: panel.figure for figure_id, panel in zip(_ids(found), found)}


def _ordered(found: list[Panel]) -> list[Panel]:
    order = [key for _, keys in SECTIONS for key in keys]
    return sorted(found, key=lambda panel: order.index(panel.key))


def _ids(found: list[Panel]) -> list[str]:
    """The first figure of a kind keeps its key as id; later ones get ``-1``, ``-2`` ..."""
    seen: dict[str, int] = {}
    ids = []
    for panel in found:
        count = seen.get(panel.key, 0)
        ids.append(panel.key if count == 0 else f"{panel.key}-{count}")
        seen[panel.key] = count + 1
    return ids


def _page(datasets: list[xr.Dataset], found: list[Panel], *, title: str, created: str) -> str:
    comparison, trend = tables.comparison(datasets), tables.trend(datasets)
    points = tables.point_fits(datasets)
    header = (f"<h1>{html.escape(title)}</h1><p class='meta'>Created {created} by "
              f"assimilate.report from {len(datasets)} diagnostics (schema "
              f"assimilate.diagnostics/1).</p>{_nav(found, comparison, trend, points)}")
    notes = "".join(f"<p class='warning'>Warning: {html.escape(line)}</p>"
                       for line in bound_warnings(datasets))
    parts = [f"<header>{header}{notes}</header>",
             _section("Inputs", _table(tables.inputs(datasets), "inputs-table", None)),
             _section("Summary", _table(tables.summary(datasets), "summary-table",
                                        _SUMMARY_CAPTION))]
    if comparison is not None:
        parts.append(_section("Comparison", _table(comparison, "comparison-table",
                                                   _COMPARISON_CAPTION)))
    if trend is not None:
        parts.append(_section("Trend", _table(trend, "trend-table", _TREND_CAPTION)))
    if points is not None:
        parts.append(_section("Per-point fits", _table(points, "point-table", _POINT_CAPTION)))
    ids = dict(zip(map(id, found), _ids(found), strict=True))
    for name, keys in SECTIONS:
        chosen = [panel for panel in found if panel.key in keys]
        if chosen:
            figures = "\n".join(_figure(panel, ids[id(panel)]) for panel in chosen)
            parts.append(_section(name, f"<div class='figures'>{figures}</div>"))
    body = "\n".join(parts)
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n"
            f"<body>\n{body}\n</body></html>\n")


_SUMMARY_CAPTION = ("4 significant digits, each with its units; an estimate's confidence "
                    "interval as (95 % CI [lower, upper]) at the diagnostics' confidence "
                    "level; quantiles are those of the whole record; return periods are "
                    "those the diagnostics store, in years for calendar (datetime) data, else "
                    "in the diagnostics' time units; — where a diagnostic holds no value.")
_TREND_CAPTION = ("A GEV whose location moves linearly with the covariate (time in years "
                  "for calendar data), fitted to the same block maxima as the stationary "
                  "GEV; D = 2 (log-likelihood with trend − without), its p-value from χ² "
                  "with one degree of freedom; effective return levels are those of the "
                  "GEV at the covariate value 'at' (delta-method intervals).")
_POINT_CAPTION = ("Fits at every spatial point (maps below): how many points have one, and "
                  "the spread of each quantity over the points, its median and the range "
                  "from its 5th to its 95th percentile over points (a spread, not a "
                  "confidence interval); the last row names how intervals at a point are "
                  "computed.")
_COMPARISON_CAPTION = ("Ratios are relative errors |compared − reference| / |reference| "
                       "(0 is perfect); an exceedance ratio of 1 is perfect, below 1 means "
                       "too few extremes; NaN where a score does not apply.")


def _section(heading: str, content: str) -> str:
    return (f"<section id='{heading.lower().replace(' ', '-')}'><h2>{heading}</h2>"
            f"{content}</section>")


def _nav(found: list[Panel], comparison: tables.Table | None,
         trend: tables.Table | None = None, points: tables.Table | None = None) -> str:
    keys = {panel.key for panel in found}
    links = [("inputs", "Inputs"), ("summary", "Summary")]
    links += [("comparison", "Comparison")] if comparison is not None else []
    links += [("trend", "Trend")] if trend is not None else []
    links += [("per-point-fits", "Per-point fits")] if points is not None else []
    links += [(name.lower(), name) for name, members in SECTIONS if keys & set(members)]
    return "<nav>" + "".join(f"<a href='#{a}'>{text}</a>" for a, text in links) + "</nav>"


def _table(table: tables.Table, table_id: str, caption: str | None) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in table.header)
    rows = "".join("<tr><th>" + html.escape(row[0]) + "</th>"
                   + "".join(f"<td>{html.escape(cell)}</td>" for cell in row[1:]) + "</tr>"
                   for row in table.rows)
    caption = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return (f"<div class='scroll'><table id='{table_id}'>{caption}<thead><tr>{head}</tr>"
            f"</thead><tbody>{rows}</tbody></table></div>")


def _figure(panel: Panel, figure_id: str) -> str:
    image = base64.b64encode(_png(panel.figure)).decode("ascii")
    caption = html.escape(panel.caption)
    return (f"<figure id='{figure_id}'><img src='data:image/png;base64,{image}' "
            f"alt='{html.escape(panel.key)}'><figcaption>{caption}</figcaption></figure>")


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    figure.set_layout_engine("none")  # keep this layout: the PDF then need not redo it
    return buffer.getvalue()


def _write_pdf(output: Output, datasets: list[xr.Dataset], found: list[Panel], *, title: str,
               created: str) -> None:
    """A summary page (the summary and comparison tables), then one figure per page."""
    with output.atomic() as scratch, PdfPages(scratch, metadata={"Title": title}) as document:
        document.savefig(_summary_page(datasets, title=title, created=created))
        for panel in found:
            document.savefig(panel.figure)


def _summary_page(datasets: list[xr.Dataset], *, title: str, created: str) -> Figure:
    page = Figure(figsize=(8.27, 11.69))  # A4 portrait
    page.text(0.06, 0.96, title, fontsize=14, weight="bold", va="top")
    page.text(0.06, 0.935, f"Created {created} by assimilate.report", fontsize=9, va="top")
    for row, line in enumerate(bound_warnings(datasets)):
        page.text(0.06, 0.915 - 0.03 * row, textwrap.fill(f"Warning: {line}", 120),
                  fontsize=7, va="top", color="#a34a00")
    shown = [(tables.summary(datasets), 0.52, 0.39, "Summary")]
    comparison = tables.comparison(datasets)
    if comparison is not None:
        shown.append((comparison, 0.08, 0.36, "Comparison"))
    for table, bottom, height, heading in shown:
        ax = page.add_axes((0.05, bottom, 0.9, height))
        ax.set_title(heading, loc="left", fontsize=11)
        _draw_table(ax, table)
    return page


def _draw_table(ax, table: tables.Table) -> None:
    """``table`` as a matplotlib table, columns as wide as their text, headers wrapped."""
    ax.axis("off")
    header = [textwrap.fill(cell, 16) for cell in table.header]
    widths = [max(len(line) for cell in [head, *column] for line in cell.split("\n"))
              for head, column in zip(header, zip(*table.rows, strict=True), strict=True)]
    drawn = ax.table(cellText=table.rows, colLabels=header, loc="upper center",
                     cellLoc="right", colWidths=[w / sum(widths) for w in widths])
    drawn.auto_set_font_size(False)
    drawn.set_fontsize(7)
    lines = max(head.count("\n") + 1 for head in header)
    for (row, column), cell in drawn.get_celld().items():
        if column == 0 or row == 0:
            cell.set_text_props(ha="left" if column == 0 else "center", weight="bold")
        if row == 0:
            cell.set_height(cell.get_height() * lines)
