#!/usr/bin/env bash
# The demo: installs the local stack's pieces if needed, then runs a month of a channel
# program through Carrot's real handlers on DynamoDB Local and moto (loopback only).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup-local.sh
cargo run --locked --quiet -p carrot-local --bin demo
