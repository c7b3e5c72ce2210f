"""Thread counts (pde.io.threads): the policy as a pure function, its overrides through the
environment and ``assimilate --threads``, and its record in an analysis's attributes.
Timings are benchmarks/threads.py's business, never a test's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pde.io.threads import ENVIRONMENT, MAX_DEFAULT, Threads, available_cores, choose
from tests.conftest import REPO, TINY_KS, write_config

COMMAND = str(Path(sys.executable).with_name("assimilate"))
CLEAN = {name: value for name, value in os.environ.items()  # no thread setting of this run
         if name not in {ENVIRONMENT, "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                         "MKL_NUM_THREADS", "XLA_FLAGS"}}


@pytest.mark.parametrize(("cores", "load", "expected"), [
    (2, 0.0, 1),    # an idle 2-core machine: one core left for whatever starts next
    (2, 1.9, 1),
    (2, 6.0, 1),    # overloaded: never fewer than one
    (4, 0.0, 2),
    (8, 3.5, 2),    # (8 - 3.5) / 2 = 2.25
    (16, 2.0, MAX_DEFAULT),  # 7 would be too many for this work
    (64, 60.0, 2),
])
def test_the_default_is_half_the_cores_nobody_uses(cores, load, expected) -> None:
    chosen = choose(cores, load, {})
    assert chosen == Threads(expected, "default", cores, load)
    assert all(chosen.governs(library) for library in ("torch", "blas", "xla"))


def test_the_environment_overrides_the_default_and_the_command_line_both() -> None:
    assert choose(16, 0.0, {ENVIRONMENT: "3"}) == Threads(3, ENVIRONMENT, 16, 0.0)
    assert choose(2, 5.0, {ENVIRONMENT: "2"}).count == 2
    assert choose(2, 0.0, {ENVIRONMENT: "3"}, requested=6) == Threads(6, "--threads", 2, 0.0)
    assert choose(2, 0.0, {ENVIRONMENT: " "}).source == "default"


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_bad_count_is_refused_naming_where_it_came_from(value) -> None:
    with pytest.raises(ValueError, match=f"{ENVIRONMENT}='{value}'.*positive integer"):
        choose(2, 0.0, {ENVIRONMENT: value})
    with pytest.raises(ValueError, match="--threads='0'"):
        choose(2, 0.0, {}, requested=0)


def test_the_default_keeps_each_librarys_own_setting() -> None:
    openmp = choose(2, 0.0, {"OMP_NUM_THREADS": "2"})
    assert openmp.kept == ("OMP_NUM_THREADS=2",)
    assert not openmp.governs("torch") and not openmp.governs("blas") and openmp.governs("xla")
    blas = choose(2, 0.0, {"OPENBLAS_NUM_THREADS": "2"})
    assert blas.governs("torch") and not blas.governs("blas")
    xla = choose(2, 0.0, {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=true"})
    assert xla.governs("torch") and not xla.governs("xla")
    assert choose(2, 0.0, {"XLA_FLAGS": "--xla_dump_to=/tmp/x"}).governs("xla")
    # an explicit count for this application wins over every library's variable
    assert choose(2, 0.0, {ENVIRONMENT: "1", "OMP_NUM_THREADS": "2"}).kept == ()


def test_the_choice_says_what_each_library_gets() -> None:
    assert str(choose(2, 0.5, {})).startswith("threads: torch 1, BLAS 1, XLA 1 (default: ")
    assert str(Threads(3, ENVIRONMENT, 8, 0.0)) == \
        "threads: torch 3, BLAS 3, XLA all cores (ASSIMILATE_THREADS)"
    assert "the user's OMP_NUM_THREADS=2 kept" in str(choose(2, 0.0, {"OMP_NUM_THREADS": "2"}))


def test_available_cores_are_this_processs() -> None:
    assert 1 <= available_cores() <= len(os.sched_getaffinity(0)) <= os.cpu_count()


def _assimilate(*options: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """A cheap verb (verify on a missing store: a user error) after the global options."""
    return subprocess.run([COMMAND, *options, "verify", "no-such-store"], capture_output=True,
                          text=True, timeout=120, check=False, env=CLEAN | (env or {}))


@pytest.mark.e2e
def test_verbose_prints_the_choice_and_its_source() -> None:
    done = _assimilate("--threads", "1", "--verbose", env={ENVIRONMENT: "2"})
    assert done.returncode == 2 and "not a Zarr store" in done.stderr
    assert "threads: torch 1, BLAS 1, XLA 1 (--threads)" in done.stderr.splitlines()
    done = _assimilate("--verbose", env={ENVIRONMENT: "2"})
    assert "threads: torch 2, BLAS 2, XLA all cores (ASSIMILATE_THREADS)" in done.stderr
    assert "default: (" in _assimilate("--verbose").stderr
    assert "threads:" not in _assimilate().stderr


def test_a_bad_environment_count_is_a_one_line_user_error() -> None:
    done = _assimilate(env={ENVIRONMENT: "many"})
    assert done.returncode == 2
    assert done.stderr.strip() == (f"error: {ENVIRONMENT}='many': the number of threads must "
                                   "be a positive integer")


def _python(code: str, env: dict | None = None) -> dict:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False, cwd=REPO, env=CLEAN | (env or {}))
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.e2e
def test_the_command_lines_choice_reaches_torch_blas_and_xla_loaded_after_it() -> None:
    used = _python(
        "import json, os\n"
        "from assimilate.cli import main\n"
        "main(['--threads', '1', 'verify', 'no-such-store'])\n"
        "import numpy, scipy.linalg, torch\n"
        "from pde.io.threads import configure, in_effect\n"
        "before = in_effect()\n"
        "configure()  # as the entry points do: torch's inter-op pool, now that it is loaded\n"
        "print(json.dumps(before | {'interop': torch.get_num_interop_threads(),\n"
        "                           'flags': os.environ['XLA_FLAGS']}))")
    assert (used["torch"], used["blas"], used["xla"], used["interop"]) == (1, 1, "1", 1)
    assert used["flags"] == "--xla_cpu_multi_thread_eigen=false"


def test_the_python_api_applies_the_default_but_keeps_a_users_torch_count() -> None:
    code = ("import json, torch\n{set}\n"
            "from pde.io.threads import configure\n"
            "chosen = configure()\n"
            "print(json.dumps([chosen.count, torch.get_num_threads()]))")
    count, used = _python(code.format(set=""))
    assert used == count
    assert _python(code.format(set="torch.set_num_threads(7)"))[1] == 7
    assert _python(code.format(set=""), env={"OMP_NUM_THREADS": "2"})[1] == 2
    assert _python(code.format(set="torch.set_num_threads(7)"),
                   env={ENVIRONMENT: "1"})[1] == 1  # an explicit count wins


def test_an_analysis_records_the_threads_it_ran_with(tmp_path: Path) -> None:
    from assimilate.config import load_config
    from assimilate.da.climatology import Climatology
    from assimilate.da.contract import assimilate
    from assimilate.da.methods import build_method
    from assimilate.observe import Observations, model_grid, observe
    from pde import open_trajectories, simulate

    config = load_config(write_config(tmp_path, TINY_KS))
    truth = simulate(config, tmp_path / "truth.zarr", trajectories=1, progress=False).path
    observations = Observations.from_dataset(observe(truth, "dense", progress=False),
                                             **model_grid(open_trajectories(truth)))
    analysis = assimilate(build_method("oi"), observations, initial=None, config=config,
                          climatology=Climatology.from_store(truth), n_members=2, n_steps=2,
                          progress=False)
    threads = json.loads(analysis.attrs["threads"])
    assert threads["choice"].startswith("threads: ")
    assert threads["blas"] >= 1 and threads["torch"] >= 1 and threads["xla"]
