"""Maps of a field over the space dims: a line (1-D), an image (y, x) or a map (lat, lon).

Latitude/longitude fields are drawn with cartopy (PlateCarree) when it imports, with the
Natural Earth coastlines that ship with this package (``coastlines/``, public domain: 1:50
million for regional maps, 1:110 million for maps wider than 60°). Nothing is downloaded:
cartopy's downloaders are emptied while a map is drawn. Any failure on the cartopy path
falls back to a plain lon/lat image with a warning that says why.

Points without a value (NaN: no data, or no fit at that point) are drawn in ``MISSING``
light grey with a legend entry "no data / no fit", on a white background: no image lies
under the data, so a gap never reads as a value of the colour scale.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

__all__ = ["FIGURE_SIZE", "MISSING", "coastline_file", "field_figure", "is_geographic"]

FIGURE_SIZE = (7.0, 4.0)
COASTLINES = Path(__file__).with_name("coastlines")
REGIONAL = 60.0  # degrees of longitude: narrower maps get the finer coastline
LATITUDE_NAMES, LONGITUDE_NAMES = {"lat", "latitude"}, {"lon", "longitude"}
NORTH = {"degrees_north", "degree_north", "degrees_n", "degree_n"}
EAST = {"degrees_east", "degree_east", "degrees_e", "degree_e"}
MISSING = "#c8c8c8"  # light grey, in no colour map the report uses


def field_figure(field: xr.DataArray, *, title: str, label: str, cmap: str,
                 limits: tuple[float, float]) -> Figure:
    """``field`` over 1 or 2 space dims ``(x,)``, ``(y, x)`` or ``(lat, lon)`` as a Figure."""
    if field.ndim == 1:
        return _line(field, title=title, label=label)
    if is_geographic(field):
        try:
            return _cartopy_map(field, title=title, label=label, cmap=cmap, limits=limits)
        except Exception as error:  # noqa: BLE001 - any cartopy trouble must not stop a report
            warnings.warn(f"cartopy could not draw the map '{title}' ({error!r}); drawing it "
                          "on plain lon/lat axes instead", stacklevel=2)
    return _image(field, title=title, label=label, cmap=cmap, limits=limits)


def is_geographic(field: xr.DataArray) -> bool:
    """True when the two dims are latitude and longitude (by name or by CF units)."""
    return _geographic_dims(field) is not None


def coastline_file(width: float = 360.0) -> Path:
    """The packaged Natural Earth coastline for a map ``width`` degrees of longitude wide:
    1:50 million below ``REGIONAL``, 1:110 million above."""
    return COASTLINES / f"ne_{'50m' if width < REGIONAL else '110m'}_coastline.shp"


def _geographic_dims(field: xr.DataArray) -> tuple[str, str] | None:
    def matches(dim: str, names: set[str], units: set[str]) -> bool:
        unit = field[dim].attrs.get("units", "") if dim in field.coords else ""
        return dim.lower() in names or str(unit).lower() in units

    lat = [d for d in field.dims if matches(str(d), LATITUDE_NAMES, NORTH)]
    lon = [d for d in field.dims if matches(str(d), LONGITUDE_NAMES, EAST)]
    return (str(lat[0]), str(lon[0])) if lat and lon and field.ndim == 2 else None


def _coordinate(field: xr.DataArray, dim: str) -> np.ndarray:
    return np.asarray(field[dim].values) if dim in field.coords else np.arange(field.sizes[dim])


def _line(field: xr.DataArray, *, title: str, label: str) -> Figure:
    figure = Figure(figsize=FIGURE_SIZE, layout="constrained")
    ax = figure.add_subplot()
    dim = str(field.dims[0])
    ax.plot(_coordinate(field, dim), field.values, color="C0")
    ax.set(title=title, xlabel=dim, ylabel=label)
    ax.grid(alpha=0.3)
    return figure


def _image(field: xr.DataArray, *, title: str, label: str, cmap: str,
           limits: tuple[float, float]) -> Figure:
    """Plain pcolormesh: lon/lat axes for geographic fields, equal aspect otherwise."""
    geographic = _geographic_dims(field)
    row, column = geographic or (str(field.dims[0]), str(field.dims[1]))
    field = field.transpose(row, column)
    figure = Figure(figsize=FIGURE_SIZE, layout="constrained")
    ax = figure.add_subplot()
    x, y = _coordinate(field, column), _coordinate(field, row)
    _missing(ax, x, y, field)
    mesh = ax.pcolormesh(x, y, np.ma.masked_invalid(field.values), cmap=cmap,
                         vmin=limits[0], vmax=limits[1], shading="auto")
    ax.set(title=title, xlabel="longitude" if geographic else column,
           ylabel="latitude" if geographic else row)
    if not geographic:
        ax.set_aspect("equal")
    figure.colorbar(mesh, ax=ax, label=label, shrink=0.9)
    return figure


def _cartopy_map(field: xr.DataArray, *, title: str, label: str, cmap: str,
                 limits: tuple[float, float]) -> Figure:
    import cartopy.crs as ccrs

    lat, lon = _geographic_dims(field)
    field = field.transpose(lat, lon)
    x, y = _coordinate(field, lon), _coordinate(field, lat)
    plate = ccrs.PlateCarree()
    figure = Figure(figsize=FIGURE_SIZE, layout="constrained")
    with _no_downloads():
        ax = figure.add_subplot(projection=plate)
        _coastlines(ax, plate, float(np.ptp(x)) if x.size else 360.0)
        ax.set_facecolor("white")
        _missing(ax, x, y, field, transform=plate)
        mesh = ax.pcolormesh(x, y, np.ma.masked_invalid(field.values), transform=plate,
                             cmap=cmap, vmin=limits[0], vmax=limits[1], shading="auto")
        _set_extent(ax, x, y, plate)
        ax.gridlines(draw_labels=["bottom", "left"], linewidth=0.3, color="0.4", alpha=0.6)
        ax.set_title(title)
        # Below the map: lat/lon maps are wide, a side bar would outgrow them.
        figure.colorbar(mesh, ax=ax, label=label, orientation="horizontal", shrink=0.6)
        FigureCanvasAgg(figure).draw()  # render now, inside the guard, so failures fall back
    return figure


def _missing(ax, x: np.ndarray, y: np.ndarray, field: xr.DataArray, **transform) -> None:
    """The NaN cells of ``field`` in ``MISSING``, under the data, and a legend entry for
    them when there are any. A layer of its own rather than the colour map's "bad" colour,
    which cartopy needs transparent to wrap a global map."""
    values = np.asarray(field.values, dtype=float)
    missing = int(np.isnan(values).sum())
    if missing:
        ax.pcolormesh(x, y, np.ma.masked_array(np.zeros_like(values), ~np.isnan(values)),
                      cmap=ListedColormap([MISSING]), shading="auto", **transform)
        ax.legend(handles=[Patch(facecolor=MISSING, edgecolor="0.4", linewidth=0.5,
                                 label=f"no data / no fit ({missing} of {field.size} points)")],
                  loc="lower left", fontsize="x-small", framealpha=0.9).set_zorder(5)


def _coastlines(ax, plate, width: float) -> None:
    """The packaged coastlines, over the data."""
    ax.add_geometries(_geometries(coastline_file(width)), plate, facecolor="none",
                      edgecolor="black", linewidth=0.6, zorder=3)


@functools.lru_cache(maxsize=2)
def _geometries(path: Path) -> tuple:
    """A coastline file's lines, read once per process (a report draws several maps)."""
    from cartopy.io.shapereader import Reader

    return tuple(Reader(str(path)).geometries())


def _set_extent(ax, x: np.ndarray, y: np.ndarray, plate) -> None:
    """The data's extent, out to the cell edges (coordinates are cell centres)."""
    dx = float(np.median(np.abs(np.diff(x)))) / 2 if x.size > 1 else 0.0
    dy = float(np.median(np.abs(np.diff(y)))) / 2 if y.size > 1 else 0.0
    west, east = float(np.min(x)) - dx, float(np.max(x)) + dx
    south, north = max(float(np.min(y)) - dy, -90.0), min(float(np.max(y)) + dy, 90.0)
    if east - west >= 350.0 and north - south >= 170.0:
        ax.set_global()
    elif east - west < 360.0:
        ax.set_extent([west, east, south, north], crs=plate)


@contextlib.contextmanager
def _no_downloads() -> Iterator[None]:
    """Empty cartopy's downloaders, so anything that would fetch raises instead."""
    import cartopy

    saved = cartopy.config["downloaders"]
    cartopy.config["downloaders"] = {}
    try:
        yield
    finally:
        cartopy.config["downloaders"] = saved
