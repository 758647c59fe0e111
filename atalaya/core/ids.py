"""Identifiers.

Objects whose content defines their identity (observations, log leaves,
products) get content-hash ids; curated objects (sites, tracks, entities) get
stable ids derived from their kind and a key, so re-running an analysis gives
the same ids.

Observation ids are computed for millions of rows at a time, so they are built
from vectorised 64-bit mixing (SplitMix64 finaliser, two independent lanes =
128 bits) over the identity-defining columns; strings are hashed once per
distinct value (BLAKE2b) and then mixed as integers.

>>> len(content_id("x"))
32
>>> import numpy as np
>>> h = mix64(np.array([0, 1, 2], dtype=np.uint64))
>>> h.dtype, len(set(h.tolist()))
(dtype('uint64'), 3)
>>> mix64(np.array([], dtype=np.uint64)).shape
(0,)
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import pyarrow as pa

U64 = npt.NDArray[np.uint64]

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)

OBS_ID_TYPE = pa.binary(16)


def content_id(*parts: str | bytes, size: int = 16) -> str:
    """Hex BLAKE2b digest of the parts (unit-separated), ``2*size`` characters."""
    h = hashlib.blake2b(digest_size=size)
    for p in parts:
        h.update(p.encode("utf-8") if isinstance(p, str) else p)
        h.update(b"\x1f")
    return h.hexdigest()


def prefixed_id(prefix: str, *parts: str | bytes) -> str:
    """A readable, stable id such as ``site--3f2a…`` (STIX-like ``type--hash``)."""
    return f"{prefix}--{content_id(*parts)}"


def new_run_id() -> str:
    """A time-ordered unique id for runs (ingest, analysis): UUID v7-like hex."""
    import time

    ms = int(time.time() * 1000)
    rand = uuid.uuid4().int & ((1 << 80) - 1)
    return f"{(ms << 80) | rand:032x}"


def mix64(x: U64) -> U64:
    """SplitMix64 finaliser, elementwise. Bijective on uint64."""
    z = np.asarray(x).astype(np.uint64, copy=True)
    if z.ndim != 1:
        z = z.reshape(-1)
        _mix64_into(z, np.empty_like(z))
        return z.reshape(np.shape(x))
    tmp = np.empty(min(len(z), _CHUNK), dtype=np.uint64)
    for s in range(0, len(z), _CHUNK):
        part = z[s : s + _CHUNK]
        _mix64_into(part, tmp[: len(part)])
    return z


_CHUNK = 32_768
"""Elements per step of the vectorised kernels: their working set stays in the CPU's L2 cache."""


def _mix64_into(z: U64, tmp: U64, src: U64 | None = None) -> None:
    """SplitMix64 finaliser of ``z`` in place, or of ``src`` into ``z`` (``tmp``: scratch of the same length)."""
    with np.errstate(over="ignore"):
        if src is None:
            z += _GOLDEN
        else:
            np.add(src, _GOLDEN, out=z)
        np.right_shift(z, _S30, out=tmp)
        z ^= tmp
        z *= _M1
        np.right_shift(z, _S27, out=tmp)
        z ^= tmp
        z *= _M2
        np.right_shift(z, _S31, out=tmp)
        z ^= tmp


def combine64(acc: U64, x: U64) -> U64:
    """Order-dependent combination of two hash lanes."""
    with np.errstate(over="ignore"):
        return mix64(acc ^ (mix64(x) + _GOLDEN + (acc << np.uint64(6)) + (acc >> np.uint64(2))))


_ZOBRIST_POS = 256
_COLUMNWISE_MAX = 24
"""Strings up to this many bytes are hashed position by position (the same values, less memory traffic)."""
_ZOBRIST: U64 | None = None
_NULL_HASH = np.uint64(0x6E756C6C6E756C6C)  # "nullnull"


_BYTE_TABLES: tuple[U64, U64] | None = None


def _byte_tables() -> tuple[U64, U64]:
    """A random 64-bit value per byte value, and odd multipliers per position (both fit in L1/L2 caches)."""
    global _BYTE_TABLES
    if _BYTE_TABLES is None:
        byte_t = mix64(np.arange(256, dtype=np.uint64) ^ np.uint64(0xD6E8FEB86659FD93))
        pow_t = mix64(np.arange(_ZOBRIST_POS, dtype=np.uint64) + np.uint64(0xA0761D6478BD642F)) | np.uint64(1)
        _BYTE_TABLES = (byte_t, pow_t)
    return _BYTE_TABLES


def _zobrist() -> U64:
    global _ZOBRIST
    if _ZOBRIST is None:
        _ZOBRIST = mix64(np.arange(_ZOBRIST_POS * 256, dtype=np.uint64) ^ np.uint64(0xC2B2AE3D27D4EB4F))
    return _ZOBRIST


_POSITION_TABLES: U64 | None = None


def _position_tables() -> U64:
    """(random value of each byte value) × (multiplier of position k), for the positions hashed column by column."""
    global _POSITION_TABLES
    if _POSITION_TABLES is None:
        byte_t, pow_t = _byte_tables()
        with np.errstate(over="ignore"):
            _POSITION_TABLES = pow_t[:_COLUMNWISE_MAX, None] * byte_t[None, :]
    return _POSITION_TABLES


def _hash_short_strings(
    data: npt.NDArray[np.uint8], starts: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64], acc: U64
) -> None:
    """Add each string's sum of (random value of byte k × multiplier of position k) to ``acc``, in place.

    Position by position over cache-sized slices of the strings, with branch-free steps: indices never leave
    their table (``mode="clip"`` skips the bound checks), and positions some strings of a slice lack are
    masked by multiplying with 0/1 (positions every string has need no mask).
    """
    tables = _position_tables()
    n = len(starts)
    step = min(n, _CHUNK)
    pos = np.empty(step, dtype=np.int64)
    codes = np.empty(step, dtype=np.uint8)
    val = np.empty(step, dtype=np.uint64)
    has = np.empty(step, dtype=bool)
    with np.errstate(over="ignore"):
        for s in range(0, n, step):
            st, ln, a = starts[s : s + step], lengths[s : s + step], acc[s : s + step]
            m = len(st)
            p, c, v, h = pos[:m], codes[:m], val[:m], has[:m]
            shortest, longest = int(ln.min()), int(ln.max())
            np.copyto(p, st)
            for k in range(longest):
                np.take(data, p, out=c, mode="clip")  # past a string's end: another string's byte, masked below
                np.take(tables[k], c, out=v, mode="clip")
                if k >= shortest:
                    np.greater(ln, k, out=h)
                    np.multiply(v, h, out=v)
                a += v
                p += 1


def _int_values(a: pa.Array) -> npt.NDArray[np.integer]:
    """The values of an integer Arrow array as a NumPy view (null slots unspecified), without pyarrow's NumPy
    conversion (which imports pandas the first time it runs)."""
    kind = "i" if pa.types.is_signed_integer(a.type) else "u"
    dt = np.dtype(f"{kind}{a.type.bit_width // 8}")
    if len(a) == 0:
        return np.zeros(0, dtype=dt)
    return np.frombuffer(a.buffers()[1], dtype=dt, count=len(a), offset=a.offset * dt.itemsize)


def _valid(a: pa.Array) -> npt.NDArray[np.bool_] | None:
    """Which entries of ``a`` are not null (``None``: all of them)."""
    if a.null_count == 0:
        return None
    buf = a.buffers()[0]
    if buf is None:
        return np.zeros(len(a), dtype=bool)
    bits = np.unpackbits(np.frombuffer(buf, dtype=np.uint8), count=a.offset + len(a), bitorder="little")
    return bits[a.offset :].view(np.bool_)


def _hash_plain_strings(arr: pa.Array, seed: int) -> U64:
    """Hash of each string: sum over its bytes of (random value of the byte × odd multiplier of its position),
    then mixed with the length. Positions past 256 use a random value per (position, byte) instead."""
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = arr.cast(pa.large_string())
    n = len(arr)
    width = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(arr.buffers()[1], dtype=width, count=arr.offset + n + 1)[arr.offset :].astype(np.int64)
    lengths = np.diff(offsets)
    total = int(offsets[-1] - offsets[0])
    acc = np.zeros(n, dtype=np.uint64)
    if total:
        data = np.frombuffer(arr.buffers()[2], dtype=np.uint8, count=int(offsets[-1]))[int(offsets[0]) :]
        starts = offsets[:-1] - offsets[0]
        longest = int(lengths.max())
        if longest <= _COLUMNWISE_MAX:  # short identifiers: one pass per character position over all strings
            _hash_short_strings(data, starts, lengths, acc)
            with np.errstate(over="ignore"):
                out = mix64(acc ^ mix64(lengths.astype(np.uint64) + np.uint64(seed)))
            valid = _valid(arr)
            if valid is not None:
                out[~valid] = _NULL_HASH
            return out
        pos = np.arange(total, dtype=np.int64)
        pos -= np.repeat(starts, lengths)
        if longest <= _ZOBRIST_POS:  # small cache-resident tables, no masks
            byte_t, pow_t = _byte_tables()
            with np.errstate(over="ignore"):
                contrib = byte_t[data] * pow_t[pos]
        else:
            short = pos < _ZOBRIST_POS
            contrib = np.empty(total, dtype=np.uint64)
            contrib[short] = _zobrist()[(pos[short] << 8) | data[short]]
            far = ~short
            contrib[far] = mix64((pos[far].astype(np.uint64) << np.uint64(8)) | data[far].astype(np.uint64))
        with np.errstate(over="ignore"):
            cs = np.concatenate([np.zeros(1, dtype=np.uint64), np.cumsum(contrib, dtype=np.uint64)])
            acc = cs[starts + lengths] - cs[starts]
    with np.errstate(over="ignore"):
        out = mix64(acc ^ mix64(lengths.astype(np.uint64) + np.uint64(seed)))
    valid = _valid(arr)
    if valid is not None:
        out[~valid] = _NULL_HASH
    return out


def _strings_to_arrow(values: Sequence[str | None]) -> pa.Array:
    """Build a large_string array from Python strings without pyarrow's pandas detection (slow import)."""
    enc = [b"" if v is None else str(v).encode("utf-8") for v in values]
    offsets = np.zeros(len(enc) + 1, dtype=np.int64)
    if enc:
        np.cumsum([len(b) for b in enc], out=offsets[1:])
    valid = np.array([v is not None for v in values], dtype=bool)
    mask = None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little").tobytes())
    return pa.LargeStringArray.from_buffers(
        len(enc), pa.py_buffer(offsets.tobytes()), pa.py_buffer(b"".join(enc)), mask, int((~valid).sum())
    )


def hash_strings(values: pa.Array | pa.ChunkedArray | Sequence[str | None], *, seed: int = 0) -> U64:
    """64-bit hash of each string (nulls hash to a fixed value), vectorised over the UTF-8 bytes.

    Dictionary-encoded input hashes only its dictionary.

    >>> h = hash_strings(["a", "b", "a", None])
    >>> bool(h[0] == h[2]), bool(h[0] != h[1]), bool(h[3] == hash_strings([None])[0])
    (True, True, True)
    >>> bool(hash_strings(["ab"])[0] != hash_strings(["ba"])[0])
    True
    >>> hash_strings([]).shape
    (0,)
    """
    arr = values if isinstance(values, pa.Array | pa.ChunkedArray) else _strings_to_arrow(values)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if len(arr) == 0:
        return np.zeros(0, dtype=np.uint64)
    if pa.types.is_dictionary(arr.type):
        coded = hash_string_codes(arr, seed=seed)
        out: U64 = coded.table[coded.codes]
        return out
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = arr.cast(pa.string())
    return _hash_plain_strings(arr, seed)


def hash_string_codes(values: pa.DictionaryArray, *, seed: int = 0) -> Coded:
    """:func:`hash_strings` of a dictionary array as the hashes of its values and each row's code into them
    (a null row points at a last entry holding the null hash).

    >>> arr = pa.array(["b", None, "a", "b"]).dictionary_encode()
    >>> c = hash_string_codes(arr)
    >>> bool((c.table[c.codes] == hash_strings(["b", None, "a", "b"])).all())
    True
    """
    table = _hash_plain_strings(values.dictionary.cast(pa.string()), seed) if len(values.dictionary) else _EMPTY
    codes = _int_values(values.indices)
    valid = _valid(values.indices)
    if valid is not None:
        table = np.append(table, _NULL_HASH)
        codes = np.where(valid, codes, len(table) - 1)
    return Coded(table, codes)


_EMPTY: U64 = np.zeros(0, dtype=np.uint64)


def float_bits(x: npt.NDArray[np.floating], decimals: int) -> U64:
    """Quantise floats to ``decimals`` places and return the integer as uint64 (NaN → fixed value)."""
    q = np.multiply(np.asarray(x, dtype=np.float64), 10.0**decimals)
    np.rint(q, out=q)  # what np.round does for 0 decimals, in place
    if q.size and not (np.isfinite(q.min()) and np.isfinite(q.max())):  # NaN or ±inf somewhere
        q[~np.isfinite(q)] = -(2.0**62)
    return q.astype(np.int64).view(np.uint64)


_P1 = np.uint64(0x9E3779B185EBCA87)
_P2 = np.uint64(0xC2B2AE3D27D4EB4F)
_P3 = np.uint64(0x165667B19E3779F9)
_P4 = np.uint64(0x85EBCA77C2B2AE63)


_A0 = np.uint64(0x243F6A8885A308D3)
_B0 = np.uint64(0x13198A2E03707344)
_S29 = np.uint64(29)
_S33 = np.uint64(33)
_S37 = np.uint64(37)


class Coded(NamedTuple):
    """A column given as ``table[codes]`` (e.g. the hashes of a dictionary-encoded string column):
    :func:`hash_columns` mixes the few table values once instead of every row."""

    table: U64
    """Values."""
    codes: npt.NDArray[np.integer]
    """Each row's index into ``table`` (each must be a valid index: they are not checked)."""


Column = U64 | np.uint64 | Coded
"""A column for :func:`hash_columns`: one value per row, one value for every row, or a coded column."""


def _rotl(x: np.uint64, r: int) -> np.uint64:
    return np.uint64(((int(x) << r) | (int(x) >> (64 - r))) & 0xFFFFFFFFFFFFFFFF)


def hash_columns(columns: Iterable[Column]) -> tuple[U64, U64]:
    """Two 64-bit lanes over the given uint64 columns (128-bit id material), order-dependent.

    Each column is mixed once (SplitMix64) and folded into both lanes with
    different multiply-rotate steps (xxHash-style accumulators); both lanes get a
    final avalanche. A column may be a single value for every row (``np.uint64``) or
    :class:`Coded`; either gives the same lanes as the column spelt out row by row, with less work.

    >>> a, b = hash_columns([np.array([1, 2], dtype=np.uint64), np.array([3, 3], dtype=np.uint64)])
    >>> bool(a[0] != a[1]) and bool(b[0] != b[1])
    True
    >>> x, y = hash_columns([np.array([3], dtype=np.uint64), np.array([1], dtype=np.uint64)])
    >>> bool(x[0] != a[0])
    True
    >>> c, d = hash_columns([np.uint64(1), Coded(np.array([3, 7], dtype=np.uint64), np.array([0, 0]))])
    >>> e, f = hash_columns([np.array([1, 1], dtype=np.uint64), np.array([3, 3], dtype=np.uint64)])
    >>> bool((c == e).all() and (d == f).all())
    True
    """
    cols: list[U64 | np.uint64 | tuple[U64, npt.NDArray[np.integer]]] = []
    n = -1
    for given in columns:
        if isinstance(given, Coded):
            cols.append((mix64(np.asarray(given.table, dtype=np.uint64)), np.asarray(given.codes)))
            n = len(given.codes)
        elif isinstance(given, np.uint64):
            cols.append(mix64(np.array([given], dtype=np.uint64))[0])
        else:
            arr = np.asarray(given, dtype=np.uint64)
            cols.append(arr)
            n = len(arr)
    if not cols:
        raise ValueError("hash_columns needs at least one column")
    if n < 0:
        raise ValueError("hash_columns needs a column with one value per row")
    # leading single-value columns leave the same lane state in every row: fold them in once
    a0, b0 = _A0, _B0
    with np.errstate(over="ignore"):
        while cols and isinstance(cols[0], np.uint64):
            m0 = cols.pop(0)
            assert isinstance(m0, np.uint64)
            a0 = _rotl(a0 ^ m0, 27) * _P1 + _P4
            b0 = _rotl(b0 + m0 * _P2, 31) * _P3
    out_a = np.empty(n, dtype=np.uint64)
    out_b = np.empty(n, dtype=np.uint64)
    step = max(1, min(n, _CHUNK))
    m_buf = np.empty(step, dtype=np.uint64)
    t_buf = np.empty(step, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for s in range(0, n, step):  # cache-sized slices, every column folded in before the next slice
            a, b = out_a[s : s + step], out_b[s : s + step]
            m, t = m_buf[: len(a)], t_buf[: len(a)]
            a.fill(a0)
            b.fill(b0)
            for c in cols:
                if isinstance(c, np.uint64):  # the same (mixed) value in every row
                    a ^= c
                    mb: U64 | np.uint64 = c * _P2
                elif isinstance(c, tuple):  # mixed table values, looked up
                    np.take(c[0], c[1][s : s + step], out=m, mode="clip")  # codes index their table
                    a ^= m
                    m *= _P2
                    mb = m
                else:
                    _mix64_into(m, t, c[s : s + step])
                    a ^= m
                    m *= _P2
                    mb = m
                np.left_shift(a, _S27, out=t)  # a = rotl(a ^ m, 27) * P1 + P4
                a >>= _S37
                a |= t
                a *= _P1
                a += _P4
                b += mb  # b = rotl(b + m * P2, 31) * P3
                np.left_shift(b, _S31, out=t)
                b >>= _S33
                b |= t
                b *= _P3
            _mix64_into(a, t)
            np.right_shift(b, _S29, out=t)
            b ^= t
            _mix64_into(b, t)
    return out_a, out_b


def ids_to_arrow(a: U64, b: U64) -> pa.FixedSizeBinaryArray:
    """Pack two uint64 lanes into a 16-byte fixed-size binary Arrow array (big-endian, sortable)."""
    n = len(a)
    buf = np.empty((n, 2), dtype=">u8")
    buf[:, 0] = a
    buf[:, 1] = b
    return pa.FixedSizeBinaryArray.from_buffers(OBS_ID_TYPE, n, [None, pa.py_buffer(buf)])


def ids_to_hex(ids: pa.Array) -> list[str]:
    """Hex strings of a fixed-size binary id array (for display and JSON)."""
    return [v.hex() if v is not None else "" for v in ids.to_pylist()]
