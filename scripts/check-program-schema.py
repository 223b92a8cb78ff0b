#!/usr/bin/env python3
"""Checks docs/schema/program-config.v1.json against the sample configs and the shared cases.

Run with the project venv (jsonschema and PyYAML come with cfn-lint):

    .local/venv/bin/python scripts/check-program-schema.py

- Every sample program config (events/admin/*.yaml, and the YAML body of
  events/admin/put_program.json) must pass.
- Every case of events/admin/config-cases.json ({name, document, valid, fields, server_only})
  must be decided as listed. A valid case must pass. An invalid case must fail, and for each
  of its `fields` (the paths the server names, `rules[0].award.points`) the schema must report
  an error at that path or above it. A case marked `server_only` is one JSON Schema cannot
  express (unique ids, references between sections, order, time zones): the schema must
  accept it, so the mark is dropped the day the schema learns the check.
  The Rust test `the_shared_config_cases_are_decided_as_listed` (shared/src/domain/program.rs)
  runs the same cases through the server's parser.
- The definitions the program schema shares with the event envelope schema must be identical.

Any disagreement is reported and the script exits 1.
"""

import json
import re
import sys
from pathlib import Path

try:
    import yaml
    from jsonschema import Draft202012Validator, FormatChecker
except ImportError as error:  # pragma: no cover
    sys.exit(f"program schema: needs jsonschema and PyYAML ({error}); run it with .local/venv/bin/python")

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = ROOT / "docs" / "schema" / "program-config.v1.json"
ENVELOPE_PATH = ROOT / "docs" / "schema" / "event-envelope.v1.json"
ADMIN = ROOT / "events" / "admin"
CASES_PATH = ADMIN / "config-cases.json"
# Definitions copied from the event envelope schema so that each schema stands alone.
SHARED_DEFS = ["eventType", "timestamp", "decimal", "currency"]


class Yaml12Loader(yaml.SafeLoader):
    """PyYAML reads YAML 1.1; the server reads YAML 1.2, where an unquoted timestamp is a
    string and only true/false are booleans (`on`, `yes` stay strings)."""


Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def validator():
    schema = json.loads(SCHEMA_PATH.read_text())
    Draft202012Validator.check_schema(schema)
    checker = FormatChecker()
    if "date-time" not in checker.checkers:
        sys.exit("program schema: the date-time format checker is missing (install rfc3339-validator)")
    return schema, Draft202012Validator(schema, format_checker=checker)


def samples():
    """Yields (name, document) of every sample program config."""
    for path in sorted(ADMIN.glob("*.yaml")):
        yield path.name, yaml.load(path.read_text(), Loader=Yaml12Loader)
    for path in sorted(ADMIN.glob("*.json")):
        request = json.loads(path.read_text())
        if isinstance(request, dict) and request.get("routeKey") == "PUT /v1/programs/{program}":
            yield f"{path.name} body", yaml.load(request["body"], Loader=Yaml12Loader)


def components(field: str):
    """`rules[0].when.attributes.amount` → ["rules", 0, "when", "attributes", "amount"];
    `points["deal.registered"]` → ["points", "deal.registered"]; `$` → []."""
    if field == "$":
        return []
    parts = []
    for match in re.finditer(r'\["((?:[^"\\]|\\.)*)"\]|\[(\d+)\]|([^.\[\]]+)', field):
        quoted, index, name = match.groups()
        parts.append(json.loads(f'"{quoted}"') if quoted is not None else int(index) if index else name)
    return parts


def located(error):
    """Where an error is, as path components: for a missing or an unexpected property, the
    property itself (the server names `name`, not the object lacking it)."""
    path = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [p for p in error.validator_value if p not in error.instance]
        return [path + [p] for p in missing]
    if error.validator == "additionalProperties" and error.validator_value is False and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        return [path + [p] for p in error.instance if p not in allowed]
    return [path]


def shown(path) -> str:
    text = ""
    for p in path:
        text += f"[{p}]" if isinstance(p, int) else f'[{json.dumps(p)}]' if "." in p else f".{p}"
    return text.lstrip(".") or "$"


def check_case(check, case):
    """The problem with one case, or None when the schema decides it as listed."""
    errors = list(check.iter_errors(case["document"]))
    if case["valid"]:
        if errors:
            return "expected to pass, schema refused it: " + "; ".join(
                f"{shown(e.absolute_path)}: {e.message[:160]}" for e in errors
            )
        return None
    if case.get("server_only"):
        if errors:
            return "marked server_only, but the schema refuses it: drop the mark"
        return None
    if not errors:
        return "expected to fail, schema accepted it"
    places = [place for e in errors for place in located(e)]
    missed = [
        field
        for field in case["fields"]
        if not any(place == components(field)[: len(place)] for place in places)
    ]
    if missed:
        return f"no schema error at or above {missed}; errors at {sorted({shown(p) for p in places})}"
    return None


def main() -> int:
    schema, check = validator()
    passed, failures = 0, []
    envelope = json.loads(ENVELOPE_PATH.read_text())
    for name in SHARED_DEFS:
        if schema["$defs"][name] != envelope["$defs"][name]:
            failures.append(f"$defs/{name} differs from the event envelope schema's")
        else:
            passed += 1
    for name, document in samples():
        errors = list(check.iter_errors(document))
        if errors:
            detail = "; ".join(f"{shown(e.absolute_path)}: {e.message[:160]}" for e in errors)
            failures.append(f"sample {name}: expected to pass, schema refused it: {detail}")
        else:
            passed += 1
    cases = json.loads(CASES_PATH.read_text())
    names = [case["name"] for case in cases]
    for case in cases:
        if names.count(case["name"]) > 1:
            failures.append(f"case {case['name']!r} is listed twice")
        problem = check_case(check, case)
        if problem:
            failures.append(f"case {case['name']!r}: {problem}")
        else:
            passed += 1
    for failure in failures:
        print(f"MISMATCH {failure}", file=sys.stderr)
    print(f"program schema: {passed} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
