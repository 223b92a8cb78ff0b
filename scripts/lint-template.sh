#!/usr/bin/env bash
# Lints infra/template.yaml fully offline (no AWS account, no network): cfn-lint, SAM's own
# translation check, and sam validate --lint; and validates docs/openapi.yaml against the
# OpenAPI 3.1 schema (tests/tests/routes.rs checks it against the code and the template).
# Any error or warning fails the script.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/scripts/setup-local.sh"

BIN="$ROOT/.local/venv/bin"
TEMPLATE=infra/template.yaml
REGION=eu-north-1 # the deploy region in samconfig.toml

# Dummy credentials and region so nothing looks for a profile or an account; no call is made.
export AWS_ACCESS_KEY_ID=lint AWS_SECRET_ACCESS_KEY=lint AWS_DEFAULT_REGION="$REGION" AWS_REGION="$REGION"
unset AWS_PROFILE AWS_SESSION_TOKEN
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export SAM_CLI_TELEMETRY=0

echo "lint-template: cfn-lint $TEMPLATE" >&2
"$BIN/cfn-lint" --regions "$REGION" -- "$TEMPLATE"

echo "lint-template: openapi-spec-validator docs/openapi.yaml" >&2
"$BIN/openapi-spec-validator" docs/openapi.yaml

echo "lint-template: sam validate $TEMPLATE" >&2
"$BIN/sam" validate --template-file "$TEMPLATE" --region "$REGION"

echo "lint-template: sam validate --lint $TEMPLATE" >&2
"$BIN/sam" validate --lint --template-file "$TEMPLATE" --region "$REGION"
