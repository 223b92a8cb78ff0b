#!/usr/bin/env python3
"""Fails when a log line written during the tests carries personal data or a secret.

The integration tests record every log line of the process (the handlers' included) as JSON
in `{target}/test-logs/*.jsonl` (see `LocalStack::start_or_reuse`); `scripts/test.sh` runs
this scan after the tests. A line fails when it holds:

- an e-mail address;
- a phone number: E.164 (`+46701234567`), also written with spaces or dashes;
- a key secret: the tests' keys are 40 random alphanumerics (`Deployment::create_key`), so any
  40-character alphanumeric token mixing upper case, lower case and digits (a random one
  lacks one of the three with a probability under 1e-9; hex digests and ids never mix cases);
- a request signature (`v1=` and 64 hex digits: replayable for 300 s), a JWT, a bearer token,
  or an unsubscribe token in a URL.

Findings are printed masked (the kind, file and line, never the value), so the scan's own
output leaks nothing. Exit status: 0 clean, 1 findings, 2 nothing to scan (the recorder did
not run, which would make a clean result meaningless).

Usage: scan-logs.py [DIR_OR_FILE ...]   (default: $CARGO_TARGET_DIR or target, /test-logs)
"""

import os
import re
import sys
from pathlib import Path

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# A plus, a non-zero digit, then digits with optional single spaces or dashes; the digit count
# is checked below (E.164: at most 15, and 7 is the shortest real number with its country code).
PHONE = re.compile(r"(?<![\w+])\+[1-9](?:[ -]?\d){5,16}(?!\d)")
ALPHANUMERIC_40 = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]{40}(?![A-Za-z0-9])")
SIGNATURE = re.compile(r"v1=[0-9a-fA-F]{64}")
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+")
BEARER = re.compile(r"[Bb]earer\s+[A-Za-z0-9._~+/=-]{8,}")
URL_TOKEN = re.compile(r"[?&]token=[A-Za-z0-9._~%-]{8,}")


def is_phone(text):
    return 7 <= sum(c.isdigit() for c in text) <= 15


def is_key_secret(token):
    return (
        any(c.isupper() for c in token)
        and any(c.islower() for c in token)
        and any(c.isdigit() for c in token)
    )


CHECKS = [
    ("e-mail address", EMAIL, lambda _: True),
    ("phone number", PHONE, is_phone),
    ("key secret", ALPHANUMERIC_40, is_key_secret),
    ("request signature", SIGNATURE, lambda _: True),
    ("JWT", JWT, lambda _: True),
    ("bearer token", BEARER, lambda _: True),
    ("token in a URL", URL_TOKEN, lambda _: True),
]


def scan(line):
    """The kinds of sensitive value in `line`, and the line with every one of them masked."""
    kinds = []
    for kind, pattern, confirm in CHECKS:
        def mask(match, kind=kind, confirm=confirm):
            if not confirm(match.group(0)):
                return match.group(0)
            kinds.append(kind)
            return f"<{kind}>"

        line = pattern.sub(mask, line)
    return kinds, line


def log_files(arguments):
    if not arguments:
        target = Path(os.environ.get("CARGO_TARGET_DIR") or Path(__file__).parent.parent / "target")
        arguments = [target / "test-logs"]
    for argument in map(Path, arguments):
        if argument.is_dir():
            yield from sorted(argument.glob("*.jsonl"))
        elif argument.exists():
            yield argument


def main(arguments):
    files = lines = 0
    found = []
    for path in log_files(arguments):
        files += 1
        with open(path, encoding="utf-8", errors="replace") as log:
            for number, line in enumerate(log, 1):
                lines += 1
                kinds, masked = scan(line.rstrip("\n"))
                if kinds:
                    found.append((path, number, kinds, masked))
    for path, number, kinds, masked in found[:50]:
        excerpt = masked if len(masked) <= 300 else masked[:300] + "…"
        print(f"{path}:{number}: {', '.join(kinds)}: {excerpt}", file=sys.stderr)
    if len(found) > 50:
        print(f"… and {len(found) - 50} more lines", file=sys.stderr)
    print(f"log scan: {lines} lines in {files} files, {len(found)} with personal data or secrets")
    if lines == 0:
        print("log scan: nothing to scan: were the integration tests run?", file=sys.stderr)
        return 2
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
