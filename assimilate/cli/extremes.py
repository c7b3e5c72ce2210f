"""Extreme-event verbs: ``diagnose`` a store, ``report`` on diagnostics."""

from __future__ import annotations

import argparse
from pathlib import Path

from assimilate.cli.options import (
    DASK,
    OUT,
    OVERWRITE,
    QUIET,
    WORKERS,
    add_verb,
    keywords,
    names,
    option,
    periods,
    positive,
    with_settings,
)

__all__ = ["add_verbs"]


def _covariate(spec: str):
    """``PATH:VARIABLE`` (or ``PATH`` holding one numeric variable) as a DataArray."""
    from assimilate.diagnostics import open_data

    path, _, name = spec.rpartition(":") if ":" in spec else (spec, "", "")
    import numpy as np

    try:
        ds = open_data(path)
    except (FileNotFoundError, ValueError) as error:
        raise ValueError(f"--covariate: {error}") from None
    numeric = [v for v in ds.data_vars if np.issubdtype(ds[v].dtype, np.number)]
    if not name and len(numeric) != 1:
        raise ValueError(f"--covariate '{path}' holds {len(numeric)} numeric variables "
                         f"({', '.join(map(str, numeric)) or 'none'}); name one as PATH:VAR")
    name = name or str(numeric[0])
    if name not in ds.data_vars:
        raise ValueError(f"--covariate '{path}' has no variable '{name}'; its variables are: "
                         f"{', '.join(map(str, ds.data_vars))}")
    return ds[name].load()


def _diagnose(args: argparse.Namespace) -> None:
    from assimilate.diagnostics import ComputeSettings, DiagnoseSettings, diagnose, summary

    compare = {}
    for item in args.compare:
        label, _, path = item.rpartition("=") if "=" in item else (Path(item).stem, "", item)
        compare[label] = path
    covariate = _covariate(args.covariate) if args.covariate else None
    given = keywords(args) | {
        "dims": args.dims.split(",") if args.dims is not None else None,
        "thresholds": tuple(args.thresholds), "trend": args.trend or covariate is not None,
        "compare": compare, "covariate": covariate}
    settings, rest = with_settings(given, DiagnoseSettings)
    compute, rest = with_settings(rest, ComputeSettings)
    result = diagnose(rest.pop("store"), settings, compute=compute, **rest)
    print(summary(result))
    print(f"wrote {args.out}")


def _indices(args: argparse.Namespace) -> None:
    from assimilate.diagnostics.indices import write_indices

    found = write_indices(**keywords(args))
    for name, values in found.data_vars.items():
        print(f"{name}: {values.attrs.get('long_name', name)} ({values.attrs.get('units', '')})"
              f", {values.sizes['time']} periods from {str(values['time'].values[0])[:10]}")
    print(f"wrote {args.out}")


def _report(args: argparse.Namespace) -> None:
    from assimilate.report import render

    out = render(**keywords(args))
    print(f"wrote {out}" + (f" and {args.pdf}" if args.pdf else ""))


# the options of the extreme-value analysis: the keywords of `diagnose`
ANALYSIS = (
    option("--series", help="series for the extreme-value analysis "
                            "(default: dissipation or the spatial maximum)"),
    option("--pot-quantile", type=float, default=0.9,
           help="peaks-over-threshold threshold as a quantile of the series"),
    option("--pot-threshold", metavar="X",
           help="the series' threshold as a value instead of --pot-quantile (a number in the "
                "field's units or a quantity): two records compared above one threshold"),
    option("--run-length", metavar="DURATION",
           help="declustering run length: a duration (2D, 36h, 1W) for datetime data, a "
                "number in the time coordinate's units otherwise, or none (0) to keep every "
                "exceedance (default: chosen from the data by the intervals estimator of the "
                "extremal index, Ferro & Segers 2003)"),
    option("--season", choices=("DJF", "MAM", "JJA", "SON"),
           help="analyse one season of datetime data: the GEV of each year's maximum within "
                "it (December with the next January), peaks within it; rates stay per year"),
    option("--block-steps", type=positive, help="block length in steps (GEV)"),
    option("--block", choices=("year", "season", "month"),
           help="calendar block of the block maxima for datetime data (default: year); "
                "season pools the maxima of all four seasons into one GEV (one season alone: "
                "--season)"),
    option("--return-periods", type=periods, metavar="T,T,...",
           help="return periods: years for datetime data (default 2,5,10,20,50,100), else "
                "the time coordinate's units"),
    option("--units", metavar="UNITS",
           help="convert the field to these units first (pint, CF strings), e.g. degC for a "
                "temperature in K, mm/day for precipitation in kg m-2 s-1 (as liquid water); "
                "plain-number thresholds and --floor are then in them"),
    option("--floor", metavar="X", help="leave out values below this and count them: a number "
                                        "in the field's units or a quantity, e.g. '1 mm/day' "
                                        "for the wet days of precipitation"),
    option("--per-point", action="store_true",
           help="also fit GPD and GEV at every spatial point (maps)"),
    option("--trend", action="store_true",
           help="also fit a GEV whose location moves linearly in time (years for datetime "
                "data) and test it against the stationary one"),
    option("--covariate", metavar="PATH[:VAR]",
           help="a series along time that the GEV location follows instead of time (implies "
                "--trend; averaged over each block)"),
    option("--trend-at", type=float, metavar="VALUE",
           help="the year (or covariate value) of the effective return levels (default: the "
                "last block)"),
)


def add_verbs(verbs: argparse._SubParsersAction) -> None:
    add_verb(
        verbs, "diagnose", "extreme-event diagnostics of a store (Dask)", _diagnose,
        option("store", help="Zarr store or NetCDF file"),
        OUT(help="output diagnostics store (Zarr)"),
        option("--var", dest="variable", help="variable (default: the only numeric one)"),
        option("--dims", help="TIME,SPACE... e.g. time,lat,lon ('' first: no time); other "
                              "dims are pooled realisations"),
        option("--compare", action="append", default=[], metavar="[LABEL=]STORE",
               help="a store to score against this one (repeatable)"),
        option("--threshold", dest="thresholds", action="append", default=[], metavar="X",
               help="a threshold whose exceedance probability is counted (repeatable): a "
                    "number in the field's units or a quantity, e.g. '30 mm/day'"),
        ANALYSIS, option("--label", help="name shown in reports (default: the store's name)"),
        WORKERS, DASK, OVERWRITE, QUIET)
    add_verb(verbs, "indices", "ETCCDI climate-extremes indices of a daily record", _indices,
             option("store", help="Zarr store or NetCDF file of daily data"),
             OUT(help="output NetCDF file of the indices"),
             option("--index", type=names, required=True, metavar="NAME,NAME",
                    help="rx1day, rx5day, r95ptot, cdd (precipitation), txx, tnn (daily "
                         "maximum and minimum temperature)"),
             option("--var", dest="variable", help="variable (default: the only numeric one)"),
             option("--freq", default="YS", help="resampling frequency: YS years (default), "
                                                 "QS-DEC seasons, MS months"),
             OVERWRITE(help="replace an existing --out file"))
    add_verb(verbs, "report", "HTML tail-analysis report from diagnostics", _report,
             option("diagnostics", nargs="+", help="diagnostics stores (assimilate diagnose)"),
             OUT(help="output HTML file"),
             option("--pdf", help="also write the figures to this PDF"),
             option("--title", help="report title"),
             option("--separate", action="store_true",
                    help="draw each input on its own axes: needed for inputs of different "
                         "variables or units, which are otherwise refused"),
             OVERWRITE(help="replace an existing --out or --pdf file"))
