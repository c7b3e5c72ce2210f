"""``make demo``: the main job on small default settings.

Simulates the small Kuramoto-Sivashinsky and Kolmogorov stores into ``demo-output/``
and prints what was written, where, and how fast. Rerunning reuses finished stores.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from assimilate.config import load_config
from pde import open_trajectories, simulate

REPO = Path(__file__).resolve().parents[1]
CONFIGS = ("ks-small", "kolmogorov-small")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo-output", help="output directory")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"Simulating {len(CONFIGS)} small trajectory stores into {out}/ ...")
    for name in CONFIGS:
        config = load_config(REPO / "configs" / f"{name}.yaml")
        summary = simulate(config, out / f"{name}.zarr")
        ds = open_trajectories(summary.path)
        variable = next(iter(ds.data_vars.keys() - {"complete"}))
        field = ds[variable]
        print(f"  {summary}")
        print(
            f"    {variable}{tuple(field.shape)} dims={field.dims} "
            f"mean={float(field.mean()):+.3f} std={float(field.std()):.3f}"
        )
    print("Open a store with: pde.open_trajectories('demo-output/ks-small.zarr')")


if __name__ == "__main__":
    main()
