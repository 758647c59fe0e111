"""The CoT layout path: events that repeat a learned attribute layout, read with array operations."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from numpy.lib.stride_tricks import sliding_window_view

from atalaya.ingest.cot_detail import MAX_ATTRS_CHARS, NeedsParserError, tail_json, tail_of_text
from atalaya.ingest.cot_segments import Block

I64 = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
U8 = npt.NDArray[np.uint8]

# (time, lat, lon, hae, ce, speed, course, uid, type, how, callsign,
#  x_sensor, x_kind, x_confidence, x_sortie, x_platform, tail): the string fields read from each event
FIELDS = (
    "time",
    "lat",
    "lon",
    "hae",
    "ce",
    "speed",
    "course",
    "uid",
    "type",
    "how",
    "callsign",
    "x_sensor",
    "x_kind",
    "x_confidence",
    "x_sortie",
    "x_platform",
    "tail",
)


# ---------------------------------------------------------------------------------------------
# Layout path: events that repeat a learned attribute layout, read with array operations
# ---------------------------------------------------------------------------------------------
#
# Producers write every event of a feed the same way: the same tags and attributes in the same
# order, only the quoted values differ. Cut an event at its double quotes and the text between
# values (the *separators*: ``<event version=``, `` uid=``, ``><point lat=``…) is its layout. The
# first event of a layout is parsed once by lxml with every value replaced by a placeholder,
# which says which value is ``event/@time``, ``point/@lat``, ``detail/contact/@callsign``…
# (exactly what the lxml path would read). Every later event whose separators are byte-identical
# and whose values hold no ``<``, ``&`` or control character has the same tree, so its values are
# sliced out of the buffer for the whole block at once. Other events take the paths above.

_LAYOUT_SPECIAL = np.zeros(256, dtype=np.bool_)
_LAYOUT_SPECIAL[:32] = True  # control characters: lxml normalises tabs and newlines in values
_LAYOUT_SPECIAL[[ord("<"), ord("&")]] = True  # markup or an entity inside a value: not a plain value
_LAYOUT_PATHS: dict[str, tuple[tuple[str, ...], str]] = {
    "time": ((), "time"),
    "uid": ((), "uid"),
    "type": ((), "type"),
    "how": ((), "how"),
    "lat": (("point",), "lat"),
    "lon": (("point",), "lon"),
    "hae": (("point",), "hae"),
    "ce": (("point",), "ce"),
    "callsign": (("detail", "contact"), "callsign"),
    "speed": (("detail", "track"), "speed"),
    "course": (("detail", "track"), "course"),
    "x_sensor": (("detail", "__atalaya"), "sensor"),
    "x_kind": (("detail", "__atalaya"), "kind"),
    "x_confidence": (("detail", "__atalaya"), "confidence"),
    "x_sortie": (("detail", "__atalaya"), "sortie"),
    "x_platform": (("detail", "__atalaya"), "platform"),
}
MAX_LAYOUTS_PER_BLOCK = 8
"""Layouts tried per block before the remaining events take the regex path."""


@dataclass(frozen=True, kw_only=True)
class _Layout:
    """What one event layout says about where each field's value is."""

    seps: U8
    """The separators, concatenated."""
    sep_lens: I64
    """Length of each separator (one more than the values)."""
    n_special: int
    """``<``, ``&`` and control bytes in the separators (values must add none)."""
    value_of: dict[str, int]
    """Field name → index of its value (fields the layout lacks are absent)."""
    tail_parts: tuple[str, ...]
    """The ``attrs`` tail (:func:`tail_json`) cut around its values: the text before each value, then the end."""
    tail_values: tuple[int, ...]
    """Index of each value in the tail, in order (JSON-escaped when filled in)."""


_PLACEHOLDER = re.compile(r'(?<=")#(\d+)(?=")')
_LAYOUTS: dict[tuple[bytes, ...], _Layout | None] = {}
_LAYOUT_CACHE_MAX = 256


def _learn_layout(seps: list[bytes]) -> _Layout | None:
    """The layout of an event cut into ``seps``; ``None`` if the lxml tree of its skeleton does not qualify."""
    from lxml import etree

    skeleton = b"".join(sep + b'"#%d"' % i for i, sep in enumerate(seps[:-1])) + seps[-1]
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        ev: Any = etree.fromstring(skeleton, parser)
    except (etree.XMLSyntaxError, ValueError):
        return None
    if ev.tag != "event" or ev.find("point") is None:
        return None  # the per-event path says why
    seen: list[str] = []
    for node in ev.iter(tag=etree.Element):
        seen.extend(node.attrib.values())
    if sorted(seen) != sorted(f"#{i}" for i in range(len(seps) - 1)):
        return None  # a quote outside a double-quoted attribute value (text, comment, single quotes)
    value_of: dict[str, int] = {}
    for name, (path, attr) in _LAYOUT_PATHS.items():
        el: Any = ev
        for tag in path:
            el = el.find(tag) if el is not None else None
        v = el.get(attr) if el is not None else None
        if v is not None:
            value_of[name] = int(v[1:])
    tail = tail_json(ev)
    tail_values = tuple(int(m) for m in _PLACEHOLDER.findall(tail))
    if len(set(tail_values)) != len(tail_values):
        return None  # an element's text looks like a placeholder: the per-event paths read it
    tail_parts = tuple(_PLACEHOLDER.split(tail)[0::2])
    joined = b"".join(seps)
    sep_lens = np.array([len(s) for s in seps], dtype=np.int64)
    return _Layout(
        seps=np.frombuffer(joined, dtype=np.uint8),
        sep_lens=sep_lens,
        n_special=int(_LAYOUT_SPECIAL[np.frombuffer(joined, dtype=np.uint8)].sum()),
        value_of=value_of,
        tail_parts=tail_parts,
        tail_values=tail_values,
    )


def _layout_of(buf: bytes, start: int, quotes: I64, stop: int) -> _Layout | None:
    bounds = [start, *(quotes + np.tile([0, 1], quotes.size // 2)).tolist(), stop]
    seps = [buf[bounds[k] : bounds[k + 1]] for k in range(0, len(bounds), 2)]
    key = tuple(seps)
    if key in _LAYOUTS:
        return _LAYOUTS[key]
    layout = _learn_layout(seps)
    if len(_LAYOUTS) < _LAYOUT_CACHE_MAX:
        _LAYOUTS[key] = layout
    return layout


def _separators_match(a: U8, sep_lo: I64, layout: _Layout) -> BoolArray:
    """Whether each row's separators (starting at ``sep_lo``) are byte for byte the layout's."""
    n, width = sep_lo.shape[0], int(layout.seps.size)
    got = np.empty((n, width), dtype=np.uint8)
    at = 0
    for j, length in enumerate(layout.sep_lens.tolist()):
        if length:
            got[:, at : at + length] = sliding_window_view(a, length)[sep_lo[:, j]]  # a row copy per event
        at += length
    if width == 0:
        return np.ones(n, dtype=np.bool_)
    whole = np.dtype((np.void, width))  # compare each row as one opaque value
    match: BoolArray = got.view(whole).ravel() == layout.seps.view(whole)[0]
    return match


def _slice_strings(a: U8, lo: I64, hi: I64) -> pa.Array:
    """``a[lo[i]:hi[i]]`` for every ``i`` as one Arrow string array (empty → null); ``ArrowInvalid`` if not UTF-8."""
    n = lo.size
    lens = hi - lo
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    total = int(offsets[-1])
    data = a[np.repeat(lo - offsets[:-1], lens) + np.arange(total, dtype=np.int64)]
    valid = lens > 0
    arr = pa.Array.from_buffers(
        pa.large_string(),
        n,
        [pa.py_buffer(np.packbits(valid, bitorder="little")), pa.py_buffer(offsets), pa.py_buffer(data)],
        null_count=n - int(np.count_nonzero(valid)),
    )
    arr.validate(full=True)
    return arr.cast(pa.string())


def _fill_tail(a: U8, q: I64, layout: _Layout) -> pa.Array:
    """The ``attrs`` tails of the rows whose value quotes are ``q``, from the layout's template."""
    n = q.shape[0]
    if not layout.tail_values:
        return pa.repeat(pa.scalar(layout.tail_parts[0]), n)
    args: list[Any] = []
    for part, v in zip(layout.tail_parts, layout.tail_values, strict=False):
        val = _slice_strings(a, q[:, 2 * v] + 1, q[:, 2 * v + 1])
        args += [part, pc.replace_substring(val, "\\", "\\\\")]  # values hold no quote or control byte
    args.append(layout.tail_parts[-1])
    out: pa.Array = pc.binary_join_element_wise(*args, "", null_handling="replace", null_replacement="")
    return out


def layout_rows(blk: Block) -> tuple[list[tuple[I64, dict[str, pa.Array]]], BoolArray]:
    """Fields of the events that repeat a learned layout: ``[(event indices, fields)]`` and the handled mask."""
    n_ev = blk.starts.size
    done = np.zeros(n_ev, dtype=np.bool_)
    parts: list[tuple[I64, dict[str, pa.Array]]] = []
    a = np.frombuffer(blk.buf, dtype=np.uint8)
    quotes = np.flatnonzero(a == 34)
    q_lo = np.searchsorted(quotes, blk.starts)
    n_q = np.searchsorted(quotes, blk.stops) - q_lo
    special = np.flatnonzero((a < 32) | (a == ord("<")) | (a == ord("&")))  # as _LAYOUT_SPECIAL
    n_special = np.searchsorted(special, blk.stops) - np.searchsorted(special, blk.starts)
    open_ = blk.complete & (n_q > 0) & (n_q % 2 == 0)
    for _ in range(MAX_LAYOUTS_PER_BLOCK):
        cand = np.flatnonzero(open_)
        if cand.size == 0:
            break
        first = int(cand[0])
        k = int(n_q[first])
        layout = _layout_of(
            blk.buf, int(blk.starts[first]), quotes[q_lo[first] : q_lo[first] + k], int(blk.stops[first])
        )
        open_[first] = False  # decided now (its own values may disqualify it, e.g. an entity)
        if layout is None:
            continue
        same = cand[n_q[cand] == k]
        same = same[n_special[same] == layout.n_special]
        q = quotes[q_lo[same][:, None] + np.arange(k)]
        sep_lo = np.concatenate([blk.starts[same][:, None], q[:, 1::2] + 1], axis=1)
        sep_hi = np.concatenate([q[:, 0::2], blk.stops[same][:, None]], axis=1)
        fit = ((sep_hi - sep_lo) == layout.sep_lens).all(axis=1)
        same, q, sep_lo = same[fit], q[fit], sep_lo[fit]
        fit = _separators_match(a, sep_lo, layout)
        same, q = same[fit], q[fit]
        if same.size == 0:
            continue
        open_[same] = False
        try:
            fields = {
                name: _slice_strings(a, q[:, 2 * v] + 1, q[:, 2 * v + 1])
                if (v := layout.value_of.get(name)) is not None
                else pa.nulls(same.size, pa.string())
                for name in FIELDS
                if name != "tail"
            }
            fields["tail"] = _fill_tail(a, q, layout)
            long = np.flatnonzero(
                pc.greater(pc.binary_length(fields["tail"]), MAX_ATTRS_CHARS).to_numpy(zero_copy_only=False)
            )
            if long.size:  # the template does not cap: read those few again
                tails = fields["tail"].to_pylist()
                for i in long.tolist():
                    tails[i] = tail_of_text(blk.raw(int(same[i])).decode("utf-8"))
                fields["tail"] = pa.array(tails, type=pa.string())
        except (pa.ArrowInvalid, NeedsParserError):  # not valid UTF-8: the per-event path says where
            continue
        parts.append((same, fields))
        done[same] = True
    return parts, done
