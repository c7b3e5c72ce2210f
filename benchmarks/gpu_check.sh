#!/usr/bin/env bash
# The controller against the LETKF at the reference Kolmogorov scale (64² stored grid,
# 32 members), from nothing, in one go on one GPU:
#
#     benchmarks/gpu_check.sh [WORKDIR]        # default WORKDIR: runs/gpu-check
#
# 1. simulate a training store and a controller store of configs/kolmogorov.yaml's physics;
# 2. train a forecaster (the small backbone, FORECASTER_STEPS steps) and a calibrated
#    controller for it (fair CRPS over 8 jointly rolled members, ensemble-aware, 4 sub-steps);
# 3. `assimilate evaluate da` free, the LETKF on the forecaster (radius and inflation tuned
#    jointly) and the controller, 32 members, on the dense and sparse regimes.
#
# Every stage prints its wall time; the table is WORKDIR/da.zarr.md. The sizes below fit
# about 8 minutes on one H100; SIZE=tiny runs the same stages at a size a CPU test can
# afford (16² stored grid, a few steps each), which is how the test suite checks it.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${1:-runs/gpu-check}"
SIZE="${SIZE:-reference}"
PY="${PYTHON:-$REPO/.venv/bin/python}"
BIN="$(dirname "$PY")"
mkdir -p "$WORK"

if [ "$SIZE" = tiny ]; then
  GRID=16; SOLVER=32; TRAJ=4; STEPS=12; BURN=1.0; F_STEPS=20; C_STEPS=2; MEMBERS=4
  EVAL_STEPS=6; EVAL_TRAJ=1; REGIMES=dense; WIDTH=8; BLOCKS=1; BACKBONE=tiny
else
  GRID=64; SOLVER=256; TRAJ=64; STEPS=100; BURN=40.0; F_STEPS=3000; C_STEPS=150; MEMBERS=32
  EVAL_STEPS=100; EVAL_TRAJ=4; REGIMES=dense,sparse; WIDTH=32; BLOCKS=4; BACKBONE=small
fi

"$PY" - "$REPO/configs/kolmogorov.yaml" "$WORK/config.yaml" <<EOF
import sys, yaml
config = yaml.safe_load(open(sys.argv[1]))
config["simulator"].update(stored_grid=$GRID, solver_grid=$SOLVER, burn_in=$BURN)
config["dataset"].update(trajectories=$TRAJ, steps=$STEPS)
config["forecaster"].update(backbone="$BACKBONE")
config["forecaster"]["training"].update(steps=$F_STEPS, batch_size=64, learning_rate=1e-3,
                                        checkpoint_every=500, validate_every=500)
config["controller"] = {"objective": "crps", "members": 8, "ensemble": True, "sub_steps": 4,
                        "lookahead": 2, "width": $WIDTH, "blocks": $BLOCKS, "spin_up": 2,
                        "training": {"steps": $C_STEPS, "batch_size": 4,
                                     "learning_rate": 1e-3, "checkpoint_every": 50,
                                     "validate_every": 50}}
config["evaluation"] = {"trajectories": $EVAL_TRAJ, "validation": 1, "members": $MEMBERS}
yaml.safe_dump(config, open(sys.argv[2], "w"), sort_keys=False)
EOF

stage() {  # stage NAME COMMAND...: run it, print its wall time
  local name="$1"; shift
  local start=$SECONDS
  "$@"
  echo "gpu_check: $name took $((SECONDS - start)) s"
}

A="$BIN/assimilate"
stage simulate "$A" simulate "$WORK/config.yaml" --out "$WORK/train.zarr" --quiet
stage "train forecaster" "$A" train forecaster "$WORK/config.yaml" --data "$WORK/train.zarr" \
  --out "$WORK/forecaster.pt" --quiet
stage "train controller" "$A" train controller "$WORK/config.yaml" \
  --forecaster "$WORK/forecaster.pt" --data "$WORK/train.zarr" --out "$WORK/controller.pt" \
  --quiet
stage "evaluate da" "$A" evaluate da "$WORK/config.yaml" --forecaster "$WORK/forecaster.pt" \
  --controller "$WORK/controller.pt" --methods free,letkf:model=forecaster,controller \
  --regimes "$REGIMES" --steps "$EVAL_STEPS" --out "$WORK/da.zarr" --overwrite --quiet
echo "gpu_check: total $SECONDS s; table: $WORK/da.zarr.md"
