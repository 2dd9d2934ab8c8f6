#!/usr/bin/env bash
# The whole test suite. It installs and starts what the tests need by itself: Chromium and
# chromedriver (Debian packages), an MLflow server on loopback (PyPI, in target/mlflow-venv),
# and the default model, trained on the shipped MNIST and held to 99 % test accuracy, which
# the tests then reuse. Exits non-zero when anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
started=$(date +%s)

step "formatting"
cargo fmt --all --check

step "lints"
cargo clippy --workspace --all-targets -- -D warnings

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

step "delivery: pipeline files against GitLab's schema, gitlab-ci-local, Kubernetes overlays"
CHECK_DELIVERY_JOBS=none ./scripts/check-delivery.sh

step "browser for the end-to-end tests"
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; }
fi
chromium --version && chromedriver --version

step "build"
cargo build --workspace --all-targets

step "default model: train on MNIST, require 99 % test accuracy"
model=target/test-model
trained=$(date +%s)
./target/debug/trainer train --config trainer/config.toml --out "$model" --force
echo "trained in $(( $(date +%s) - trained )) s"
./target/debug/trainer evaluate --model "$model" --min-accuracy 0.99

step "MLflow server for the registry tests (the first run installs mlflow)"
eval "$(scripts/mlflow-server.sh start)"
trap 'scripts/mlflow-server.sh stop' EXIT

step "tests"
export DIGIT_LAB_TEST_MODEL="$PWD/$model"
cargo test --workspace --no-fail-fast

step "registry tests against MLflow (the tests marked as needing the server)"
cargo test --workspace --no-fail-fast -- --ignored

step "all green in $(( $(date +%s) - started )) s"
