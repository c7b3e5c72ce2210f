"""The guarded write path: checks first, one writer at a time, atomic, nothing left behind."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pde.io.errors import OutputError
from pde.io.output import claim


def leftovers(directory: Path) -> list[str]:
    """Temporaries, lock files and moved-aside outputs of the guarded write path."""
    return sorted(p.name for p in directory.iterdir()
                  if any(tag in p.name for tag in (".partial-", ".lock", ".replaced-")))


def test_a_file_is_written_atomically_readable_and_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "result.txt"
    with claim(out, kind="file") as output:
        assert (tmp_path / ".result.txt.lock").exists()  # held while the command runs
        with output.atomic() as scratch:
            scratch.write_text("new")
            assert not out.exists(), "nothing reaches the output before the write completes"
    assert out.read_text() == "new"
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~_umask()
    assert leftovers(tmp_path) == []


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_failed_write_keeps_the_old_output_and_names_the_real_path(tmp_path: Path) -> None:
    out = tmp_path / "store.zarr"
    out.mkdir()
    (out / "old").write_text("kept")
    with pytest.raises(RuntimeError, match="boom"), \
            claim(out, kind="directory", overwrite=True) as output, output.atomic() as scratch:
        scratch.mkdir()
        (scratch / "half").write_text("written")
        raise RuntimeError("boom")
    assert (out / "old").read_text() == "kept" and not (out / "half").exists()
    assert leftovers(tmp_path) == []

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with claim(out, kind="directory", overwrite=True) as output, \
            pytest.raises(OutputError, match=r"cannot write '.*store.zarr': No space left"), \
            output.atomic() as scratch:
        scratch.mkdir()
        os_replace, os.replace = os.replace, full
        try:
            output._commit(scratch)
        finally:
            os.replace = os_replace
    assert (out / "old").read_text() == "kept" and leftovers(tmp_path) == []


def test_a_directory_is_replaced_whole(tmp_path: Path) -> None:
    out = tmp_path / "store.zarr"
    out.mkdir()
    (out / "old").write_text("old")
    with claim(out, kind="directory", overwrite=True) as output, output.atomic() as scratch:
        scratch.mkdir()
        (scratch / "new").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new"] and leftovers(tmp_path) == []


@pytest.mark.parametrize(("kind", "make", "message"), [
    ("file", lambda p: p.mkdir(), "is a directory, expected a file"),
    ("directory", lambda p: p.write_text("x"), "is a file, expected a directory"),
    ("file", lambda p: p.write_text("x"), "exists; pass --overwrite"),
])
def test_wrong_kinds_and_existing_outputs_are_refused(tmp_path, kind, make, message) -> None:
    out = tmp_path / "out"
    make(out)
    with pytest.raises(OutputError, match=message), claim(out, kind=kind):
        pytest.fail("the block must not run")
    assert leftovers(tmp_path) == []


def test_missing_or_unwritable_directories_are_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="directory '.*absent' does not exist"), \
            claim(tmp_path / "absent" / "out.zarr", kind="directory"):
        pytest.fail("the block must not run")
    unwritable = Path("/sys") if os.geteuid() == 0 else tmp_path / "locked"
    if os.geteuid() != 0:
        unwritable.mkdir()
        unwritable.chmod(0o555)
    with pytest.raises(OutputError, match="is not writable"), \
            claim(unwritable / "out.zarr", kind="directory"):
        pytest.fail("the block must not run")


@pytest.mark.parametrize(("output", "relation"), [
    ("data.zarr", "is an input"),
    ("data.zarr/inner.zarr", "lies inside 'data.zarr'"),
    (".", "contains"),
])
def test_an_input_is_never_an_output(tmp_path, monkeypatch, output, relation) -> None:
    monkeypatch.chdir(tmp_path)
    Path("data.zarr").mkdir()
    (Path("data.zarr") / "chunk").write_text("precious")
    with pytest.raises(OutputError, match=relation), \
            claim(output, kind="directory", inputs=["data.zarr"], overwrite=True):
        pytest.fail("the block must not run")
    assert (Path("data.zarr") / "chunk").read_text() == "precious"


def test_a_second_writer_is_refused_at_once_naming_the_first(tmp_path: Path) -> None:
    out = tmp_path / "shared.zarr"
    holder = subprocess.Popen(
        [sys.executable, "-c", ("import sys, time\nfrom pde.io.output import claim\n"
                                f"with claim({str(out)!r}, kind='directory'):\n"
                                "    print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.perf_counter()
        with pytest.raises(OutputError, match=rf"being written by process {holder.pid} on "), \
                claim(out, kind="directory"):
            pytest.fail("the block must not run")
        assert time.perf_counter() - started < 5
    finally:
        holder.kill()
        holder.wait()
    # the kernel dropped the dead holder's lock: no stale lock blocks the next writer
    with claim(out, kind="directory") as output, output.atomic() as scratch:
        scratch.mkdir()
    assert out.is_dir() and leftovers(tmp_path) == []


def test_temporaries_of_killed_runs_are_cleaned_and_a_moved_aside_output_restored(
        tmp_path: Path) -> None:
    out = tmp_path / "store.zarr"
    (tmp_path / ".store.zarr.partial-abc123").mkdir()
    (tmp_path / ".store.zarr.partial-abc123" / "half").write_text("torn")
    aside = tmp_path / ".store.zarr.replaced-def456"
    (aside / "store.zarr").mkdir(parents=True)
    (aside / "store.zarr" / "data").write_text("the old output")
    with claim(out, kind="directory", resumable=True):
        pass
    assert (out / "data").read_text() == "the old output"
    assert leftovers(tmp_path) == []
