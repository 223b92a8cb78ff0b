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
.local/venv/bin/python scripts/check-program-schema.py
echo "== cargo test" >&2
# The integration tests record every log line here; start empty so the scan covers this run.
rm -rf "${CARGO_TARGET_DIR:-target}/test-logs"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --workspace --all-targets --locked --no-fail-fast 2>&1 | tee "$log"
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
echo "== log scan: no e-mail address, phone number or secret in any log line" >&2
.local/venv/bin/python scripts/scan-logs.py
