"""Every verb, tried as a hostile or careless user would.

One row per case: the command line, what to break first, the exit code, and a pattern
the single ``error:`` line must match (it names the file, key or value at fault). For
every row the runner also checks that no traceback appears, no temporary name, URL or
raw validator text leaks into the message, nothing that existed changed (nothing lost)
and nothing new was left behind (no output, temporary or lock file) unless the row says
the command succeeds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml

from assimilate.cli import main
from pde.io.output import claim
from tests.conftest import TINY_EMULATOR, TINY_FORECASTER, TINY_KS, write_config

pytestmark = pytest.mark.e2e  # subprocesses or a whole project built by the CLI

CONFIG = TINY_KS | {"dataset": TINY_KS["dataset"] | {"steps": 40},
                    "forecaster": TINY_FORECASTER, "emulator": TINY_EMULATOR}
READ_ONLY = "/sys" if os.geteuid() == 0 else "/proc"  # not writable, even for root


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A small project: a KS store, one of other physics, one of another seed, a trained
    forecaster and emulator, a diagnostics store, observations and an analysis (`run`)."""
    root = tmp_path_factory.mktemp("world")
    write_config(root, CONFIG, "ks.yaml")
    other = CONFIG | {"simulator": CONFIG["simulator"] | {"length": 30.0}}
    write_config(root, other, "l30.yaml")
    steps = [["simulate", "ks.yaml", "--out", "ks.zarr"],
             ["simulate", "ks.yaml", "--out", "seed9.zarr", "--seed", "9"],
             ["simulate", "l30.yaml", "--out", "l30.zarr", "--trajectories", "2"],
             ["train", "forecaster", "ks.yaml", "--data", "ks.zarr", "--out", "fc.pt"],
             ["train", "emulator", "ks.yaml", "--data", "ks.zarr", "--out", "em.pt",
              "--steps", "4"],
             ["diagnose", "ks.zarr", "--out", "diag.zarr"],
             ["observe", "ks.zarr", "--regime", "dense", "--out", "obs.zarr",
              "--trajectories", "1"],
             ["run", "ks.yaml", "--method", "nudging", "--set", "model=simulator", "--obs",
              "obs.zarr", "--out", "an.zarr", "--members", "2", "--steps", "3"]]
    with contextlib.chdir(root):
        for argv in steps:
            assert main([*argv, "--quiet"] if argv[0] != "diagnose" else argv) == 0, argv
    return root


# --- ways to break things ------------------------------------------------------------------


def _chunk(store: str, trajectory: int) -> Callable[[Path], Path]:
    return lambda d: d / store / "u" / "c" / str(trajectory) / "0" / "0"


def delete_chunk(store: str, trajectory: int) -> Callable[[Path], None]:
    return lambda d: _chunk(store, trajectory)(d).unlink()


def flip_bit(store: str, trajectory: int) -> Callable[[Path], None]:
    def apply(d: Path) -> None:
        path = _chunk(store, trajectory)(d)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x10
        path.write_bytes(bytes(data))
    return apply


def truncate(store: str, trajectory: int) -> Callable[[Path], None]:
    def apply(d: Path) -> None:
        path = _chunk(store, trajectory)(d)
        path.write_bytes(path.read_bytes()[:9])
    return apply


def delete(path: str) -> Callable[[Path], None]:
    return lambda d: (d / path).unlink()


def flip(path: str) -> Callable[[Path], None]:
    def apply(d: Path) -> None:
        data = bytearray((d / path).read_bytes())
        data[len(data) // 2] ^= 0x10
        (d / path).write_bytes(bytes(data))
    return apply


def cut(path: str, keep: int) -> Callable[[Path], None]:
    return lambda d: (d / path).write_bytes((d / path).read_bytes()[:keep])


def set_axis(store: str, name: str, change: Callable[[np.ndarray], None]) -> Callable[[Path], None]:
    """Rewrite a coordinate's values in place, with valid checksums (damage from a writer)."""
    def apply(d: Path) -> None:
        import zarr

        array = zarr.open_array(d / store / name, mode="r+").with_config(
            {"write_empty_chunks": True})
        values = array[:]
        change(values)
        array[:] = values
    return apply


def poison(store: str, trajectory: int, value: float) -> Callable[[Path], None]:
    def apply(d: Path) -> None:
        from pde import open_trajectories
        from pde.io.store import write_trajectories

        fields = open_trajectories(d / store)["u"].isel(trajectory=[trajectory]).values.copy()
        fields[0, 3, 4] = value
        write_trajectories(d / store, "u", trajectory, fields)
    return apply


def config_with(name: str, section: str, key: str, value) -> Callable[[Path], None]:
    def apply(d: Path) -> None:
        data = yaml.safe_load((d / "ks.yaml").read_text())
        data[section][key] = value
        (d / name).write_text(yaml.safe_dump(data))
    return apply


def write(name: str, content: str | bytes) -> Callable[[Path], None]:
    def apply(d: Path) -> None:
        target = d / name
        target.write_bytes(content) if isinstance(content, bytes) else target.write_text(content)
    return apply


def make_dir(name: str) -> Callable[[Path], None]:
    return lambda d: (d / name).mkdir(parents=True)


def tear_metrics_log(d: Path) -> None:
    log = d / "fc.pt.metrics.jsonl"
    log.write_text(log.read_text() + '{"step": 61, "loss": 0.')  # killed mid-line


def alias_bomb(d: Path) -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    (d / "bomb.yaml").write_text("\n".join([*lines, "simulator: *a8"]) + "\n")


def low_disk(free: int) -> Callable[[pytest.MonkeyPatch], None]:
    """``free`` bytes left on every disk."""
    def apply(monkeypatch: pytest.MonkeyPatch) -> None:
        usage = shutil.disk_usage(".")
        monkeypatch.setattr(shutil, "disk_usage",
                            lambda path: usage._replace(free=free, used=usage.total - free))
    return apply


def fills_while_writing(target: str, name: str, words: str) -> Callable[[pytest.MonkeyPatch],
                                                                        None]:
    """The disk fills once a temporary output exists, and the library writing it (``target.
    name``) fails in its own ``words``: a real full disk, as torch or netCDF report it."""
    def apply(monkeypatch: pytest.MonkeyPatch) -> None:
        import importlib

        usage = shutil.disk_usage(".")

        def measured(path):
            writing = any(".partial-" in p.name for p in Path(path).iterdir())
            return usage._replace(free=0) if writing else usage

        def fail(self_or_data, target_path=None, *args, **kwargs):
            Path(target_path).write_bytes(b"partial")
            raise RuntimeError(words)

        monkeypatch.setattr(shutil, "disk_usage", measured)
        owner = importlib.import_module(target)
        *parents, last = name.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        monkeypatch.setattr(owner, last, fail)
    return apply


def disk_full(monkeypatch: pytest.MonkeyPatch, target: str, name: str) -> None:
    import importlib

    module = importlib.import_module(target)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(module, name, full)


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    argv: str
    message: str = ""
    setup: Callable[[Path], None] | None = None
    rc: int = 2
    hold: str | None = None  # an output another writer holds while the command runs
    patch: tuple[str, str] | None = None  # (module, name) that fails with a full disk
    fault: Callable[[pytest.MonkeyPatch], None] | None = None  # injected while it runs


FORECAST = "forecast fc.pt --init ks.zarr --steps 3 --out f.zarr"
EVALUATE = "evaluate forecast fc.pt --data ks.zarr --out e.zarr --steps 5 --initial 2"
TRAIN = "train forecaster ks.yaml --data ks.zarr --out new.pt --steps 2"
RESUME = "train forecaster ks.yaml --data seed9.zarr --out fc.pt --steps 62"
DAMAGED = r"ks.zarr': variable 'u' at trajectory {t}, time 0\.\.39 is damaged"
MISSING = r"ks.zarr' is damaged: variable 'u' lacks 1 chunk\(s\).* trajectory {t}, time 0\.\.39"
NON_FINITE = r"ks.zarr': variable 'u' holds 1 non-finite values at trajectory {t}"

CASES = [
    # damaged stores: every reader refuses them, naming store, variable, trajectory, time
    Case("forecast-missing-chunk", FORECAST + " --trajectory 2", MISSING.format(t=2),
         delete_chunk("ks.zarr", 2)),
    Case("export-missing-chunk", "export ks.zarr --to out.nc", MISSING.format(t=0),
         delete_chunk("ks.zarr", 0)),
    Case("evaluate-missing-chunk", EVALUATE, MISSING.format(t=1), delete_chunk("ks.zarr", 1)),
    Case("train-missing-chunk", TRAIN, MISSING.format(t=3), delete_chunk("ks.zarr", 3)),
    Case("diagnose-missing-chunk", "diagnose ks.zarr --out d.zarr", MISSING.format(t=4),
         delete_chunk("ks.zarr", 4)),
    Case("forecast-flipped-bit", FORECAST + " --trajectory 1",
         DAMAGED.format(t=1) + r" \(checksum mismatch\)", flip_bit("ks.zarr", 1)),
    Case("export-flipped-bit", "export ks.zarr --to out.nc", DAMAGED.format(t=5),
         flip_bit("ks.zarr", 5)),
    Case("evaluate-truncated-chunk", EVALUATE, DAMAGED.format(t=0), truncate("ks.zarr", 0)),
    Case("train-truncated-chunk", TRAIN, DAMAGED.format(t=2), truncate("ks.zarr", 2)),
    Case("diagnose-truncated-chunk", "diagnose ks.zarr --out d.zarr", DAMAGED.format(t=3),
         truncate("ks.zarr", 3)),
    Case("forecast-nan", FORECAST, NON_FINITE.format(t=0), poison("ks.zarr", 0, np.nan)),
    Case("evaluate-nan-is-not-instability", EVALUATE, NON_FINITE.format(t=1),
         poison("ks.zarr", 1, np.nan)),
    Case("train-nan-is-not-a-learning-rate", TRAIN, NON_FINITE.format(t=0),
         poison("ks.zarr", 0, np.nan)),
    Case("diagnose-inf", "diagnose ks.zarr --out d.zarr", NON_FINITE.format(t=2),
         poison("ks.zarr", 2, np.inf)),
    Case("export-inf", "export ks.zarr --to out.nc", NON_FINITE.format(t=4),
         poison("ks.zarr", 4, -np.inf)),
    # every store the project writes is checked on read, as `verify` checks it
    Case("diagnose-analysis-missing-chunk", "diagnose an.zarr --out d.zarr",
         r"^error: store 'an.zarr' is damaged: variable 'u' lacks 1 chunk\(s\), the first at "
         r"trajectory 0, time 0\.\.3; run `assimilate verify an.zarr`$",
         delete("an.zarr/u/c/0/0/0/0")),
    Case("diagnose-analysis-flipped-bit", "diagnose an.zarr --var u_background --out d.zarr",
         r"store 'an.zarr': variable 'u_background' at trajectory 0, time 0\.\.3 is damaged "
         r"\(checksum mismatch\)", flip("an.zarr/u_background/c/0/0/0/0")),
    Case("run-observations-missing-chunk", "run ks.yaml --method nudging --set "
         "model=simulator --obs obs.zarr --out a2.zarr --members 2 --steps 3",
         r"store 'obs.zarr' is damaged: variable 'value' lacks 1 chunk\(s\)",
         delete("obs.zarr/value/c/0/0")),
    Case("report-diagnostics-missing-chunk", "report diag.zarr --out r.html",
         r"^error: store 'diag.zarr' is damaged: variable 'mean' lacks 1 chunk\(s\), the "
         r"first at the whole array; run `assimilate verify diag.zarr`$",
         delete("diag.zarr/mean/c")),
    Case("report-diagnostics-truncated-chunk", "report diag.zarr --out r.html",
         r"store 'diag.zarr': variable 'quantile' at the whole array is damaged",
         cut("diag.zarr/quantile/c/0", 5)),
    # broken axes are damage: refused, not written on
    Case("observe-nan-time", "observe ks.zarr --regime dense --out o.zarr",
         r"^error: trajectory store 'ks.zarr' is damaged: coordinate 'time' holds 40 "
         r"non-finite value\(s\), the first at index 0; an axis must be finite and strictly "
         r"monotonic$", set_axis("ks.zarr", "time", lambda v: v.fill(np.nan))),
    Case("observe-nan-x", "observe ks.zarr --regime dense --out o.zarr",
         r"coordinate 'x' holds 1 non-finite value\(s\), the first at index 7",
         set_axis("ks.zarr", "x", lambda v: v.__setitem__(7, np.nan))),
    Case("export-nan-time", "export ks.zarr --to out.nc", r"coordinate 'time' holds 40 "
         "non-finite", set_axis("ks.zarr", "time", lambda v: v.fill(np.nan))),
    Case("export-time-not-monotonic", "export ks.zarr --to out.nc",
         r"coordinate 'time' is not strictly monotonic: 0\.8 at index 4, then 0\.8",
         set_axis("ks.zarr", "time", lambda v: v.__setitem__(5, v[4]))),
    # torn metadata: the file is named, the store called damaged
    Case("diagnose-torn-array-metadata", "diagnose ks.zarr --out d.zarr",
         r"^error: store 'ks.zarr' is damaged: its metadata file 'ks.zarr/u/zarr.json' is not "
         r"valid JSON \(torn or truncated: .*\); the store must be written again$",
         cut("ks.zarr/u/zarr.json", 100)),
    Case("export-empty-store-metadata", "export ks.zarr --to out.nc",
         r"trajectory store 'ks.zarr' is damaged: its metadata file 'ks.zarr/zarr.json' is "
         "empty", cut("ks.zarr/zarr.json", 0)),
    Case("train-torn-store-metadata", TRAIN, r"'ks.zarr' is damaged: its metadata file "
         r"'ks.zarr/zarr.json' is not valid JSON", cut("ks.zarr/zarr.json", 300)),
    Case("report-torn-metadata", "report diag.zarr --out r.html",
         r"'diag.zarr/mean/zarr.json' is not valid JSON", cut("diag.zarr/mean/zarr.json", 50)),
    Case("run-torn-observations-metadata", "run ks.yaml --method nudging --set "
         "model=simulator --obs obs.zarr --out a2.zarr --members 2 --steps 3",
         r"'obs.zarr/value/zarr.json' is not valid JSON", cut("obs.zarr/value/zarr.json", 60)),
    # a second writer exits at once, naming the first
    *[Case(f"{verb.split()[0]}-while-another-writes", verb, r"'" + out + r"' is being "
           r"written by process {pid} on .* since .*; wait for it", hold=out)
      for verb, out in [(FORECAST, "f.zarr"), ("diagnose ks.zarr --out d.zarr", "d.zarr"),
                        (RESUME.replace("seed9", "ks"), "fc.pt"),
                        ("simulate ks.yaml --out ks.zarr", "ks.zarr"),
                        ("sample emulator em.pt --n 4 --out s.zarr", "s.zarr"),
                        (EVALUATE, "e.zarr"), ("report diag.zarr --out r.html", "r.html"),
                        ("export ks.zarr --to out.nc", "out.nc")]],
    # an output never destroys an input of the same command
    Case("forecast-over-its-init", "forecast fc.pt --init ks.zarr --steps 3 --out ks.zarr "
         "--overwrite", r"--out 'ks.zarr' is an input of this command"),
    Case("diagnose-over-its-store", "diagnose ks.zarr --out ks.zarr --overwrite",
         "--out 'ks.zarr' is an input"),
    Case("diagnose-over-a-compared-store", "diagnose ks.zarr --compare seed9.zarr "
         "--out seed9.zarr --overwrite", "--out 'seed9.zarr' is an input"),
    Case("evaluate-over-its-data", EVALUATE.replace("e.zarr", "ks.zarr") + " --overwrite",
         "--out 'ks.zarr' is an input"),
    Case("export-into-its-store", "export ks.zarr --to ks.zarr/u.nc",
         "--to 'ks.zarr/u.nc' lies inside 'ks.zarr'"),
    Case("report-over-its-diagnostics", "report diag.zarr --out diag.zarr",
         "'diag.zarr': it is a directory"),
    # physics provenance: a model knows only the physics it was trained on
    Case("forecast-other-physics", FORECAST.replace("ks.zarr", "l30.zarr"),
         r"l30.zarr' holds other physics than the forecaster '.*fc.pt' was trained on: "
         r"simulator.length: 30.0 here, 22.0 expected"),
    Case("evaluate-other-physics", EVALUATE.replace("ks.zarr", "l30.zarr"),
         r"l30.zarr' holds other physics.*simulator.length: 30.0 here, 22.0 expected"),
    Case("train-config-on-other-physics", TRAIN.replace("ks.zarr", "l30.zarr"),
         r"l30.zarr' holds other physics than the configuration's simulator section: "
         r"simulator.length: 30.0 here, 22.0 expected"),
    Case("resume-on-another-store", RESUME,
         r"fc.pt' was trained on the store '.*ks.zarr', and --data '.*seed9.zarr' is another "
         r"store; pass --allow-other-data"),
    Case("resume-on-another-store-when-asked", RESUME + " --allow-other-data", rc=0),
    # write failures are found before the work, and name the real output
    Case("forecast-into-a-missing-directory", FORECAST.replace("f.zarr", "nowhere/f.zarr"),
         r"cannot write 'nowhere/f.zarr': directory 'nowhere' does not exist"),
    Case("train-into-a-missing-directory", TRAIN.replace("new.pt", "nowhere/new.pt"),
         r"directory 'nowhere' does not exist"),
    Case("diagnose-into-a-read-only-directory",
         f"diagnose ks.zarr --out {READ_ONLY}/assimilate-d.zarr",
         rf"cannot write '{READ_ONLY}/assimilate-d.zarr': directory '{READ_ONLY}' is not "
         "writable"),
    Case("train-into-a-read-only-directory", TRAIN.replace("new.pt", f"{READ_ONLY}/a.pt"),
         rf"'{READ_ONLY}/a.pt': directory '{READ_ONLY}' is not writable"),
    Case("export-to-a-directory", "export ks.zarr --to out.nc", r"'out.nc': it is a "
         "directory, expected a file", make_dir("out.nc")),
    Case("report-to-a-directory", "report diag.zarr --out r.html", r"'r.html': it is a "
         "directory", make_dir("r.html")),
    Case("report-over-an-existing-data-file", "report diag.zarr --out r.html --pdf data.nc",
         r"^error: 'data.nc' exists; pass --overwrite to replace it$",
         write("data.nc", b"CDF\x01" + bytes(60))),
    Case("report-over-an-existing-report", "report diag.zarr --out r.html",
         r"'r.html' exists; pass --overwrite", write("r.html", "<html>kept</html>")),
    Case("report-overwrite-when-asked", "report diag.zarr --out r.html --pdf r.pdf "
         "--overwrite", rc=0, setup=write("r.pdf", "old")),
    Case("report-pdf-is-its-out", "report diag.zarr --out r.html --pdf r.html",
         r"--pdf 'r.html' is the same file as --out 'r.html'"),
    Case("report-pdf-into-its-diagnostics", "report diag.zarr --out r.html --pdf "
         "diag.zarr/r.pdf", r"--pdf 'diag.zarr/r.pdf' lies inside 'diag.zarr'"),
    Case("report-pdf-to-a-directory", "report diag.zarr --out r.html --pdf r.pdf",
         r"'r.pdf': it is a directory", make_dir("r.pdf")),
    Case("train-to-a-directory", TRAIN, r"'new.pt': it is a directory", make_dir("new.pt")),
    Case("forecast-to-a-file", FORECAST, r"'f.zarr': it is a file, expected a directory",
         write("f.zarr", "notes")),
    Case("forecast-output-exists", FORECAST, r"'f.zarr' exists; pass --overwrite",
         make_dir("f.zarr/inner")),
    Case("train-on-a-full-disk", TRAIN, r"cannot write 'new.pt': No space left on device",
         patch=("torch", "save")),
    Case("train-on-a-full-disk-checked-first", TRAIN, r"^error: cannot write 'new.pt': 1000 "
         r"bytes free in '\.', a checkpoint needs about \d+\.\d KiB; free some space or "
         r"choose another output$", fault=low_disk(1000)),
    Case("export-on-a-full-disk-checked-first", "export ks.zarr --to out.nc",
         r"cannot write 'out.nc': 1000 bytes free in '\.', the NetCDF file \(uncompressed\) "
         r"needs about \d+\.\d KiB", fault=low_disk(1000)),
    Case("train-fills-the-disk", TRAIN, r"^error: cannot write 'new.pt': No space left on "
         r"device; nothing was changed there$", fault=fills_while_writing(
             "torch", "save", "[enforce fail at inline_container.cc:603] . unexpected pos "
             "4416 vs 4304")),
    Case("export-fills-the-disk", "export ks.zarr --to out.nc", r"^error: cannot write "
         r"'out.nc': No space left on device; nothing was changed there$",
         fault=fills_while_writing("xarray", "Dataset.to_netcdf", "NetCDF: HDF error")),
    Case("diagnose-on-a-full-disk", "diagnose ks.zarr --out d.zarr",
         r"cannot write 'd.zarr': No space left on device",
         patch=("pde.io.store", "checksummed_encoding")),
    Case("stale-temporaries-are-cleaned", "diagnose ks.zarr --out d.zarr", rc=0,
         setup=make_dir(".d.zarr.partial-x1y2z3/d.zarr")),
    # bounded input: refused before any output exists
    Case("yaml-alias-bomb", "simulate bomb.yaml --out new.zarr",
         r"bomb.yaml' is not valid YAML: more than 20 aliases", alias_bomb),
    Case("yaml-too-large", "simulate big.yaml --out new.zarr",
         r"big.yaml' is \d+ bytes; allowed: at most 1048576", write("big.yaml", "#" * 2**21)),
    Case("yaml-nested-too-deeply", "simulate deep.yaml --out new.zarr",
         r"deep.yaml' is (nested too deeply|not valid YAML)",
         write("deep.yaml", "a: " + "[" * 50_000)),
    Case("burn-in-1e308", "simulate b.yaml --out new.zarr",
         r"'b.yaml': key 'simulator.burn_in': .* less than or equal to 1000000",
         config_with("b.yaml", "simulator", "burn_in", 1e308)),
    Case("interval-1e308", "simulate b.yaml --out new.zarr", r"key 'simulator.interval'",
         config_with("b.yaml", "simulator", "interval", 1e308)),
    Case("dt-1e-300", "simulate b.yaml --out new.zarr",
         r"key 'simulator.dt': .*dt=1e-300 gives .* solver steps per stored state; allowed: at "
         r"most 100000", config_with("b.yaml", "simulator", "dt", 1e-300)),
    Case("seed-1e23-in-config", "simulate b.yaml --out new.zarr", r"key 'dataset.seed'",
         config_with("b.yaml", "dataset", "seed", 1e23)),
    Case("seed-1e23-on-command-line", "simulate ks.yaml --out new.zarr --seed " + "1" + "0" * 23,
         r"command line \(dataset.seed=10{23}\): key 'dataset.seed'"),
    Case("training-steps-1e12", "train forecaster b.yaml --data ks.zarr --out new.pt",
         r"key 'forecaster.training.steps'",
         config_with("b.yaml", "forecaster", "training",
                     TINY_FORECASTER["training"] | {"steps": 10**12})),
    Case("unreachable-scheduler-diagnose", "diagnose ks.zarr --out d.zarr --scheduler "
         "tcp://127.0.0.1:9 --scheduler-timeout 1", r"cannot reach the Dask scheduler at "
         r"'tcp://127.0.0.1:9' within 1 s"),
    Case("unreachable-scheduler-simulate", "simulate ks.yaml --out new.zarr --scheduler "
         "tcp://127.0.0.1:9 --scheduler-timeout 1", r"'tcp://127.0.0.1:9' within 1 s"),
    # messages that help
    Case("torn-metrics-line-resumes", RESUME.replace("seed9", "ks"), rc=0,
         setup=tear_metrics_log),
    Case("random-bytes-checkpoint", "forecast junk.pt --init ks.zarr --steps 2 --out f.zarr",
         r"'junk.pt' is not a readable assimilate checkpoint \(damaged, truncated",
         write("junk.pt", os.urandom(4096))),
    Case("nu-2", "train emulator ks.yaml --data ks.zarr --out new.pt --nu 2",
         r"\(emulator.nu=2.0\): key 'emulator.nu': nu=2.0 is not allowed: Student-t noise "
         r"needs nu > 2"),
    Case("forecaster-nu-2", "train forecaster ks.yaml --data ks.zarr --out new.pt --nu 2",
         r"\(forecaster.nu=2.0\): key 'forecaster.nu': nu=2.0 is not allowed"),
    Case("emulator-checkpoint-as-forecaster", FORECAST.replace("fc.pt", "em.pt"),
         r"'em.pt' holds a model of kind 'emulator', expected a forecaster"),
    Case("config-is-a-directory", "simulate conf.yaml --out new.zarr",
         r"config file 'conf.yaml' cannot be read", make_dir("conf.yaml")),
    Case("forecast-trajectory-out-of-range", FORECAST + " --trajectory 99",
         r"--trajectory 99 outside 0..5 of 'ks.zarr'"),
]


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_hostile(case: Case, world: Path, tmp_path: Path, capsys,
                 monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "w"
    shutil.copytree(world, d)
    monkeypatch.chdir(d)
    if case.setup is not None:
        case.setup(d)
    if case.patch is not None:
        disk_full(monkeypatch, *case.patch)
    if case.fault is not None:
        case.fault(monkeypatch)
    before = _digest(d)
    capsys.readouterr()
    held = contextlib.nullcontext() if case.hold is None else claim(
        case.hold, kind="directory" if case.hold.endswith(".zarr") else "file", resumable=True)
    with held:
        rc = main(case.argv.split())
    out, err = capsys.readouterr()
    assert rc == case.rc, (rc, out, err)
    assert "Traceback" not in err + out
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    if case.rc == 0:
        assert errors == [], err
        assert not [p for p in d.rglob(".*") if re.search(r"\.(partial|replaced)-|\.lock$",
                                                             p.name)]
        return
    assert len(errors) == 1, err
    expected = case.message.replace("{pid}", str(os.getpid()))
    assert re.search(expected, errors[0]), f"\n{errors[0]}\n  does not match\n{expected}"
    for leak in (".partial-", "https://", "pydantic", "weights_only", "Value error,"):
        assert leak not in errors[0]
    after = _digest(d)
    assert {k: v for k, v in after.items() if k in before} == before, "an input changed"
    assert sorted(set(after) - set(before)) == [], "something was left behind"
    assert not [p for p in d.rglob(".*") if ".partial-" in p.name or p.name.endswith(".lock")]
