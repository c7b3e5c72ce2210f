"""``benchmarks/gpu_check.sh`` (the controller against the LETKF at the reference
Kolmogorov scale, on a GPU) runs every stage at a tiny size on the CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_gpu_check_runs_every_stage_at_a_tiny_size(tmp_path: Path) -> None:
    run = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_check.sh"), str(tmp_path / "check")],
        capture_output=True, text=True, timeout=900, check=False, cwd=tmp_path,
        env=os.environ | {"SIZE": "tiny", "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    for stage in ("simulate", "train forecaster", "train controller", "evaluate da"):
        assert f"gpu_check: {stage} took" in run.stdout, run.stdout[-2000:]
    table = (tmp_path / "check" / "da.zarr.md").read_text()
    assert "| dense | letkf:model=forecaster |" in table and "| dense | controller" in table
    assert "CRPS" in table and "tail KS" in table
