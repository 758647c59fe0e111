"""CoT value parsing (vectorised, shared with the track readers), CoT types → object kinds and affiliations."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from atalaya.model.observation import ObjectKind

__all__ = [
    "AFFILIATIONS",
    "CONTEXT_AFFILIATIONS",
    "cot_affiliation",
    "cot_kind",
    "parse_float_strings",
    "parse_iso8601_us",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# ---------------------------------------------------------------------------------------------
# Vectorised value parsing (shared with the track readers)
# ---------------------------------------------------------------------------------------------


def parse_float_strings(values: Sequence[str | None] | pa.Array) -> tuple[F64, BoolArray]:
    """Parse decimal strings to float64; missing → NaN. Returns ``(values, bad)``.

    ``bad`` marks strings that were present but not numbers (their value is NaN).

    >>> v, bad = parse_float_strings(["1.5", None, "x", " 2"])
    >>> v.tolist()[0], bad.tolist()
    (1.5, [False, False, True, False])
    >>> parse_float_strings([])[0].shape
    (0,)
    """
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.float64), np.zeros(0, dtype=np.bool_)
    arr = values if isinstance(values, pa.Array) else pa.array(values, type=pa.string())
    try:
        out: F64 = arr.cast(pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        return out, np.zeros(n, dtype=np.bool_)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    out = np.full(n, np.nan, dtype=np.float64)
    bad = np.zeros(n, dtype=np.bool_)
    for i, s in enumerate(arr.to_pylist()):
        if s is None:
            continue
        try:
            out[i] = float(s)
        except ValueError:
            bad[i] = True
    return out, bad


def _iso_one(s: str) -> int:
    dt = datetime.fromisoformat(s.strip())
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)  # CoT and GPX times are UTC; a missing zone means UTC
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def parse_iso8601_us(values: Sequence[str | None] | pa.Array) -> tuple[I64, BoolArray]:
    """Parse ISO 8601 times to int64 µs since the epoch, UTC. Returns ``(us, bad)``.

    Missing or unparseable values are flagged in ``bad`` (their value is 0). Times
    without a zone are taken as UTC. Vectorised (Arrow) for the common case; only a
    batch with an odd value falls back to parsing one by one.

    >>> us, bad = parse_iso8601_us(["1970-01-01T00:00:01Z", "nope", None, "1970-01-01T00:00:00.000002"])
    >>> us.tolist(), bad.tolist()
    ([1000000, 0, 0, 2], [False, True, True, False])
    """
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.bool_)
    arr = values if isinstance(values, pa.Array) else pa.array(values, type=pa.string())
    if arr.null_count == 0:
        try:
            ns = arr.cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64()).to_numpy()
            return ns // 1000, np.zeros(n, dtype=np.bool_)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    out = np.zeros(n, dtype=np.int64)
    bad = np.zeros(n, dtype=np.bool_)
    for i, s in enumerate(arr.to_pylist()):
        if s is None:
            bad[i] = True
            continue
        try:
            out[i] = _iso_one(s)
        except (ValueError, OverflowError):
            bad[i] = True
    return out, bad


# ---------------------------------------------------------------------------------------------
# CoT type → object kind
# ---------------------------------------------------------------------------------------------

_KIND_CACHE: dict[str, str] = {}


def cot_kind(cot_type: str | None) -> str:
    """Object kind for a CoT type string (2525B-derived atoms).

    ``a-?-A…`` aircraft; ``a-?-S…`` (sea surface) and ``a-?-U…`` (subsurface, e.g.
    semi-submersibles) vessel; ``a-?-G-E-V…`` vehicle; ``a-?-G-U…`` (ground units,
    which in CoT are people on foot or teams) person; ``a-?-G-I…`` (installations)
    structure; everything else, including ``b-m-p…`` map points, unknown.

    >>> cot_kind("a-f-G-U-C"), cot_kind("a-n-G-I"), cot_kind("a-u-G"), cot_kind(None), cot_kind("")
    ('person', 'structure', 'unknown', 'unknown', 'unknown')
    """
    if not cot_type:
        return ObjectKind.UNKNOWN.value
    hit = _KIND_CACHE.get(cot_type)
    if hit is not None:
        return hit
    atoms = cot_type.split("-")
    kind = ObjectKind.UNKNOWN.value
    if len(atoms) >= 3 and atoms[0] == "a":
        dim = atoms[2]
        rest = atoms[3:]
        if dim == "A":
            kind = ObjectKind.AIRCRAFT.value
        elif dim in ("S", "U"):
            kind = ObjectKind.VESSEL.value
        elif dim == "G" and rest:
            if rest[0] == "E" and len(rest) >= 2 and rest[1] == "V":
                kind = ObjectKind.VEHICLE.value
            elif rest[0] == "U":
                kind = ObjectKind.PERSON.value
            elif rest[0] == "I":
                kind = ObjectKind.STRUCTURE.value
    if len(_KIND_CACHE) < 4096:
        _KIND_CACHE[cot_type] = kind
    return kind


AFFILIATIONS = frozenset("fhnusjkap")
"""CoT affiliation atoms (the second atom of an ``a-…`` type): friend, hostile, neutral, unknown, suspect, joker,
faker, assumed friend, pending."""
CONTEXT_AFFILIATIONS = frozenset("fna")
"""Affiliations that are context, never suspects (friend, neutral, assumed friend)."""


def cot_affiliation(cot_type: str | None) -> str | None:
    """The affiliation atom of a CoT type (``a-f-G…`` → ``"f"``); ``None`` for other types.

    >>> cot_affiliation("a-f-G-U-C-I"), cot_affiliation("a-h-A"), cot_affiliation("b-m-p-s-p-i"), cot_affiliation("a")
    ('f', 'h', None, None)
    """
    if not cot_type or len(cot_type) < 3 or not cot_type.startswith("a-"):
        return None
    atom = cot_type[2]
    return atom if atom in AFFILIATIONS and (len(cot_type) == 3 or cot_type[3] == "-") else None
