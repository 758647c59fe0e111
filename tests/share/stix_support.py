"""Shared checks of the STIX tests: the OASIS schemas (vendored and those stix2-validator ships) and the oracles."""

from __future__ import annotations

import json
import re
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import stix2
import stix2validator
from referencing import Registry, Resource

DATA = Path(__file__).parent / "data" / "stix-schemas"
TLP2_SCHEMA = DATA / "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d.json"
ACS3_SCHEMA = DATA / "isa-acs-3-0.json"
VALIDATOR_SCHEMAS = Path(stix2validator.__file__).parent / "schemas-2.1" / "schemas"

# UUIDv4 is a SHOULD of STIX 2.1 (§2.9); our ids are UUIDv5 on purpose (re-export gives the same ids), so the
# validator's best-practice warning 103 is off. Everything else it checks stays on, errors and warnings alike.
VALIDATOR_OPTIONS = stix2validator.ValidationOptions(version="2.1", strict=False, disabled=["103"])


@cache
def registry() -> Registry:  # type: ignore[type-arg]
    """The OASIS STIX 2.1 JSON schemas by their ``$id`` (those the OASIS extension schemas refer to)."""
    resources = []
    for path in VALIDATOR_SCHEMAS.rglob("*.json"):
        doc = json.loads(path.read_text(encoding="utf-8"))
        if "$id" in doc:
            resources.append((doc["$id"], Resource.from_contents(doc)))
    return Registry().with_resources(resources)


@cache
def _validator(schema_path: Path) -> jsonschema.Draft7Validator:
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    return jsonschema.Draft7Validator(schema, registry=registry())


def schema_errors(schema_path: Path, instance: Any) -> list[str]:
    """Errors of ``instance`` against a vendored OASIS schema (draft-07)."""
    return [f"{list(e.path)}: {e.message}" for e in _validator(schema_path).iter_errors(instance)]


def validator_problems(bundle: dict[str, Any]) -> list[str]:
    """Errors and warnings of stix2-validator (the OASIS schemas plus its STIX 2.1 checks) on a bundle."""
    res = stix2validator.validate_instance(bundle, VALIDATOR_OPTIONS)
    results = res if isinstance(res, list) else [res]
    out = []
    for r in results:
        out += [f"error {getattr(r, 'object_id', '')}: {e}" for e in r.errors]
        # {202}: STIX suggests relationship types for its own SDOs only; ours are permitted, never "suggested"
        out += [f"warning {getattr(r, 'object_id', '')}: {w}" for w in r.warnings
                if not ("{202}" in str(w) and "'x-atalaya-" in str(w))]  # fmt: skip
    return out


def stix2_round_trip(bundle: dict[str, Any]) -> dict[str, Any]:
    """The bundle parsed by the ``stix2`` library (checking every object it knows) and serialised again."""
    parsed = stix2.parse(bundle, allow_custom=True)
    return dict(json.loads(parsed.serialize()))


_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def same_instants(value: Any) -> Any:
    """``value`` with every STIX timestamp as a datetime (``stix2`` writes ``.250Z`` as ``.25Z``: the same instant)."""
    if isinstance(value, dict):
        return {k: same_instants(v) for k, v in value.items()}
    if isinstance(value, list):
        return [same_instants(v) for v in value]
    if isinstance(value, str) and _TS.match(value):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value
