"""The cycled analysis store, its records, its log and the journal that makes a cycle atomic.

Beside the store ``NAME``:

- ``NAME.cycles/P.json``: the record of done cycle P, written atomically;
- ``NAME.cycles/journal.json``: present only while a cycle (or a redo) changes things;
- ``NAME.log.jsonl``: one JSON line per event, appended in one write each.

**The protocol.** :meth:`CycledStore.begin` writes the journal (atomically, through
:func:`pde.io.output.claim`) with the cycle point and the lengths to keep: the store's
current number of cycles, and of times (cycles × L). Then the store grows:
:meth:`CycledStore.write` creates it whole through the claimed output (a temporary
sibling renamed in), or grows each time and cycle array (resize, then new chunks only:
chunks are one cycle long) and re-consolidates the metadata. The record is written, and
:meth:`CycledStore.commit` removes the journal: that removal is the commit.

**Recovery.** Every change happens while the journal exists and only adds, so the
journal's lengths undo all of them: :meth:`CycledStore.recover` shrinks every time and
cycle array to them (Zarr deletes the chunks beyond; a resize rewrites one metadata file
atomically), removes the store if it held no cycle before, deletes the records from the
journal's point on, re-consolidates and removes the journal. Each step can be repeated, so
a kill during recovery is recovered the same way. A redo is a journal that keeps fewer
cycles than the store holds, recovered at once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import shutil
import signal
from pathlib import Path
from typing import Any

import xarray as xr

from pde.io.errors import StoreError
from pde.io.output import Output, claim
from pde.io.store import open_store, write_zarr

__all__ = ["CycledStore", "crash_point", "now"]

CRASH_VARIABLE = "ASSIMILATE_CYCLE_CRASH_AT"


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def crash_point(phase: str) -> None:
    """The test hook: SIGKILL this process at ``phase`` if ``$ASSIMILATE_CYCLE_CRASH_AT``
    names it (``journal``, ``append``, ``record``)."""
    if os.environ.get(CRASH_VARIABLE) == phase:
        os.kill(os.getpid(), signal.SIGKILL)


def _read_json(path: Path) -> tuple[Any, str | None]:
    """The JSON in ``path`` and None, or None and what is wrong with the file, in words."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        return None, f"cannot be read: {getattr(error, 'strerror', None) or error}"
    if not text.strip():
        return None, "is empty"
    try:
        return json.loads(text), None
    except ValueError as error:
        return None, f"is not valid JSON (torn or edited: {str(error)[:80]})"


def _record_problem(data: Any, point: int) -> str | None:
    """What makes ``data`` no record of cycle ``point``, or None."""
    if not isinstance(data, dict):
        return "does not hold a JSON object"
    if data.get("point") != point:
        return f"has 'point' {data.get('point')!r}, expected {point}"
    inputs = data.get("inputs")
    if not isinstance(inputs, list) or not all(
            isinstance(item, dict) and isinstance(item.get("file"), str)
            and isinstance(item.get("sha256"), str) for item in inputs):
        return "has no list of 'inputs' with a 'file' and a 'sha256' each"
    return None


def _journal_problem(data: Any) -> str | None:
    if not isinstance(data, dict):
        return "does not hold a JSON object"
    for key in ("point", "keep_cycles", "keep_time"):
        if not isinstance(data.get(key), int) or isinstance(data[key], bool) or data[key] < 0:
            return f"has {key!r} {data.get(key)!r}, expected a count"
    if data.get("action") not in ("cycle", "redo"):
        return f"has 'action' {data.get('action')!r}, expected 'cycle' or 'redo'"
    return None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with claim(path, kind="file", overwrite=True) as output, output.atomic() as scratch:
        scratch.write_text(json.dumps(data, indent=1) + "\n")


@dataclasses.dataclass(frozen=True)
class CycledStore:
    """The analysis store at ``path`` of cycles ``start, start + length, ...``."""

    path: Path
    start: int
    length: int
    workflow: Path | str = "WORKFLOW"  # the workflow file, named in repairs

    @property
    def records(self) -> Path:
        return self.path.with_name(f"{self.path.name}.cycles")

    @property
    def journal(self) -> Path:
        return self.records / "journal.json"

    @property
    def log_file(self) -> Path:
        return self.path.with_name(f"{self.path.name}.log.jsonl")

    def record(self, point: int) -> Path:
        return self.records / f"{point}.json"

    def recorded(self) -> list[int]:
        """The points with a record, in order."""
        names = [p.name for p in self.records.glob("*.json")] if self.records.is_dir() else []
        return sorted(int(name[:-5]) for name in names if re.fullmatch(r"\d+\.json", name))

    def read_record(self, point: int) -> dict[str, Any]:
        """The record of done cycle ``point``; a damaged one is refused naming the file and
        the repair (a redo, which discards the record with its cycle)."""
        data, problem = _read_json(self.record(point))
        problem = problem or _record_problem(data, point)
        if problem:
            raise StoreError(f"cycle record '{self.record(point)}' {problem}; run the cycle "
                             f"again: `assimilate cycle {self.workflow} --redo {point}`")
        return data

    def log(self, event: str, **fields: Any) -> None:
        """One JSON line, appended in one write (concurrent calls' lines never mix)."""
        line = json.dumps({"time": now(), "event": event, **fields}) + "\n"
        handle = os.open(self.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            os.write(handle, line.encode())
        finally:
            os.close(handle)

    def points(self, redo: int | None = None) -> tuple[list[int], dict[str, Any]]:
        """The done cycle points and the store's attributes; the store and the records
        must agree (recover first), before the point ``redo`` when one is asked for (the
        redo discards the rest)."""
        points, attrs = [], {}
        if self.path.exists():
            with open_store(self.path) as ds:
                points, attrs = [int(p) for p in ds["cycle"].values], dict(ds.attrs)
        recorded = self.recorded()
        if redo is not None and redo in points + recorded and \
                [p for p in points if p < redo] == [p for p in recorded if p < redo]:
            return sorted(set(points) | set(recorded)), attrs
        if points != recorded:
            first = min(set(points) ^ set(recorded), default=points[0] if points else 0)
            raise StoreError(f"analysis store '{self.path}' holds cycles {_span(points)} but "
                             f"'{self.records}' records {_span(recorded)}; restore the one "
                             f"that lost some, or run `assimilate cycle {self.workflow} "
                             f"--redo {first}`")
        return points, attrs

    def begin(self, point: int, *, action: str = "cycle") -> None:
        """Write the journal: recovery then keeps the cycles before ``point``."""
        self.records.mkdir(exist_ok=True)
        kept = (point - self.start) // self.length
        _write_json(self.journal, {"point": point, "action": action, "keep_cycles": kept,
                                   "keep_time": kept * self.length, "started": now(),
                                   "pid": os.getpid()})

    def write(self, ds: xr.Dataset, output: Output) -> None:
        """Add one cycle's ``ds`` (cycle dim of 1) to the store: create it, or grow it."""
        if not self.path.exists():
            write_zarr(ds.chunk({"time": self.length, "cycle": 1}), output)
        else:
            _append(self.path, ds)

    def write_record(self, point: int, record: dict[str, Any]) -> None:
        _write_json(self.record(point), record)

    def commit(self) -> None:
        self.journal.unlink()

    def recover(self) -> dict[str, Any] | None:
        """Undo (or, for a redo, finish) what the journal began; the journal, or None."""
        if not self.journal.exists():
            return None
        journal, problem = _read_json(self.journal)
        problem = problem or _journal_problem(journal)
        if problem:  # every cycle with a record is whole: it is written after the store
            journal = self._from_records(problem)
        for leftover in self.records.glob(".discarded-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        if journal["keep_cycles"] == 0 and self.path.exists():
            aside = self.records / f".discarded-{os.getpid()}"
            os.replace(self.path, aside)  # gone in one step for a reader
            shutil.rmtree(aside, ignore_errors=True)
        elif journal["keep_cycles"]:
            _truncate(self.path, {"time": journal["keep_time"], "cycle": journal["keep_cycles"]})
        for point in self.recorded():
            if point >= journal["point"]:
                self.record(point).unlink()
        self.journal.unlink()
        return journal

    def _from_records(self, problem: str) -> dict[str, Any]:
        """A journal keeping the recorded cycles, for a journal that cannot be read."""
        recorded = self.recorded()
        expected = [self.start + k * self.length for k in range(len(recorded))]
        if recorded != expected:
            raise StoreError(f"cycle journal '{self.journal}' {problem}, and the records "
                             f"{_span(recorded)} leave gaps; remove the journal and run "
                             f"`assimilate cycle {self.workflow} --redo {self.start}`")
        point = self.start + len(recorded) * self.length
        return {"point": point, "action": "cycle", "keep_cycles": len(recorded),
                "keep_time": len(recorded) * self.length, "started": "unknown",
                "damaged": f"'{self.journal}' {problem}; rolled back to the "
                           f"{len(recorded)} recorded cycle(s)"}

    def redo(self, point: int) -> None:
        """Discard cycle ``point`` and every later one (a journal, recovered at once)."""
        self.begin(point, action="redo")
        self.recover()


def _span(points: list[int]) -> str:
    return "none" if not points else f"{points[0]}..{points[-1]} ({len(points)})"


def _arrays(store: Path):
    """``(name, array, dims, dim)`` of each array of ``store`` along ``time`` or ``cycle``."""
    import zarr

    group = zarr.open_group(store, mode="r+", zarr_format=3, use_consolidated=False)
    for name, array in sorted(group.arrays()):
        dims = tuple(array.metadata.dimension_names or ())
        dim = "time" if "time" in dims else "cycle" if "cycle" in dims else None
        if dim is not None:  # every chunk written: a missing one is damage (`verify`)
            yield name, array.with_config({"write_empty_chunks": True}), dims, dim


def _append(store: Path, ds: xr.Dataset) -> None:
    """Grow every time and cycle array of ``store`` by ``ds``'s values, then consolidate."""
    import zarr

    for index, (name, array, dims, dim) in enumerate(_arrays(store)):
        if name not in ds.variables:
            raise StoreError(f"analysis store '{store}' has a variable '{name}' that a cycle "
                             "does not write; use a new analysis store")
        values = ds[name].transpose(*dims).values.astype(array.dtype)
        axis = dims.index(dim)
        shape = list(array.shape)
        old, shape[axis] = shape[axis], shape[axis] + values.shape[axis]
        array.resize(tuple(shape))
        array[tuple(slice(old, None) if i == axis else slice(None) for i in range(len(dims)))] \
            = values
        if index == 0:
            crash_point("append")
    zarr.consolidate_metadata(store)


def _truncate(store: Path, keep: dict[str, int]) -> None:
    """Shrink every time and cycle array of ``store`` to ``keep[dim]`` entries (Zarr
    deletes the chunks beyond), then consolidate: the undo of :func:`_append`."""
    import zarr

    if not store.exists():
        raise StoreError(f"analysis store '{store}' is missing, but its journal says it held "
                         f"{keep['cycle']} cycle(s)")
    for name, array, dims, dim in _arrays(store):
        axis = dims.index(dim)
        if array.shape[axis] < keep[dim]:
            raise StoreError(f"analysis store '{store}': '{name}' holds {array.shape[axis]} "
                             f"{dim} entries, fewer than the {keep[dim]} its journal keeps")
        if array.shape[axis] > keep[dim]:
            array.resize(tuple(keep[dim] if i == axis else n for i, n in enumerate(array.shape)))
        for folder in sorted((store / name).rglob("*"), reverse=True):  # deeper ones first
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()  # what the deleted chunks leave: as before the append
    zarr.consolidate_metadata(store)
