"""Infrastructure every room shares: stores, the guarded write path, errors, progress,
Dask clusters and thread counts.

- ``store.py``: trajectory stores (Zarr) and their NetCDF export.
- ``chunks.py``: the checksummed encoding of every array we write, and which chunks are lost.
- ``integrity.py``: the checked open of any store, and checked reads of its fields.
- ``verify.py``: ``assimilate verify``, every chunk read and all damage reported.
- ``output.py``: the one guarded write path (checked first, locked, atomic, cleaned up).
- ``errors.py``: errors the command line reports as one line.
- ``progress.py``, ``cluster.py``, ``threads.py``: progress bars, Dask clusters, threads.

May import ``pde``'s physics modules; never torch or ``assimilate``.
"""
