"""Which diagnostics a report draws, under which names, and what it must refuse or flag.

- ``once_per_source``: a comparison input (variables with dim ``compared``, see
  :mod:`assimilate.diagnostics.comparison`) already holds its reference, so a plain input
  diagnosing the same source is left out rather than drawn a second time;
- ``labelled``: each input is named by the label given to ``diagnose``, else its
  variable's long name (attrs ``long_name``), else the default label, and its source, never
  by a file name with a counter;
- ``check_compatible``: inputs overlaid on one axes must share variable and units (units
  that pint reads as the same, ``mm/day`` and ``mm d-1``, or ``1`` and none, are the same);
- ``bound_warnings``: stored lower interval bounds below attrs ``lower_bound`` (a physical
  floor, e.g. 0 for a non-negative variable) are named, not hidden.
"""

from __future__ import annotations

import xarray as xr

from assimilate.diagnostics.units import same_units

__all__ = ["BOUNDED", "bound_warnings", "check_compatible", "labelled", "once_per_source"]

UNNAMED_SOURCES = {"", "the data"}  # what diagnose records when it was given no path
# Variables with an interval dim in the variable's units: their lower bounds meet the floor.
BOUNDED = ("return_level", "gev_return_level", "effective_return_level",
           "point_gev_return_level", "point_return_level", "gev_location",
           "point_gev_location")


def once_per_source(datasets: list[xr.Dataset]) -> list[xr.Dataset]:
    """``datasets`` less each plain one whose source a comparison input also diagnoses."""
    compared = {_source(d) for d in datasets if "compared" in d.dims} - UNNAMED_SOURCES
    return [d for d in datasets if "compared" in d.dims or _source(d) not in compared]


def labelled(datasets: list[xr.Dataset]) -> list[xr.Dataset]:
    """``datasets`` with attrs["label"] = "long name (source)" and attrs["index"], their
    position (the colour of every figure); a label two inputs share gets the store's name."""
    names = [_name(d) for d in datasets]
    for index, (d, name) in enumerate(zip(datasets, names, strict=True)):
        if names.count(name) > 1:
            name = f"{name}, diagnostics {d.attrs['store']}"
        d.attrs["label"], d.attrs["index"] = name, index
    return datasets


def check_compatible(datasets: list[xr.Dataset]) -> None:
    """Refuse, in one line, inputs whose variable or units differ: their curves would share
    axes with one scale. ``render(..., separate=True)`` draws each on its own axes."""
    first = datasets[0]
    for other in datasets[1:]:
        for key in ("units", "variable"):
            a, b = str(first.attrs.get(key, "")), str(other.attrs.get(key, ""))
            if a != b and not (key == "units" and same_units(a, b)):
                raise ValueError(
                    f"{first.attrs['store']} ('{first.attrs['label']}', {key} '{a}') and "
                    f"{other.attrs['store']} ('{other.attrs['label']}', {key} '{b}') differ in "
                    f"{key}, so their curves cannot share axes; draw each on its own axes "
                    "with --separate (render(..., separate=True)) or report them apart")


def bound_warnings(datasets: list[xr.Dataset]) -> list[str]:
    """One line per input whose stored lower interval bounds fall below attrs["lower_bound"]."""
    lines = []
    for d in datasets:
        if d.attrs.get("lower_bound") is None:
            continue
        floor = float(d.attrs["lower_bound"])
        below = {name: int((d[name].sel(interval="lower") < floor).sum()) for name in BOUNDED
                 if name in d and "interval" in d[name].dims}
        below = {name: count for name, count in below.items() if count}
        if below:
            units = str(d.attrs.get("units", ""))
            found = ", ".join(f"{count} of {name}" for name, count in below.items())
            lines.append(f"{d.attrs['label']}: {sum(below.values())} stored lower confidence "
                         f"bounds lie below {d.attrs.get('variable', 'the variable')}'s "
                         f"physical lower bound {floor:g}{' ' + units if units else ''} "
                         f"({found}); the tables show them as stored, and those intervals "
                         "are not to be read as physical ranges.")
    return lines


def _source(d: xr.Dataset) -> str:
    return str(d.attrs.get("source", ""))


def _name(d: xr.Dataset) -> str:
    """The label given to ``diagnose`` (``--label``), else the long name, else the default
    label (the store's name), with the source where it is not already in it."""
    given = bool(d.attrs.get("label_given", 0))
    base = str(d.attrs["label"] if given else d.attrs.get("long_name") or d.attrs["label"])
    source = _source(d)
    if source in UNNAMED_SOURCES or source in base:
        return base
    return f"{base} ({source})"
