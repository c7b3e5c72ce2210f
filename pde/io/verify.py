"""``assimilate verify``: read every chunk of a store and report all the damage found.

The checked open (:func:`pde.io.integrity.open_checked`) refuses a store at the first
problem; :func:`verify` goes on and lists them all, as the :class:`Finding` records of one
:class:`Verification`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import numpy as np

from pde.io.chunks import Absence, chunk_slices, field_dims, has_checksums, missing_chunks, where
from pde.io.integrity import AXES, coordinate_problem, damaged_metadata, decode_failure, lost_arrays

__all__ = ["Finding", "Verification", "verify"]


@dataclasses.dataclass(frozen=True)
class Finding:
    """One problem (or, with ``damage=False``, one remark) about one array."""

    variable: str
    where: str
    what: str
    damage: bool = True

    def __str__(self) -> str:
        return f"{'damaged' if self.damage else 'note'}: '{self.variable}' at {self.where}: {self.what}"


@dataclasses.dataclass(frozen=True)
class Verification:
    """What :func:`verify` found in one store."""

    path: Path
    schema: str
    chunks: int
    findings: tuple[Finding, ...]

    @property
    def damaged(self) -> bool:
        return any(finding.damage for finding in self.findings)

    def __str__(self) -> str:
        lines = [str(finding) for finding in self.findings]
        problems = sum(finding.damage for finding in self.findings)
        verdict = (f"{problems} problem(s) found" if problems else "no damage found")
        lines.append(f"{self.path}: {self.schema or 'Zarr store'}, {self.chunks} chunks read; "
                     f"{verdict}")
        return "\n".join(lines)


def verify(store: str | Path, *, progress: bool = False) -> Verification:
    """Read every chunk of every array of the Zarr store ``store`` and report damage.

    Damage: a metadata file that cannot be parsed; a chunk that is missing (see
    :class:`pde.io.chunks.Absence`), fails its checksum or cannot be decoded; non-finite values in a
    trajectory store's field. Non-finite values elsewhere (results may hold NaN by design)
    are counted as notes.
    """
    import zarr

    from pde.io.progress import tqdm

    path = Path(store)
    torn = damaged_metadata(path)
    findings = [Finding(file.parent.name if file.parent != path else "*",
                        f"its metadata file '{file.name}'", reason)
                for file, reason in torn.items()]
    if any(file.parent == path for file in torn):  # nothing more can be read
        return Verification(path, "", 0, tuple(findings))
    group = zarr.open_group(path, mode="r")
    schema = str(group.attrs.get("schema", ""))
    lost = lost_arrays(path, [name for name, _ in group.arrays()])
    findings += [Finding(name, "its metadata file 'zarr.json'", "is missing") for name in lost]
    arrays = sorted(((str(name), array) for name, array in group.arrays()
                     if path / str(name) / "zarr.json" not in torn and name not in lost),
                    key=lambda a: a[0])
    absence = Absence.of(group)
    field = str(group.attrs.get("variable", "")) or absence.field
    total = sum(int(np.prod(a.cdata_shape)) for _, a in arrays)
    with tqdm(total=total, unit="chunk", desc=path.name, disable=not progress) as bar:
        for name, array in arrays:
            findings += _verify_array(path, name, array, absence, trajectory_field=name == field,
                                      bar=bar)
    damaged = {finding.variable for finding in findings if finding.damage}
    findings += [f for f in _verify_axes(arrays) if f.variable not in damaged]
    if not any(has_checksums(a) for _, a in arrays):
        findings.append(Finding("*", "every array", "written without checksums (an older "
                                "version): only damage that breaks decoding shows", False))
    return Verification(path, schema, total, tuple(findings))


def _verify_axes(arrays) -> list[Finding]:
    findings = []
    for name, array in arrays:
        if name in AXES and field_dims(array) == (name,):
            with contextlib.suppress(Exception):  # a damaged chunk is reported already
                problem = coordinate_problem(name, np.asarray(array[...]))
                if problem:
                    findings.append(Finding(name, "the whole array", problem))
    return findings


def _verify_array(path: Path, name: str, array, absence: Absence, *,
                  trajectory_field: bool, bar) -> list[Finding]:
    dims = field_dims(array)
    absent = {tuple((s.start, s.stop) for s in key) for key in missing_chunks(path, name)}
    complete = absence.complete if trajectory_field else None
    findings, non_finite = [], 0
    for key in chunk_slices(array.shape, array.chunks):
        bar.update(1)
        place = where(dims, key, array.shape)
        finished = complete is None or bool(complete[key[0]].all())
        if tuple((s.start, s.stop) for s in key) in absent:
            if absence.damage(name, array, key):
                findings.append(Finding(name, place, "chunk missing"))
            continue
        try:
            values = np.asarray(array[key])
        except Exception as error:  # noqa: BLE001 - report and go on to the next chunk
            findings.append(Finding(name, place, decode_failure(error)))
            continue
        if np.issubdtype(values.dtype, np.floating):
            bad = int((~np.isfinite(values)).sum())
            if bad and trajectory_field and finished:
                findings.append(Finding(name, place, f"{bad} non-finite values"))
            non_finite += bad
    if non_finite and not trajectory_field:
        findings.append(Finding(name, "all chunks", f"{non_finite} NaN/inf values "
                                "(allowed in results)", False))
    return findings
