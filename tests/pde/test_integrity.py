"""Damaged stores are detected and named: checksums, missing chunks, non-finite values."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from assimilate.cli import main
from assimilate.config import load_config
from pde import open_trajectories, simulate
from pde.io.chunks import has_checksums, missing_chunks
from pde.io.errors import IntegrityError
from pde.io.store import write_trajectories, write_zarr
from pde.io.verify import verify


@pytest.fixture(scope="module")
def healthy(tmp_path_factory, request) -> Path:
    from tests.conftest import TINY_KS, write_config

    root = tmp_path_factory.mktemp("integrity")
    store = root / "ks.zarr"
    simulate(load_config(write_config(root, TINY_KS)), store, progress=False)
    return store


@pytest.fixture
def store(healthy: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "ks.zarr"
    shutil.copytree(healthy, copy)
    return copy


def chunk(store: Path, trajectory: int) -> Path:
    return store / "u" / "c" / str(trajectory) / "0" / "0"


def test_every_array_is_checksummed_and_every_chunk_written(healthy: Path) -> None:
    group = zarr.open_group(healthy, mode="r")
    assert all(has_checksums(array) for _, array in group.arrays())
    assert missing_chunks(healthy, "u") == [] and missing_chunks(healthy, "complete") == []
    report = verify(healthy)
    assert not report.damaged and report.findings == () and report.chunks > 6


def test_a_flipped_bit_fails_its_checksum_and_names_the_place(store: Path) -> None:
    data = bytearray(chunk(store, 1).read_bytes())
    data[len(data) // 2] ^= 0x01
    chunk(store, 1).write_bytes(bytes(data))
    field = open_trajectories(store)["u"]
    assert np.isfinite(field.isel(trajectory=0).values).all()  # other chunks still read
    with pytest.raises(IntegrityError, match=r"ks.zarr': variable 'u' at trajectory 1, time "
                                             r"0\.\.11 is damaged \(checksum mismatch\)"):
        field.isel(trajectory=1).load()
    report = verify(store)
    assert report.damaged and [str(f) for f in report.findings] == [
        "damaged: 'u' at trajectory 1, time 0..11: checksum mismatch"]


def test_a_truncated_chunk_is_damage_not_a_codec_traceback(store: Path) -> None:
    chunk(store, 4).write_bytes(chunk(store, 4).read_bytes()[:7])
    with pytest.raises(IntegrityError, match="trajectory 4, time 0..11 is damaged"):
        open_trajectories(store)["u"].load()
    assert verify(store).damaged


def test_a_deleted_chunk_of_a_finished_trajectory_is_refused_at_open(store: Path) -> None:
    chunk(store, 2).unlink()
    with pytest.raises(IntegrityError, match=r"lacks 1 chunk\(s\) of finished trajectories, the "
                                             r"first at trajectory 2, time 0\.\.11"):
        open_trajectories(store)
    assert "chunk missing" in str(verify(store))
    # an unfinished trajectory has no chunks yet: that is not damage
    done = xr.Dataset({"complete": ("trajectory", np.zeros(1, dtype=bool))})
    done.to_zarr(store, region={"trajectory": slice(2, 3)}, mode="r+", zarr_format=3)
    assert open_trajectories(store, finished_only=True).sizes["trajectory"] == 5
    assert not verify(store).damaged


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_are_refused_where_they_are_read(store: Path, bad: float) -> None:
    fields = open_trajectories(store)["u"].isel(trajectory=[3]).values.copy()
    fields[0, 7, 5] = bad
    write_trajectories(store, "u", 3, fields)
    ds = open_trajectories(store)
    assert np.isfinite(ds["u"].isel(trajectory=2).values).all()  # untouched ones read
    with pytest.raises(IntegrityError, match=r"holds 1 non-finite values at trajectory 3, "
                                             r"time 0\.\.11"):
        ds["u"].isel(trajectory=3).load()
    assert np.isnan(open_trajectories(store, finite=False)["u"].values).sum() == np.isnan(bad)
    assert [str(f) for f in verify(store).findings] == [
        "damaged: 'u' at trajectory 3, time 0..11: 1 non-finite values"]


def test_checked_reads_survive_pickling_for_dask_workers(store: Path) -> None:
    field = open_trajectories(store)["u"].data
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(field)).compute(),
                                  field.compute())


def test_results_may_hold_nan_and_old_stores_are_read_with_a_note(tmp_path: Path) -> None:
    results = xr.Dataset({"return_level": ("period", [1.0, np.nan, 3.0])})
    write_zarr(results, tmp_path / "results.zarr")
    report = verify(tmp_path / "results.zarr")
    assert not report.damaged and "1 NaN/inf values (allowed in results)" in str(report)
    results.to_zarr(tmp_path / "old.zarr", zarr_format=3)  # no checksums
    assert "written without checksums" in str(verify(tmp_path / "old.zarr"))


def test_verify_cli_exit_codes(store: Path, capsys) -> None:
    assert main(["verify", str(store)]) == 0
    assert "no damage found" in capsys.readouterr().out
    chunk(store, 5).unlink()
    assert main(["verify", str(store), "--quiet"]) == 1
    assert "damaged: 'u' at trajectory 5, time 0..11: chunk missing" in capsys.readouterr().out
    assert main(["verify", str(store.parent / "absent.zarr")]) == 2
    assert "is not a Zarr store" in capsys.readouterr().err


@pytest.fixture(scope="module")
def kinds(tmp_path_factory) -> dict[str, Path]:
    """Healthy stores of two kinds that once gave false alarms: a one-trajectory store (its
    trajectory index [0] equals the fill value) and a diagnostics store (0-d arrays)."""
    from assimilate.diagnostics import diagnose
    from assimilate.diagnostics.diagnose import open_data
    from tests.conftest import TINY_KS, write_config

    root = tmp_path_factory.mktemp("kinds")
    one = TINY_KS | {"dataset": TINY_KS["dataset"] | {"trajectories": 1}}
    simulate(load_config(write_config(root, one)), root / "one.zarr", progress=False)
    with pytest.warns(UserWarning):  # too few extremes in 12 states for the tail fits
        result = diagnose(open_data(root / "one.zarr"))
    write_zarr(result, root / "diag.zarr")
    return {"one-trajectory": root / "one.zarr", "diagnostics": root / "diag.zarr"}


# (kind, a chunk file, its place in verify's words)
CHUNKS = [("one-trajectory", "u/c/0/0/0", "'u' at trajectory 0, time 0..11"),
          ("one-trajectory", "x/c/0", "'x' at the whole array"),
          ("diagnostics", "mean/c", "'mean' at the whole array"),
          ("diagnostics", "quantile/c/0", "'quantile' at the whole array")]


@pytest.mark.parametrize("kind", ["one-trajectory", "diagnostics"])
def test_verify_passes_healthy_stores_of_every_kind(kinds, kind, capsys) -> None:
    assert main(["verify", str(kinds[kind]), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "damaged" not in out and "no damage found" in out


@pytest.mark.parametrize(("kind", "chunk", "place"), CHUNKS, ids=[c[1] for c in CHUNKS])
@pytest.mark.parametrize("damage", ["deleted", "truncated", "flipped"])
def test_verify_still_catches_damage_there(kinds, kind, chunk, place, damage, tmp_path,
                                           capsys) -> None:
    store = tmp_path / kinds[kind].name
    shutil.copytree(kinds[kind], store)
    data = (store / chunk).read_bytes()
    if damage == "deleted":
        (store / chunk).unlink()
    elif damage == "truncated":
        (store / chunk).write_bytes(data[:5])
    else:
        (store / chunk).write_bytes(data[:-5] + bytes([data[-5] ^ 0x01]) + data[-4:])
    assert main(["verify", str(store), "--quiet"]) == 1
    what = {"deleted": "chunk missing", "flipped": "checksum mismatch"}.get(damage, "")
    assert f"damaged: {place}: {what}" in capsys.readouterr().out


def test_a_one_trajectory_store_of_an_older_version_still_passes(kinds, tmp_path) -> None:
    """Versions that left out chunks equal to the fill value wrote no trajectory index [0]:
    nothing is lost (it reads back as 0), so it is no damage."""
    store = tmp_path / "one.zarr"
    shutil.copytree(kinds["one-trajectory"], store)
    (store / "trajectory" / "c" / "0").unlink()
    assert not verify(store).damaged
    assert open_trajectories(store)["trajectory"].values.tolist() == [0]


def test_verify_names_torn_metadata_and_readers_refuse_it(store: Path, capsys) -> None:
    (store / "u" / "zarr.json").write_text((store / "u" / "zarr.json").read_text()[:90])
    assert main(["verify", str(store), "--quiet"]) == 1
    assert "damaged: 'u' at its metadata file 'zarr.json': is not valid JSON (torn or " \
           "truncated: " in capsys.readouterr().out
    with pytest.raises(IntegrityError, match=r"trajectory store '.*ks.zarr' is damaged: its "
                                             r"metadata file '.*ks.zarr/u/zarr.json' is not "
                                             r"valid JSON"):
        open_trajectories(store)
    (store / "zarr.json").write_text("")
    assert main(["verify", str(store), "--quiet"]) == 1
    assert "damaged: '*' at its metadata file 'zarr.json': is empty" in capsys.readouterr().out


def test_verify_and_readers_refuse_a_broken_axis(store: Path, capsys) -> None:
    time = zarr.open_array(store / "time", mode="r+").with_config({"write_empty_chunks": True})
    values = time[:]
    values[3] = np.nan
    time[:] = values
    assert main(["verify", str(store), "--quiet"]) == 1
    assert ("damaged: 'time' at the whole array: holds 1 non-finite value(s), the first at "
            "index 3") in capsys.readouterr().out
    with pytest.raises(IntegrityError, match="coordinate 'time' holds 1 non-finite"):
        open_trajectories(store)
