#!/usr/bin/env bash
# The whole test suite: formatting, lints, docs, the default model trained on the shipped MNIST
# and held to 99 % test accuracy, then every crate's tests (which reuse that model).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "formatting"
cargo fmt --all --check

step "lints"
cargo clippy --workspace --all-targets -- -D warnings

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

step "build"
cargo build --workspace --all-targets

step "default model: train on MNIST, require 99 % test accuracy"
model=target/test-model
started=$(date +%s)
./target/debug/trainer train --config trainer/config.toml --out "$model" --force
echo "trained in $(( $(date +%s) - started )) s"
./target/debug/trainer evaluate --model "$model" --min-accuracy 0.99

step "tests"
DIGIT_LAB_TEST_MODEL="$PWD/$model" cargo test --workspace --no-fail-fast

step "all green"
