#!/usr/bin/env bash
# The test command: formatting, lints, the template lint, the event schema check, then every
# unit and integration test (the integration tests start the local stack themselves).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup-local.sh
echo "== cargo fmt --check" >&2
cargo fmt --all --check
echo "== cargo clippy -D warnings" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== template lint" >&2
scripts/lint-template.sh
echo "== event schema" >&2
.local/venv/bin/python scripts/check-event-schema.py
echo "== cargo test" >&2
cargo test --workspace --locked
