"""The field in the units a reader wants (``diagnose --units degC``), through pint.

Unit strings are read as CF writes them (``K``, ``degC``, ``m s-1``, ``kg m-2 s-1``) by
cf_xarray's pint registry. A conversion is linear, ``a·x + b`` (temperatures carry an
offset), so it is applied lazily, before the one Dask pass: every number the diagnostics
and the report then show, thresholds and floors included, is in the new units.

    convert(field, "degC", "analysis.zarr")  # K -> °C
"""

from __future__ import annotations

import xarray as xr

__all__ = ["convert"]


def _linear(given: str, wanted: str) -> tuple[float, float]:
    """``(a, b)`` with ``wanted = a · given + b``."""
    from cf_xarray.units import units as registry

    zero = registry.Quantity(0.0, given).to(wanted).magnitude
    one = registry.Quantity(1.0, given).to(wanted).magnitude
    return float(one - zero), float(zero)


def convert(field: xr.DataArray, units: str | None, source: str) -> xr.DataArray:
    """``field`` in ``units`` (None: as it is), refused in one line where it has no units
    or its units do not convert to ``units``."""
    if units is None:
        return field
    import pint

    given = str(field.attrs.get("units", "")).strip()
    if given in ("", "1"):
        raise ValueError(f"--units {units}: '{field.name}' of {source} carries no units "
                         "attribute to convert from; set its 'units' attribute")
    try:
        scale, offset = _linear(given, units)
    except (pint.errors.PintError, ValueError, AttributeError, TypeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"--units {units}: '{field.name}' of {source} is in '{given}', which "
                         f"does not convert to '{units}' ({reason})") from None
    converted = field * scale + offset if (scale, offset) != (1.0, 0.0) else field
    return converted.assign_attrs({**field.attrs, "units": units,
                                   "converted_from": given}).rename(field.name)
