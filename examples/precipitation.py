"""Write the synthetic daily precipitation record of ``assimilate.diagnostics.synthetic``.

    .venv/bin/python examples/precipitation.py data/precip.nc [--years 30] [--seed 0] [--cf]

30 years of daily precipitation on 16 x 32 lat/lon points (about 65 % dry days at exactly
0 mm, heavier downpours in the north, wetter years in the north over time), as the
README's climate-record example analyses it; ``--cf`` writes it as CF model output does,
a mass flux in kg m-2 s-1 over land only (NaN at sea).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from assimilate.diagnostics.synthetic import precipitation
from pde.io.output import claim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="output NetCDF file")
    parser.add_argument("--years", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cf", action="store_true",
                        help="kg m-2 s-1 over land only, NaN at sea (default: mm/day everywhere)")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    ds = precipitation(args.years, args.seed, cf=args.cf)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with claim(args.out, kind="file", overwrite=args.overwrite) as output, \
            output.atomic() as scratch:
        ds.to_netcdf(scratch, encoding={"pr": {"zlib": True, "complevel": 4}})
    print(f"wrote {args.out}: pr{tuple(ds['pr'].shape)} {dict(ds.sizes)}, "
          f"{args.years} years of daily data")


if __name__ == "__main__":
    main()
