#!/usr/bin/env bash
# Benchmarks this project against the Python stack on this machine, side by side, and rewrites
# docs/benchmarks.md with the figures. Prints figures and ratios; never fails on speed.
#
#   ./scripts/bench.sh
#
# 1. Training: `trainer train` (trainer/config.toml) against benchmarks/reference/train_pytorch.py
#    (same network, data, batch size, threads): samples/s per epoch, training and wall seconds to 99.0 %
#    test accuracy, peak resident memory (/usr/bin/time -v).
# 2. Serving: `ml-ui --model DIR` against benchmarks/reference/serve_fastapi.py (FastAPI,
#    uvicorn, PyTorch, the same weights), both driven by wrk (Debian package `wrk`, installed when missing) posting
#    canvas PNGs of MNIST test digits at concurrency 1, 8 and 64: requests/s, p50 and p99
#    latency, resident memory, time from start to ready.
# 3. In process: `cargo bench -p shared --bench digits` (criterion).
#
# The Python side lives in a virtual environment made once under target/bench-venv (PyPI's torch
# wheel brings several GB of GPU libraries). Settings (all optional):
#   BENCH_THREADS      threads on each side (default: 2)
#   BENCH_EPOCHS       epochs of both trainers (default: the config's)
#   BENCH_SECONDS      seconds of load per concurrency level (default: 10)
#   BENCH_SKIP         space-separated parts to skip: train serve criterion
#   BENCH_UNDER_LOAD   a note printed on the results page when the machine was busy
#   CARGO_TARGET_DIR   honoured for the Rust builds (default: target)
#   PYTHON             interpreter for the virtual environment (default: python3)
set -euo pipefail
cd "$(dirname "$0")/.."

threads=${BENCH_THREADS:-2}
seconds=${BENCH_SECONDS:-10}
skip=" ${BENCH_SKIP:-} "
target_dir=${CARGO_TARGET_DIR:-target}
bin=$target_dir/release
venv=target/bench-venv
out=target/bench
py=$venv/bin/python
ours_port=18181
torch_port=18182
mkdir -p "$out"

wants() { [[ $skip != *" $1 "* ]]; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }

# --- setup -------------------------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq wrk >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; } \
    || { echo "wrk is missing and could not be installed: apt-get install wrk" >&2; exit 1; }
fi
if ! "$py" -c 'import torch, fastapi, uvicorn, PIL, numpy, safetensors' 2>/dev/null; then
  echo "making the Python environment in $venv (once; several GB)"
  "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/pip" install --quiet torch fastapi uvicorn pillow numpy safetensors
fi
echo "building release binaries into $bin"
cargo build --release --quiet -p trainer -p ml-ui

epochs_flag=()
[ -n "${BENCH_EPOCHS:-}" ] && epochs_flag=(--epochs "$BENCH_EPOCHS")
commands=(
  "RAYON_NUM_THREADS=$threads trainer train --config trainer/config.toml ${epochs_flag[*]}"
  "python benchmarks/reference/train_pytorch.py --threads $threads --batch-size 128 --epochs ${BENCH_EPOCHS:-6} --stop-at-target"
  "RAYON_NUM_THREADS=$threads ml-ui --model DIR   # and: python benchmarks/reference/serve_fastapi.py --model DIR --threads $threads"
  "wrk -t1 -c{1,8,64} -d${seconds}s --latency -s benchmarks/predict.lua http://127.0.0.1:PORT"
  "cargo bench -p shared --bench digits"
)

# --- training ----------------------------------------------------------------------------------
model=$out/model
if wants train; then
  echo "training: ours"
  env -u MODEL_REGISTRY_URI RAYON_NUM_THREADS="$threads" /usr/bin/time -v -o "$out/train-ours.time" \
    "$bin/trainer" train --config trainer/config.toml --out "$model" --force "${epochs_flag[@]}" \
    >"$out/train-ours.log" 2>&1 || echo "trainer failed; see $out/train-ours.log" >&2
  cp "$model/metrics.jsonl" "$out/train-ours.jsonl" 2>/dev/null || rm -f "$out/train-ours.jsonl"
  echo "training: PyTorch"
  /usr/bin/time -v -o "$out/train-torch.time" "$py" benchmarks/reference/train_pytorch.py \
    --threads "$threads" --batch-size 128 --epochs "${BENCH_EPOCHS:-6}" --stop-at-target \
    >"$out/train-torch.jsonl" 2>"$out/train-torch.log" \
    || echo "the PyTorch trainer failed; see $out/train-torch.log" >&2
fi

# --- serving -----------------------------------------------------------------------------------
# Starts a server, times it to ready, drives it with wrk at each concurrency, reads its memory.
measure_server() {
  local side=$1 port=$2
  shift 2
  local started pid ready runs=() c line
  started=$(now)
  "$@" >"$out/serve-$side.log" 2>&1 &
  pid=$!
  until curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || { echo "$side server exited; see $out/serve-$side.log" >&2; return 0; }
    sleep 0.02
  done
  ready=$(since "$started")
  BENCH_PNG_DIR=$out/canvases wrk -t1 -c8 -d2s -s benchmarks/predict.lua \
    "http://127.0.0.1:$port" >/dev/null
  for c in 1 8 64; do
    line=$(BENCH_PNG_DIR=$out/canvases wrk -t1 -c"$c" -d"${seconds}s" --timeout 10s \
      -s benchmarks/predict.lua "http://127.0.0.1:$port" | grep '^BENCH_RESULT')
    echo "  $side c=$c ${line#BENCH_RESULT }"
    runs+=("$(awk -v c="$c" '{ printf "{\"concurrency\": %d", c
      for (i = 2; i <= NF; i++) { split($i, kv, "="); printf ", \"%s\": %s", kv[1], kv[2] }
      printf "}" }' <<<"$line")")
  done
  local rss hwm
  rss=$(awk '/^VmRSS/ { print $2 / 1024 }' "/proc/$pid/status")
  hwm=$(awk '/^VmHWM/ { print $2 / 1024 }' "/proc/$pid/status")
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  local joined
  joined=$(IFS=,; echo "${runs[*]}")
  printf '{"ready_seconds": %s, "rss_mib": %s, "peak_rss_mib": %s, "runs": [%s]}\n' \
    "$ready" "$rss" "$hwm" "$joined" >"$out/serve-$side.json"
}

if wants serve; then
  if [ ! -f "$model/model.safetensors" ]; then
    echo "no model in $model: training a quick one to serve"
    env -u MODEL_REGISTRY_URI "$bin/trainer" train --config trainer/config.toml --out "$model" \
      --force --epochs 1 >"$out/train-quick.log" 2>&1
  fi
  "$py" benchmarks/make_canvases.py "$out/canvases" 100
  echo "serving: ours"
  rm -rf "$out/feedback"
  measure_server ours "$ours_port" env RAYON_NUM_THREADS="$threads" RUST_LOG=warn \
    "$bin/ml-ui" --model "$model" --addr "127.0.0.1:$ours_port" --feedback-dir "$out/feedback"
  echo "serving: FastAPI"
  measure_server torch "$torch_port" "$py" benchmarks/reference/serve_fastapi.py \
    --model "$model" --port "$torch_port" --threads "$threads"
fi

# --- in process --------------------------------------------------------------------------------
if wants criterion; then
  echo "in process: criterion"
  RAYON_NUM_THREADS=$threads CANDLE_NUM_THREADS=1 cargo bench --quiet -p shared --bench digits -- \
    --warm-up-time 1 --measurement-time 3 --noplot 2>&1 | grep -E '^[a-z_]+/|time:' || true
  "$py" - "$target_dir/criterion" >"$out/criterion.json" <<'EOF'
import json, pathlib, sys
found = {}
for bench in pathlib.Path(sys.argv[1]).glob("**/new/benchmark.json"):
    estimates = json.loads((bench.parent / "estimates.json").read_text())
    found[json.loads(bench.read_text())["full_id"]] = estimates["mean"]["point_estimate"]
print(json.dumps(found))
EOF
fi

# --- report ------------------------------------------------------------------------------------
"$py" - "$out/env.json" "$threads" "${BENCH_UNDER_LOAD:-}" "${commands[@]}" <<EOF
import json, platform, subprocess, sys
import fastapi, torch, uvicorn
def run(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
    except (OSError, IndexError):
        return "unknown"
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
mem = next((l.split(":", 1)[1].strip() for l in open("/proc/meminfo") if l.startswith("MemTotal")), "unknown")
import re
found = re.search(r'name = "candle-core"\nversion = "([^"]+)"', open("Cargo.lock").read())
candle = found.group(1) if found else "unknown"
json.dump({
    "date": run("date", "-u", "+%Y-%m-%d %H:%M UTC"), "cpu": cpu, "cores": "$(nproc)", "memory": mem,
    "os": platform.platform(), "rustc": run("rustc", "--version"), "candle": candle,
    "python": platform.python_version(), "torch": torch.__version__, "fastapi": fastapi.__version__,
    "uvicorn": uvicorn.__version__, "wrk": run("wrk", "--version") or "wrk",
    "commit": run("git", "log", "-1", "--format=%h %s"),
    "threads": int(sys.argv[2]), "under_load": sys.argv[3], "commands": sys.argv[4:],
    "train_note": "Samples/s and training seconds count the optimisation steps of each epoch; "
        "wall seconds run from the start of the run (after the Python imports) through the "
        "evaluation that first shows 99.0 %, data loading included. Ours trains with "
        "trainer/config.toml (batch 128, AdamW one-cycle, augmentation on); the reference with "
        "the same network, optimiser, schedule and batch on the plain images, and stops once "
        "it reaches 99.0 %.",
    "serve_note": "wrk (1 thread) posts 100 canvas PNGs (280x280, MNIST test digits drawn "
        "off-centre) to /api/predict; the load generator shares the machine's cores with the "
        "server. The reference runs one uvicorn worker.",
}, open(sys.argv[1], "w"), indent=1)
EOF
"$py" benchmarks/report.py "$out" docs/benchmarks.md
echo "wrote docs/benchmarks.md"
