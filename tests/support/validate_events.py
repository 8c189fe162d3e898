"""Validates event envelopes against the catalogue's JSON Schemas with the
jsonschema package: the envelope schema, then the schema of each topic's
data. Prints one line per problem; exits 1 when there is any.

Usage: validate_events.py SCHEMA_DIR < JSON list of envelopes"""

import json
import pathlib
import sys

from jsonschema import Draft202012Validator, FormatChecker

schemas = pathlib.Path(sys.argv[1])
checker = FormatChecker()
envelope = Draft202012Validator(json.loads((schemas / "envelope.json").read_text()), format_checker=checker)
problems = []
for event in json.load(sys.stdin):
    where = f"{event.get('type')} {event.get('id')}"
    problems += [f"{where}: envelope: {e.message}" for e in envelope.iter_errors(event)]
    path = schemas / f"{event.get('type')}.v1.json"
    if not path.exists():
        problems.append(f"{where}: no schema in the catalogue")
        continue
    data = Draft202012Validator(json.loads(path.read_text()), format_checker=checker)
    problems += [f"{where}: data: {e.message}" for e in data.iter_errors(event.get("data"))]
for p in problems:
    print(p)
sys.exit(1 if problems else 0)
