#!/usr/bin/env python3
"""Validate an SBOM against its official JSON schema with Debian's python3-jsonschema: a second
validator, independent of the Ajv ones Strata uses, run on the same schema files.

usage: validate-sbom.py spdx|cyclonedx SCHEMA_DIR FILE
SCHEMA_DIR holds spdx-schema.json (SPDX 2.3), or the CycloneDX library's res/schema folder.
Exit 0 when valid; 1 with the errors on stderr otherwise.
"""
import glob
import json
import os
import sys

import warnings

import jsonschema

# RefResolver is what this Debian version offers for a schema made of several files.
warnings.filterwarnings("ignore", category=DeprecationWarning)


def main() -> int:
    fmt, schema_dir, path = sys.argv[1:4]
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    if fmt == "spdx":
        with open(os.path.join(schema_dir, "spdx-schema.json"), encoding="utf-8") as f:
            schema = json.load(f)
        validator = jsonschema.Draft201909Validator(
            schema, format_checker=jsonschema.FormatChecker()
        )
    elif fmt == "cyclonedx":
        store = {}
        for p in glob.glob(os.path.join(schema_dir, "*.schema.json")):
            with open(p, encoding="utf-8") as f:
                s = json.load(f)
            if "$id" in s:
                store[s["$id"]] = s
        schema = store["http://cyclonedx.org/schema/bom-1.6.schema.json"]
        resolver = jsonschema.RefResolver.from_schema(schema, store=store)
        validator = jsonschema.Draft7Validator(
            schema, resolver=resolver, format_checker=jsonschema.FormatChecker()
        )
    else:
        print(f"unknown format {fmt}", file=sys.stderr)
        return 2
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    for e in errors[:20]:
        print(f"{'/'.join(map(str, e.path))}: {e.message}", file=sys.stderr)
    if not errors:
        print(f"valid {fmt}: {path}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
