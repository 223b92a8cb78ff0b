#!/usr/bin/env bash
# Release check (issue 7): builds every function of infra/template.yaml for Lambda's arm64
# (provided.al2023) with `sam build`, offline, then checks the artifacts.
#
# Needs only python3, rustup and the package registries (PyPI, crates.io) plus rustup's dist
# server: it installs into .venv-release/ (gitignored) the SAM CLI, cargo-lambda and Zig
# (the `ziglang` wheel) from PyPI, adds the Rust target aarch64-unknown-linux-gnu, and runs
# `sam build` from the repository root (samconfig.toml's default section names the template).
# It then checks that .aws-sam/build/<Function>/bootstrap exists for every function of the
# template, is an ELF executable for aarch64, and is at most 8 MiB (8,388,608 bytes).
#
# Idempotent: the venv is reused while the pinned versions are unchanged, and cargo's build is
# incremental. The full output of `sam build` goes to .aws-sam/release-build.log.
# Not part of the test command (scripts/test.sh): a cold build takes tens of minutes.
set -euo pipefail

SAM_CLI_VERSION=1.170.0
CARGO_LAMBDA_VERSION=1.9.2
ZIGLANG_VERSION=0.17.0
TARGET=aarch64-unknown-linux-gnu
MAX_BYTES=8388608 # 8 MiB

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv-release"
STAMP="$VENV/release.stamp"
WANT="sam=$SAM_CLI_VERSION cargo-lambda=$CARGO_LAMBDA_VERSION ziglang=$ZIGLANG_VERSION"
LOG="$ROOT/.aws-sam/release-build.log"
start=$SECONDS

say() { echo "release-build: $*" >&2; }

# --- tools -----------------------------------------------------------------------------------
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$WANT" || ! -x "$VENV/bin/sam" || ! -x "$VENV/bin/cargo-lambda" ]]; then
  command -v python3 >/dev/null || { say "python3 not found"; exit 1; }
  if [[ ! -x "$VENV/bin/python" ]]; then
    say "creating $VENV"
    if ! python3 -m venv "$VENV" 2>/dev/null; then
      # Debian's python3 without python3-venv has no ensurepip: bootstrap pip from the host's pip.
      rm -rf "$VENV"
      python3 -m venv --without-pip "$VENV"
      python3 -m pip --python "$VENV/bin/python" install -q --disable-pip-version-check pip
    fi
  fi
  say "installing $WANT (pip)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    "aws-sam-cli==$SAM_CLI_VERSION" \
    "cargo-lambda==$CARGO_LAMBDA_VERSION" \
    "ziglang==$ZIGLANG_VERSION"
  # cargo-lambda (cargo-zigbuild) runs `zig`; the wheel ships it as `python -m ziglang`.
  cat >"$VENV/bin/zig" <<EOF
#!/bin/sh
exec "$VENV/bin/python" -m ziglang "\$@"
EOF
  chmod +x "$VENV/bin/zig"
  printf '%s\n' "$WANT" >"$STAMP"
fi
export PATH="$VENV/bin:$PATH"
say "$(sam --version), $(cargo-lambda --version 2>/dev/null || cargo lambda --version), zig $(zig version)"

# The toolchain of rust-toolchain.toml; a no-op when the target is there already.
rustup target add "$TARGET" >/dev/null 2>&1 || rustup target add "$TARGET"

# --- build -----------------------------------------------------------------------------------
# No AWS account is needed: dummy credentials and a region keep the SAM CLI from looking for
# a profile; `sam build` makes no AWS call.
export SAM_CLI_TELEMETRY=0 AWS_REGION=eu-north-1 AWS_DEFAULT_REGION=eu-north-1
export AWS_ACCESS_KEY_ID=release AWS_SECRET_ACCESS_KEY=release
unset AWS_PROFILE AWS_SESSION_TOKEN
mkdir -p "$ROOT/.aws-sam"
say "sam build (log: ${LOG#"$ROOT"/})"
build_start=$SECONDS
if ! sam build >"$LOG" 2>&1; then
  tail -n 60 "$LOG" >&2
  say "sam build failed; the whole output is in $LOG"
  exit 1
fi
say "sam build took $((SECONDS - build_start)) s"

# --- checks ----------------------------------------------------------------------------------
# Every AWS::Serverless::Function of the template; the ELF header is read directly, since
# `file` may be missing: EI_CLASS 2 (64-bit), EI_DATA 1 (little endian), e_type 2 (EXEC) or
# 3 (DYN, a position-independent executable), e_machine 0xB7 (AArch64).
"$VENV/bin/python" - "$ROOT/infra/template.yaml" "$ROOT/.aws-sam/build" "$MAX_BYTES" <<'EOF'
import os
import struct
import sys

from samcli.yamlhelper import yaml_parse

template, build_dir, max_bytes = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(template) as f:
    resources = yaml_parse(f.read())["Resources"]
functions = [name for name, r in resources.items() if r["Type"] == "AWS::Serverless::Function"]
failures = []
total = 0
print(f"{'function':<16} {'bytes':>10} {'MB':>6} {'MiB':>6}  check")
for name in functions:
    path = os.path.join(build_dir, name, "bootstrap")
    if not os.path.isfile(path):
        failures.append(f"{name}: {path} missing")
        print(f"{name:<16} {'-':>10} {'-':>6} {'-':>6}  missing")
        continue
    with open(path, "rb") as f:
        head = f.read(20)
    size = os.path.getsize(path)
    total += size
    problems = []
    if head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
        problems.append("not a 64-bit little-endian ELF file")
    else:
        e_type, e_machine = struct.unpack_from("<HH", head, 16)
        if e_machine != 0xB7:
            problems.append(f"e_machine 0x{e_machine:X}, not AArch64 (0xB7)")
        if e_type not in (2, 3):
            problems.append(f"e_type {e_type}, not an executable")
    if not os.access(path, os.X_OK):
        problems.append("not executable")
    if size > max_bytes:
        problems.append(f"over {max_bytes:,} bytes")
    failures += [f"{name}: {p}" for p in problems]
    print(f"{name:<16} {size:>10,} {size / 1e6:>6.2f} {size / 2**20:>6.2f}  {'; '.join(problems) or 'ok: ELF aarch64'}")
print(f"{'total':<16} {total:>10,} {total / 1e6:>6.2f} {total / 2**20:>6.2f}")
if failures:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
EOF
say "ok: every bootstrap is an arm64 ELF executable within 8 MiB; $((SECONDS - start)) s in all"
