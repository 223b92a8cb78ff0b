#!/usr/bin/env bash
# The demo: installs the local stack's pieces if needed, then runs three months of a channel
# program and their close through Carrot's real handlers on DynamoDB Local and moto (loopback
# only), then the daily engagement run and the emails and SMS it sends. The close's reports are
# written to target/demo/, the messages to target/demo/messages/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup-local.sh
cargo run --locked --quiet -p carrot-local --bin demo
