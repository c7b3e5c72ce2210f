"""How many threads the numerical libraries use: one choice for the machine and the work.

The work here is small per call (a forecaster step of a few members on a 64-point grid, a
16-member filter analysis), where a second thread gains nothing on a quiet machine and
costs much on a busy one: each of torch's many short OpenMP regions ends when its slowest
thread does, so a pool as wide as the machine, on cores that other processes keep busy,
waits for the scheduler at every region. Measured on a 2-core machine
(``benchmarks/threads.py``, README "Threads"): with torch's default of 2 threads the
forecaster ran 39-43x slower than with one while two processes kept the cores busy, and
1.2x slower on the quiet machine; the filters' BLAS and XLA work showed no consistent
difference either way.

Policy (:func:`choose`, a pure function): ``--threads N`` on the command line, else
``ASSIMILATE_THREADS=N``, else half the cores nobody is using, ``(cores - load) / 2``,
at least 1 and at most :data:`MAX_DEFAULT`; ``cores`` are those this process may run on
(affinity and a cgroup CPU quota), ``load`` the 1-minute load average. Half, because the
load changes after the choice (a notebook kernel lives for hours). Under the default, a
library whose own setting the user made keeps it: ``OMP_NUM_THREADS`` (torch and every
OpenMP pool), ``OPENBLAS_NUM_THREADS`` / ``MKL_NUM_THREADS`` (BLAS), a
``xla_cpu_multi_thread_eigen`` in ``XLA_FLAGS`` (JAX), a torch count already changed by
``torch.set_num_threads``.

:func:`configure` decides once per process and applies the choice to what is loaded:
torch (intra- and inter-op) when imported, BLAS pools through ``threadpoolctl``, and the
same as environment variables for libraries loaded later and for child processes (Dask
workers). JAX's pool is fixed when its backend starts, so XLA can only be made
single-threaded (``--xla_cpu_multi_thread_eigen=false``, for a choice of 1) before the
first JAX computation. This module never imports torch or JAX: it touches them only when
the caller has.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ENVIRONMENT", "MAX_DEFAULT", "Threads", "available_cores", "choose", "configure",
           "in_effect"]

ENVIRONMENT = "ASSIMILATE_THREADS"
MAX_DEFAULT = 4  # the per-call work is too small to split further (measured up to 2 cores only)
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false"
# The variables through which a user sets a library's threads, and the libraries each one
# reaches (OpenBLAS falls back to OMP_NUM_THREADS, torch reads MKL_NUM_THREADS too) ...
LIBRARY_VARIABLES = {"OMP_NUM_THREADS": ("torch", "blas"), "OPENBLAS_NUM_THREADS": ("blas",),
                     "MKL_NUM_THREADS": ("blas", "torch")}
# ... and the one this module sets each of them for.
EXPORTED_FOR = {"OMP_NUM_THREADS": "torch", "OPENBLAS_NUM_THREADS": "blas",
                "MKL_NUM_THREADS": "blas"}


@dataclass(frozen=True)
class Threads:
    """The choice: ``count`` threads per pool, why (``source``: ``--threads``,
    ``ASSIMILATE_THREADS`` or ``default``), the ``cores`` and ``load`` it was made from, and
    the user's own settings it leaves alone (``kept``, e.g. ``("OMP_NUM_THREADS=4",)``)."""

    count: int
    source: str
    cores: int
    load: float
    kept: tuple[str, ...] = ()

    def governs(self, library: str) -> bool:
        """Whether the choice applies to ``library`` (``torch``, ``blas`` or ``xla``)."""
        return not any(library in _libraries(setting) for setting in self.kept)

    def __str__(self) -> str:
        why = (f"default: ({self.cores} cores - load {self.load:.1f}) / 2, "
               f"within 1..{MAX_DEFAULT}" if self.source == "default" else self.source)
        pools = [f"{name} {self.count}" for name in ("torch", "BLAS") if self.governs(name.lower())]
        if self.governs("xla"):  # XLA's pool is one thread or all cores: it takes no count
            pools.append("XLA 1" if self.count == 1 else "XLA all cores")
        kept = f"; the user's {', '.join(self.kept)} kept" if self.kept else ""
        return f"threads: {', '.join(pools) or 'all as set by the user'} ({why}){kept}"


def _libraries(setting: str) -> tuple[str, ...]:
    name = setting.split("=", 1)[0]
    return ("xla",) if name == "XLA_FLAGS" else LIBRARY_VARIABLES.get(name, ())


def _positive(text: str, where: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{where}={text!r}: the number of threads must be a positive integer")
    return value


def choose(cores: int, load: float, environ: Mapping[str, str],
           requested: int | None = None) -> Threads:
    """The thread count for ``cores`` available cores at 1-minute ``load``, with the
    variables of ``environ`` and a count ``requested`` on the command line (module doc)."""
    if requested is not None:
        return Threads(_positive(str(requested), "--threads"), "--threads", cores, load)
    if environ.get(ENVIRONMENT, "").strip():
        return Threads(_positive(environ[ENVIRONMENT], ENVIRONMENT), ENVIRONMENT, cores, load)
    count = max(1, min(MAX_DEFAULT, math.floor((cores - load) / 2)))
    kept = [f"{name}={environ[name]}" for name in LIBRARY_VARIABLES if environ.get(name)]
    if "xla_cpu_multi_thread_eigen" in environ.get("XLA_FLAGS", ""):
        kept.append(f"XLA_FLAGS={environ['XLA_FLAGS']}")
    return Threads(count, "default", cores, load, tuple(kept))


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity, capped by a cgroup v2 quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores or 1)


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average on this platform
        return 0.0


_chosen: Threads | None = None
_exported: dict[str, str] = {}  # the variables this module set, not the user's
_torch_done = False
_xla = "library default"


def configure(requested: int | None = None) -> Threads:
    """Choose once per process (again when ``requested`` is given) and apply the choice to
    the libraries loaded now; torch, when first seen loaded on a later call. Cheap after
    the first call: the command line calls it at start-up, the Python API on first use."""
    global _chosen, _torch_done
    if _chosen is None or requested is not None:
        environ = {name: value for name, value in os.environ.items()
                   if _exported.get(name) != value}
        _chosen = choose(available_cores(), _load(), environ, requested)
        _export(_chosen)
        _limit_blas(_chosen)
        _torch_done = False
    if not _torch_done and "torch" in sys.modules:
        _torch_done = True
        _limit_torch(_chosen, sys.modules["torch"])
    return _chosen


def _export(chosen: Threads) -> None:
    """Environment variables for the libraries not loaded yet and for child processes."""
    global _xla
    for name, library in EXPORTED_FOR.items():
        if chosen.governs(library):
            _set(name, str(chosen.count))
    if not chosen.governs("xla"):
        _xla = "as the user's XLA_FLAGS set it"
    else:
        flags = [flag for flag in os.environ.get("XLA_FLAGS", "").split()
                 if not flag.startswith("--xla_cpu_multi_thread_eigen")]
        # the flag first: XLA reads a value that does not start with "--" as a file name
        _set("XLA_FLAGS", " ".join([XLA_ONE_THREAD] * (chosen.count == 1) + flags))
        _xla = ("library default (the JAX backend started before the choice)"
                if _jax_started() else "1" if chosen.count == 1 else "library default")


def _set(name: str, value: str) -> None:
    if value:
        os.environ[name] = _exported[name] = value
    else:
        os.environ.pop(name, None)
        _exported.pop(name, None)


def _jax_started() -> bool:
    bridge = sys.modules.get("jax._src.xla_bridge")
    return bool(getattr(bridge, "_backends", None))


def _limit_blas(chosen: Threads) -> None:
    if not chosen.governs("blas"):
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # the variables set above still reach BLAS libraries loaded later
        return
    threadpool_limits(chosen.count, user_api="blas")


def _limit_torch(chosen: Threads, torch: Any) -> None:
    """torch's pools, unless the user set them: by OMP_NUM_THREADS, or by a call to
    ``torch.set_num_threads`` that left a count torch would not pick by itself."""
    untouched = {chosen.count, chosen.cores, os.cpu_count(), _physical_cores()}
    if not chosen.governs("torch") or (chosen.source == "default"
                                       and torch.get_num_threads() not in untouched):
        return
    torch.set_num_threads(chosen.count)
    try:
        torch.set_num_interop_threads(chosen.count)
    except RuntimeError:  # allowed once, before any inter-op work: then leave it
        pass


def _physical_cores() -> int | None:
    """The machine's physical cores (torch's own default on x86), from /proc/cpuinfo."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    package, cores = None, set()
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() == "physical id":
            package = value.strip()
        elif key.strip() == "core id":
            cores.add((package, value.strip()))
    return len(cores) or None


def in_effect() -> dict[str, Any]:
    """The threads each library uses now, and the choice behind them: for provenance."""
    torch = sys.modules.get("torch")
    return {
        "choice": "not made" if _chosen is None else str(_chosen),
        "torch": torch.get_num_threads() if torch else None,
        "torch_interop": torch.get_num_interop_threads() if torch else None,
        "blas": _blas_threads(),
        "xla": _xla,
    }


def _blas_threads() -> int | None:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    counts = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    return max(counts, default=None)
