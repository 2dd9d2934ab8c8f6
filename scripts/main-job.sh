#!/usr/bin/env bash
# The main job on one machine: train the default model on the shipped MNIST if the embedded
# registry has no production version yet, register it with its lineage, make it production,
# and serve the drawing app (which pulls production from the registry and follows it).
#
# Settings (all optional): MODEL_REGISTRY_URI (default: registry/), MODEL_NAME (digits),
# ML_UI_ADDR (127.0.0.1:8080).
set -euo pipefail
cd "$(dirname "$0")/.."

registry=${MODEL_REGISTRY_URI:-registry}
model=${MODEL_NAME:-digits}
addr=${ML_UI_ADDR:-127.0.0.1:8080}
bin=target/release

started=$(date +%s)
cargo build --release -p trainer -p registry-client -p ml-ui
echo "built in $(( $(date +%s) - started )) s"

if "$bin/registry" --registry "$registry" alias resolve --model "$model" --alias production >/dev/null 2>&1; then
  echo "the registry already has a production version of $model: serving it"
else
  mkdir -p target/main-job
  run_file=target/main-job/run-id
  trained=$(date +%s)
  "$bin/trainer" train --config trainer/config.toml --out target/main-job/model --force \
    --registry "$registry" --run-id-file "$run_file"
  echo "trained in $(( $(date +%s) - trained )) s"
  version=$("$bin/registry" --registry "$registry" register --json \
    --run "$(cat "$run_file")" --model "$model" --dir target/main-job/model \
    | sed -n 's/.*"version":"\([^"]*\)".*/\1/p' | head -n 1)
  [ -n "$version" ] || { echo "registration returned no version" >&2; exit 1; }
  "$bin/registry" --registry "$registry" alias set --model "$model" --alias production --version "$version"
  echo "registered $model version $version as production"
fi

echo "serving on http://$addr/ (Ctrl-C stops)"
exec "$bin/ml-ui" --registry "$registry" --model-name "$model" --alias production --addr "$addr"
