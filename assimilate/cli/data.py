"""Verbs on data: ``simulate`` a trajectory store or ``import`` one from a user's gridded
files, ``observe`` it, ``export`` it to NetCDF, ``verify`` a store."""

from __future__ import annotations

import argparse
from pathlib import Path

from assimilate.cli.options import (
    CONFIG,
    DASK,
    OUT,
    OVERWRITE,
    QUIET,
    SEED,
    WORKERS,
    add_verb,
    configured,
    keywords,
    option,
    positive,
    trajectory_selection,
)
from pde.io.errors import StoreError

__all__ = ["add_verbs"]


def _simulate(args: argparse.Namespace) -> None:
    config, given = configured(args)  # a bad config fails before JAX is imported
    from pde.generate import simulate

    print(simulate(config, **given))


def _import(args: argparse.Namespace) -> None:
    from pde.ingest import import_data

    print(import_data(**keywords(args)))


def _observe(args: argparse.Namespace) -> None:
    from assimilate.observe import observe, summary

    ds = observe(**keywords(args))
    print(summary(ds))
    print(f"wrote {args.out}")


def _export(args: argparse.Namespace) -> None:
    from pde.io.store import export

    written = export(**keywords(args))
    print(f"wrote {written}")


def _verify(args: argparse.Namespace) -> int:
    from pde.io.verify import verify

    path = Path(args.store)
    if not (path / "zarr.json").is_file():
        raise StoreError(f"'{path}' is not a Zarr store (expected a directory with zarr.json)")
    report = verify(**keywords(args))
    print(report)
    return 1 if report.damaged else 0


def add_verbs(verbs: argparse._SubParsersAction) -> None:
    add_verb(verbs, "simulate", "write a trajectory store from a config", _simulate,
             CONFIG, OUT(help="output Zarr store directory"),
             option("--trajectories", type=positive, help="override dataset.trajectories"),
             option("--steps", type=positive, help="override dataset.steps"),
             SEED(default=None, help="override dataset.seed (e.g. for a test set)"),
             WORKERS(default=1, help="Dask worker processes (1: run in this process)"),
             DASK, OVERWRITE(help="replace a store written with another configuration"),
             QUIET)
    add_verb(verbs, "import", "write a trajectory store from NetCDF, GRIB or Zarr files",
             _import, option("sources", nargs="+", metavar="SOURCE",
                             help="NetCDF (.nc), GRIB (.grib, .grib2) files or Zarr stores, "
                                  "in any order (one grid, one interval)"),
             OUT(help="output trajectory store (Zarr)"),
             option("--variable", help="the gridded variable (default: the only one)"),
             option("--segment", metavar="DURATION",
                    help="cut the record into trajectories of this length (7D, 24h; "
                         "default: one trajectory)"),
             option("--region", metavar="S,N,W,E",
                    help="keep the points in this latitude-longitude box (degrees)"),
             option("--period", metavar="START/END",
                    help="keep the times from START up to END, excluded (ISO dates: "
                         "2019-03-01/2019-03-25 is days 1 to 24)"),
             option("--units", help="the variable's units, where the files name none"),
             option("--attribution", help="attribution text to carry with the data "
                                          "(default: the source's 'attribution' attribute)"),
             OVERWRITE, QUIET)
    add_verb(verbs, "observe", "synthetic observations of a truth store under a named regime",
             _observe, option("store", help="truth trajectory store"),
             option("--regime", required=True, help="regime name (configs/regimes.yaml)"),
             OUT(help="output observations store (Zarr)"),
             option("--trajectories", type=trajectory_selection, metavar="N|I,J,...",
                    help="the first N trajectories, or these indices (default: all)"),
             SEED(help="seed of the observation noise"),
             option("--regimes", dest="regimes_path",
                    help="regimes file (default: configs/regimes.yaml)"),
             OVERWRITE, QUIET)
    add_verb(verbs, "export", "write a trajectory store as NetCDF", _export,
             option("store", help="trajectory store directory"),
             option("--to", required=True, help="output NetCDF file"),
             OVERWRITE(help="replace an existing file"))
    add_verb(verbs, "verify", "check every chunk and value of a store (exit code 1 on damage)",
             _verify, option("store", help="Zarr store (trajectories, forecasts, "
                                           "diagnostics ...)"), QUIET)
