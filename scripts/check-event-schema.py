#!/usr/bin/env python3
"""Checks docs/schema/event-envelope.v1.json against the sample requests and a few inline cases.

Run with the project venv (jsonschema comes with cfn-lint):

    .local/venv/bin/python scripts/check-event-schema.py

Every case says whether the schema must accept or refuse it; any disagreement is reported
and the script exits 1. The samples in events/ingest/ are API Gateway v2 payloads whose
`body` is the posted JSON text.
"""

import copy
import json
import sys
from pathlib import Path

try:
    from jsonschema import Draft202012Validator, FormatChecker
    from referencing import Registry, Resource
except ImportError as error:  # pragma: no cover
    sys.exit(f"event schema: needs the jsonschema package ({error}); run it with .local/venv/bin/python")

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = ROOT / "docs" / "schema" / "event-envelope.v1.json"
SAMPLES = ROOT / "events" / "ingest"


def body_of(sample: str):
    payload = json.loads((SAMPLES / sample).read_text())
    return json.loads(payload["body"])


def validators():
    schema = json.loads(SCHEMA_PATH.read_text())
    Draft202012Validator.check_schema(schema)
    registry = Registry().with_resource(schema["$id"], Resource.from_contents(schema))
    checker = FormatChecker()
    if "date-time" not in checker.checkers:
        sys.exit("event schema: the date-time format checker is missing (install rfc3339-validator)")
    envelope = Draft202012Validator(schema, registry=registry, format_checker=checker)
    request = Draft202012Validator(
        {"$ref": schema["$id"] + "#/$defs/request"}, registry=registry, format_checker=checker
    )
    return envelope, request


def event(**changes):
    """A valid contract.started envelope with `changes` applied (None deletes a field)."""
    base = {
        "id": "c-1",
        "participant": "rep-anna",
        "type": "contract.started",
        "occurred_at": "2026-11-03T09:15:00+01:00",
        "attributes": {"contract_id": "K-9", "financed_volume": "250000.50", "currency": "SEK"},
    }
    for key, value in changes.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return base


def attrs(**changes):
    attributes = copy.deepcopy(event()["attributes"])
    attributes.update(changes)
    return attributes


def cases():
    """Yields (name, validator kind, instance, should pass)."""
    for sample in ["batch_all_types.json", "single_contract.json", "batch_with_invalid.json"]:
        body = body_of(sample)
        events = body["events"] if "events" in body else [body]
        if sample == "batch_with_invalid.json":
            expected = {0: True, 1: False, 2: False, 3: True}
        else:
            expected = {i: True for i in range(len(events))}
        assert len(events) == len(expected), f"{sample} has {len(events)} events"
        for i, value in enumerate(events):
            yield f"{sample} events[{i}] ({value.get('type')})", "envelope", value, expected[i]
        if sample != "batch_with_invalid.json":
            yield f"{sample} body", "request", body, True

    yield "missing occurred_at", "envelope", event(occurred_at=None), False
    yield "offsetless occurred_at", "envelope", event(occurred_at="2026-11-03T09:15:00"), False
    yield "program field present", "envelope", {**event(), "program": "acme"}, False
    yield "lower-case currency", "envelope", event(attributes=attrs(currency="sek")), False
    yield "negative amount", "envelope", event(attributes=attrs(financed_volume=-1)), False
    yield "negative amount string", "envelope", event(attributes=attrs(financed_volume="-1")), False
    yield "7 decimal places", "envelope", event(attributes=attrs(financed_volume="1.0000001")), False
    yield "'#' in participant", "envelope", event(participant="rep#1"), False
    yield "space in id", "envelope", event(id="c 1"), False
    yield "upper-case type", "envelope", event(type="Deal.Registered"), False
    yield "unknown type, any attributes", "envelope", event(
        type="acme.webinar_attended", attributes={"webinar": 12}
    ), True
    yield "deal amount without currency", "envelope", event(
        type="deal.registered", attributes={"deal_id": "D-1", "amount": "10"}
    ), False
    yield "quiz with 51 questions", "envelope", event(
        type="quiz.completed", attributes={"quiz_id": "q", "questions": 51, "correct": 3}
    ), False
    yield "sale with quantity 0", "envelope", event(
        type="sale.closed",
        attributes={"amount": 1, "currency": "SEK", "products": [{"sku": "X", "quantity": 0}]},
    ), False
    yield "reserved points.adjusted", "envelope", event(
        type="points.adjusted", attributes={"points": 500, "reason": "booth duty"}
    ), False
    yield "reserved points.bonus", "envelope", event(
        type="points.bonus", attributes={"points": 500, "reason": "monthly top 3"}
    ), False
    yield "empty batch", "request", {"events": []}, False
    yield "batch of 501", "request", {"events": [event(id=f"e-{i}") for i in range(501)]}, False
    yield "batch with extra member", "request", {"events": [event()], "program": "acme"}, False


def main() -> int:
    envelope, request = validators()
    by_kind = {"envelope": envelope, "request": request}
    passed, failures = 0, []
    for name, kind, instance, should_pass in cases():
        errors = sorted(by_kind[kind].iter_errors(instance), key=lambda e: list(e.absolute_path))
        if (not errors) == should_pass:
            passed += 1
            continue
        if should_pass:
            detail = "; ".join(
                f"{'/'.join(map(str, e.absolute_path)) or '$'}: {e.message[:200]}" for e in errors
            )
            failures.append(f"{name}: expected to pass, schema refused it: {detail}")
        else:
            failures.append(f"{name}: expected to fail, schema accepted it")
    for failure in failures:
        print(f"MISMATCH {failure}", file=sys.stderr)
    print(f"event schema: {passed} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
