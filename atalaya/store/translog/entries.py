"""Log entries: canonical JSON objects with a ``kind``.

A leaf is the canonical JSON text of one object: keys sorted, no whitespace
(``,`` and ``:`` separators), UTF-8, no NaN or infinity. The same object gives
the same bytes, so anyone can re-derive a leaf hash from the entry.

>>> canonical_json({"kind": "retraction", "b": [1, 2], "a": "é"})
b'{"a":"\\xc3\\xa9","b":[1,2],"kind":"retraction"}'
>>> decode_entry(b'{"kind":"x"}')
{'kind': 'x'}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from atalaya.core.errors import ValidationError

KINDS: dict[str, str] = {
    "overflight": "a sortie-over-territory record (time, distance, depth, entries/exits per territory)",
    "agreement": "a version of an agreement between parties (its content hash and terms)",
    "dissemination": "a product released to a partner (content hash, recipients, marking)",
    "retraction": "a retraction of an earlier entry (its index and the reason)",
}
"""Well-known entry kinds. Any other non-empty ``kind`` is accepted as given."""


def canonical_json(entry: Mapping[str, Any]) -> bytes:
    """The canonical leaf bytes of a JSON object (raises :class:`ValidationError` if it is not one)."""
    if not isinstance(entry, Mapping):
        raise ValidationError(
            f"a log entry must be a JSON object, got {type(entry).__name__}",
            hint='wrap the value in an object with a "kind" field',
        )
    kind = entry.get("kind")
    if not isinstance(kind, str) or not kind:
        raise ValidationError(
            f"log entry has no string 'kind' (keys: {sorted(entry)[:8]})",
            hint=f"add a kind, e.g. one of {', '.join(KINDS)}",
        )
    try:
        text = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValidationError(
            f"log entry of kind {kind!r} is not plain JSON: {e}",
            hint="use strings, numbers (no NaN/inf), booleans, null, lists and objects only",
        ) from e
    return text.encode("utf-8")


def decode_entry(leaf: bytes) -> dict[str, Any]:
    """Parse leaf bytes back into the entry object."""
    try:
        obj = json.loads(leaf.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValidationError(f"log leaf is not UTF-8 JSON: {e}") from e
    if not isinstance(obj, dict):
        raise ValidationError(f"log leaf is JSON but not an object ({type(obj).__name__})")
    return obj
