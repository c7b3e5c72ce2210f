"""A self-contained HTML report of the tails of one or more diagnostics Datasets.

``render(diagnostics, out)`` reads "assimilate.diagnostics/1" Datasets (or Zarr stores of
them) and writes one HTML file with the figures embedded as PNGs: histogram, QQ plot of the
peaks over threshold, return levels (GPD and GEV), the extremes series with its peaks, maps
of exceedance frequency and temporal maximum, the energy spectrum, and the summary and
comparison tables. ``plot(diagnostics)`` returns the same figures, keyed by id, for
notebooks.

May import ``pde.io`` and ``assimilate.diagnostics`` (the schema of what it draws).
"""

from assimilate.report.page import plot, render

__all__ = ["plot", "render"]
