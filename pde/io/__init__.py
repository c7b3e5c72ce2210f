"""Infrastructure every room shares: stores, the guarded write path, errors, progress,
Dask clusters and thread counts.

- ``store.py``: trajectory stores (Zarr) and their NetCDF export.
- ``integrity.py``: what ``assimilate verify`` checks, and the checked open of any store.
- ``output.py``: the one guarded write path (checked first, locked, atomic, cleaned up).
- ``errors.py``: errors the command line reports as one line.
- ``progress.py``, ``cluster.py``, ``threads.py``: progress bars, Dask clusters, threads.

May import ``pde``'s physics modules; never torch or ``assimilate``.
"""
