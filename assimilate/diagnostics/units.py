"""The field in the units a reader wants (``diagnose --units degC``), through pint.

Unit strings are read as CF writes them (``K``, ``degC``, ``m s-1``, ``kg m-2 s-1``) by
cf_xarray's pint registry. A conversion is linear, ``a·x + b`` (temperatures carry an
offset), so it is applied lazily, before the one Dask pass: every number the diagnostics
and the report then show, thresholds and floors included, is in the new units.

Precipitation is a mass flux in CF files (``kg m-2 s-1``) and a depth per time for a
reader (``mm/day``): the two convert through the density of liquid water, 1000 kg m-3,
which the ``hydro`` context adds to the registry (as hydrologists' tools do). Floors and
thresholds may be quantities (``"1 mm/day"``), converted into the field's units.

    convert(field, "degC", "analysis.zarr")        # K -> °C
    convert(field, "mm/day", "pr.nc")              # kg m-2 s-1 -> mm/day
    magnitude("1 mm/day", field, "--floor", "pr.nc")   # the floor in the field's units
"""

from __future__ import annotations

import functools

import xarray as xr

__all__ = ["WATER_DENSITY", "convert", "dimension", "display", "magnitude", "registry",
           "same_units"]

WATER_DENSITY = "1000 kg m-3"
"""Liquid water: a mass flux of 1 kg m-2 s-1 is a depth of 1 mm a second."""


@functools.cache
def registry():
    """cf_xarray's pint registry with the ``hydro`` context (mass flux <-> depth rate)."""
    import pint
    from cf_xarray.units import units

    context = pint.Context("hydro")
    density = units.Quantity(WATER_DENSITY)
    for mass, depth in (("[mass] / [length] ** 2 / [time]", "[length] / [time]"),
                        ("[mass] / [length] ** 2", "[length]")):
        context.add_transformation(mass, depth, lambda _, x: x / density)
        context.add_transformation(depth, mass, lambda _, x: x * density)
    units.add_context(context)
    return units


def _reason(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _to(quantity, wanted: str):
    return quantity.to(wanted, "hydro")


def _linear(given: str, wanted: str) -> tuple[float, float]:
    """``(a, b)`` with ``wanted = a · given + b``."""
    units = registry()
    zero = _to(units.Quantity(0.0, given), wanted).magnitude
    one = _to(units.Quantity(1.0, given), wanted).magnitude
    return float(one - zero), float(zero)


def _errors() -> tuple[type[Exception], ...]:
    import pint

    return pint.errors.PintError, ValueError, AttributeError, TypeError, AssertionError


def _units_of(field: xr.DataArray) -> str:
    given = str(field.attrs.get("units", "")).strip()
    return "" if given == "1" else given


def convert(field: xr.DataArray, units: str | None, source: str) -> xr.DataArray:
    """``field`` in ``units`` (None: as it is), refused in one line where it has no units
    or its units do not convert to ``units``."""
    if units is None:
        return field
    given = _units_of(field)
    if not given:
        raise ValueError(f"--units {units}: '{field.name}' of {source} carries no units "
                         "attribute to convert from; set its 'units' attribute")
    try:
        scale, offset = _linear(given, units)
    except _errors() as error:
        raise ValueError(f"--units {units}: '{field.name}' of {source} is in '{given}', which "
                         f"does not convert to '{units}' ({_reason(error)})") from None
    converted = field * scale + offset if (scale, offset) != (1.0, 0.0) else field
    return converted.assign_attrs({**field.attrs, "units": units,
                                   "converted_from": given}).rename(field.name)


def magnitude(value: float | str, field: xr.DataArray, option: str, source: str) -> float:
    """``value`` as a number in the units of ``field``: a number is taken as it is, a
    quantity such as ``"1 mm/day"`` is converted (refused in one line where it cannot be)."""
    if not isinstance(value, str):
        return float(value)
    try:
        return float(value)
    except ValueError:
        pass
    given = _units_of(field)
    if not given:
        raise ValueError(f"{option} {value!r}: '{field.name}' of {source} carries no units "
                         "attribute; give a plain number")
    try:
        number = float(_to(registry().Quantity(value), given).magnitude)
    except _errors() as error:
        raise ValueError(f"{option} {value!r} does not convert to the units of "
                         f"'{field.name}' of {source}, '{given}' ({_reason(error)})") from None
    return number


def display(units: str) -> str:
    """``units`` as a reader writes them: ``degC`` -> ``°C``, ``m s-1`` -> ``m/s``; units
    already written with a slash (``mm/day``) and strings pint cannot read come back as
    they are."""
    units = str(units).strip()
    if units in ("", "1"):
        return ""
    if "/" in units:
        return units
    try:
        text = f"{registry().Unit(units):~P}"
    except _errors():
        return units
    return text or units


def same_units(first: str, second: str) -> bool:
    """Whether two unit strings name the same unit: ``mm/day`` and ``mm d-1``; ``1`` and
    none (dimensionless); strings pint cannot read only when they are equal."""
    first, second = str(first).strip(), str(second).strip()
    first, second = ("" if u == "1" else u for u in (first, second))
    if first == second:
        return True
    if not (first and second):
        return False
    try:
        one = registry().Quantity(1.0, first)
        return bool(abs(one.to(second).magnitude - 1.0) < 1e-12)
    except _errors():
        return False


def dimension(units: str) -> str:
    """The physical dimension of ``units`` as pint writes it (``[temperature]``); ``""`` for
    no units or a string pint cannot read."""
    units = str(units).strip()
    if not units:
        return ""
    try:
        return str(registry().Unit(units).dimensionality)
    except _errors():
        return ""
