"""From framed Mode-S messages to observation batches: times, CRC checks, CPR positions, per-aircraft state.

The two raw Mode-S readers (:mod:`atalaya.ingest.modes`) frame their input into :class:`Messages`; a
:class:`Feed` (one per file) turns each block into a :class:`~atalaya.ingest.base.ParsedBatch`, carrying the
CPR context and each aircraft's last callsign, squawk and velocity from one block to the next.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from atalaya.ingest.adsb import FT_TO_M, KT_TO_MPS
from atalaya.ingest.base import ParsedBatch, ReadOptions, Reject
from atalaya.ingest.modes_cpr import GLOBAL, CprState, resolve
from atalaya.ingest.modes_decode import Fields, decode, squawk_chars

__all__ = ["CLOCK_HZ", "NO_TIME", "Feed", "Messages"]

U8 = npt.NDArray[np.uint8]
U32 = npt.NDArray[np.uint32]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

CLOCK_HZ = 12_000_000
"""Rate of the MLAT clock in Beast frames and ``@``/``<`` AVR lines."""
NO_TIME = (
    "no time for the message and no --received-at given: the line carries no wall-clock time (Beast frames and "
    "MLAT stamps never do); pass the time the capture was received, `atalaya ingest --received-at "
    "2024-05-01T12:00:00Z` (or `--received-at mtime` for each file's time)"
)
"""Reject reason for a message without a time when no reference time was given."""
FPM_TO_MPS = FT_TO_M / 60.0
_US = 1_000_000
_CLOCK_WRAP = 1 << 48
_OTHER_BIT = np.uint32(1 << 24)
"""Set in an aircraft key for a DF18 non-ICAO address."""


@dataclass(frozen=True, kw_only=True)
class Messages:
    """Framed messages of one block of input."""

    msg: U8
    """``(n, 14)`` message bytes (56-bit messages use the first 7)."""
    nbytes: I64
    """7 or 14."""
    rec: I64
    """Record locator (line number or frame index)."""
    wall_us: I64
    """Wall-clock time of the record, µs since the epoch (when :attr:`has_wall`)."""
    has_wall: B
    """The record carries a wall-clock time."""
    clock: I64
    """48-bit 12 MHz MLAT clock (when :attr:`has_clock`)."""
    has_clock: B
    """The record carries an MLAT clock."""
    raw: Callable[[int], bytes]
    """The raw record of message ``i`` (for the quarantine)."""

    @staticmethod
    def empty() -> Messages:
        z = np.zeros(0, dtype=np.int64)
        b = np.zeros(0, dtype=bool)
        return Messages(msg=np.zeros((0, 14), dtype=np.uint8), nbytes=z, rec=z, wall_us=z, has_wall=b, clock=z,
                        has_clock=b, raw=lambda i: b"")  # fmt: skip


_QUANTITIES: dict[str, tuple[tuple[str, ...], bool]] = {
    "ident": (("chars", "category", "tc"), True),
    "squawk": (("squawk",), True),
    "kin": (("gs", "track"), False),
    "vrate": (("vrate",), False),
    "air": (("airspeed", "tas", "heading"), False),
}
"""What fills position rows: quantity → (its values, whether it keeps for ``ident_window_s`` rather than
``state_window_s``)."""
_NEVER = np.iinfo(np.int64).min


def _values(f: Fields, ev: I64) -> dict[str, npt.NDArray[Any]]:
    """The values of every quantity for the messages ``ev``."""
    return {
        "chars": f.chars[ev], "category": f.category[ev], "tc": f.tc[ev], "squawk": f.ident[ev], "gs": f.gs_kt[ev],
        "track": f.track_deg[ev], "vrate": f.vrate_fpm[ev], "airspeed": f.airspeed_kt[ev], "tas": f.tas[ev],
        "heading": f.heading_deg[ev],
    }  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class _Aircraft:
    """Each aircraft's last value of every quantity (:data:`_QUANTITIES`) and when it was heard."""

    key: U32
    """Aircraft keys (ICAO address; bit 24 set for a DF18 non-ICAO address)."""
    values: dict[str, npt.NDArray[Any]]
    """Value name → one entry per aircraft."""
    times: dict[str, I64]
    """Quantity → when its value was heard, µs (:data:`_NEVER`: not heard)."""

    @staticmethod
    def empty() -> _Aircraft:
        nothing = decode(np.zeros((0, 14), dtype=np.uint8), np.zeros(0, dtype=np.int64))
        z = np.zeros(0, dtype=np.int64)
        return _Aircraft(key=np.zeros(0, np.uint32), values=_values(nothing, z), times=dict.fromkeys(_QUANTITIES, z))


_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _text(chars: U8) -> pa.Array:
    """Strings of the rows of an ``(n, w)`` ASCII character matrix."""
    n, w = chars.shape
    offsets = np.arange(n + 1, dtype=np.int32) * w
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(chars).tobytes()))


def _ffill_in_group(mask: B, group_start: I64) -> I64:
    idx = np.where(mask, np.arange(mask.size), -1)
    last = np.maximum.accumulate(idx) if idx.size else idx
    return np.where(last >= group_start, last, -1)


def _frag(key: str, values: pa.Array, valid: B, *, quoted: bool) -> pa.Array:
    text = values.cast(pa.string())
    if quoted:
        text = pc.binary_join_element_wise('"', text, '"', "")
    frag = pc.binary_join_element_wise(f'"{key}":', text, "")
    return pc.if_else(pa.array(valid), frag, pa.scalar(None, pa.string()))


@dataclass(kw_only=True)
class Feed:
    """Decoding state of one input file."""

    options: ReadOptions
    reference_us: int | None
    receiver: tuple[float, float] | None = None
    state_window_s: float = 60.0
    ident_window_s: float = 600.0
    clock0: int | None = None
    """The first MLAT clock of the file (times count from it)."""
    known: U32 = field(default_factory=lambda: np.zeros(0, dtype=np.uint32))
    """Addresses heard in messages with an intact CRC (sorted)."""
    cpr: CprState = field(default_factory=CprState.empty)
    aircraft: _Aircraft = field(default_factory=_Aircraft.empty)

    def __init__(
        self, options: ReadOptions, reference_us: int | None, *, receiver: tuple[float, float] | None = None,
        state_window_s: float = 60.0, ident_window_s: float = 600.0,
    ) -> None:  # fmt: skip
        self.options = options
        self.reference_us = reference_us
        self.receiver = receiver
        self.state_window_s = state_window_s
        self.ident_window_s = ident_window_s
        self.clock0 = None
        self.known = np.zeros(0, dtype=np.uint32)
        self.cpr = CprState.empty()
        self.aircraft = _Aircraft.empty()

    def _times(self, m: Messages) -> tuple[I64, B]:
        t = m.wall_us.copy()
        ok = m.has_wall.copy()
        if self.reference_us is None:
            return t, ok
        clk = ~m.has_wall & m.has_clock
        if clk.any():
            if self.clock0 is None:
                self.clock0 = int(m.clock[np.flatnonzero(clk)[0]])
            ticks = (m.clock[clk] - self.clock0) % _CLOCK_WRAP
            t[clk] = self.reference_us + ticks * _US // CLOCK_HZ
        rest = ~m.has_wall & ~m.has_clock
        t[rest] = self.reference_us + m.rec[rest] - 1
        return t, np.ones(t.size, dtype=bool)

    def batch(self, m: Messages, rejects: list[Reject], *, records: int, nbytes: int) -> ParsedBatch:
        """Decode one block of messages into a batch of position rows (plus the block's rejects)."""
        t, t_ok = self._times(m)
        f = decode(m.msg, m.nbytes)
        checked = np.isin(f.df, (11, 17, 18))
        crc_bad = checked & ~f.crc_ok
        self.known = np.union1d(self.known, f.icao[checked & f.crc_ok & t_ok])
        overlay = np.isin(f.df, (0, 4, 5, 16, 20, 21))
        ok = t_ok & ((checked & f.crc_ok) | (overlay & np.isin(f.icao, self.known)))
        for i in np.flatnonzero(~t_ok):
            rejects.append(Reject(src_rec=int(m.rec[i]), reason=NO_TIME, raw=Reject.excerpt(m.raw(int(i)))))
        for i in np.flatnonzero(t_ok & crc_bad):
            short = not f.long[i] and f.df[i] in (17, 18)
            why = (
                f"DF{f.df[i]} message of 56 bits: extended squitters have 112 (28 hex digits)"
                if short
                else f"bad CRC-24 parity (syndrome {int(f.syndrome[i]):06X}): a corrupt DF{f.df[i]} message"
            )
            rejects.append(Reject(src_rec=int(m.rec[i]), reason=why, raw=Reject.excerpt(m.raw(int(i)))))
        es = ok & ((f.df == 17) | ((f.df == 18) & np.isin(f.cf, (0, 1, 5, 6))))
        key = f.icao | np.where((f.df == 18) & np.isin(f.cf, (1, 5)), _OTHER_BIT, np.uint32(0))
        columns = self._rows(f, t, ok, es, key.astype(np.uint32), m.rec)
        rejects.sort(key=lambda r: r.src_rec)
        return ParsedBatch(columns=columns, rejects=rejects, records_read=records, bytes_read=nbytes)

    def _rows(self, f: Fields, t: I64, ok: B, es: B, key: U32, rec: I64) -> dict[str, object]:
        pos = np.flatnonzero(es & (f.airborne_pos | f.surface_pos))
        lat, lon, method, self.cpr = resolve(
            key[pos], t[pos], f.surface_pos[pos], f.cpr_odd[pos], f.cpr_lat[pos], f.cpr_lon[pos], self.cpr,
            receiver=self.receiver,
        )  # fmt: skip
        fixed = method > 0
        rows = pos[fixed]
        # state: identification, squawk, velocity; new rows after the carried ones, each aircraft in file order
        st = self.aircraft
        ev = np.flatnonzero(ok)
        k = st.key.size
        a_key = np.concatenate((st.key, key[ev]))
        vel = es[ev] & f.velocity[ev]
        heard = {
            "ident": es[ev] & (f.tc[ev] >= 1) & (f.tc[ev] <= 4),
            "squawk": (f.df[ev] == 5) | (f.df[ev] == 21),
            "kin": vel & ~np.isnan(f.gs_kt[ev]),
            "vrate": vel & ~np.isnan(f.vrate_fpm[ev]),
            "air": vel & ~np.isnan(f.airspeed_kt[ev]),
        }
        new = _values(f, ev)
        vals = {v: np.concatenate((st.values[v], new[v])) for v in new}
        times = {q: np.concatenate((st.times[q], t[ev])) for q in _QUANTITIES}
        order = np.argsort(a_key, kind="stable")
        inv = np.empty_like(order)
        inv[order] = np.arange(order.size)
        s_key = a_key[order]
        new_group = np.r_[True, s_key[1:] != s_key[:-1]] if s_key.size else np.zeros(0, dtype=bool)
        gstart = np.maximum.accumulate(np.where(new_group, np.arange(s_key.size), 0)) if s_key.size else order
        # for each (sorted) event, the latest event of its aircraft so far that carried the quantity
        src: dict[str, I64] = {}
        for q in _QUANTITIES:
            valid = np.concatenate((st.times[q] > _NEVER, heard[q]))
            last = _ffill_in_group(valid[order], gstart)
            src[q] = np.where(last >= 0, order[np.maximum(last, 0)], -1)
        ev_of = np.full(t.size, -1, dtype=np.int64)
        ev_of[ev] = k + np.arange(ev.size)
        at = inv[ev_of[rows]] if rows.size else np.zeros(0, dtype=np.int64)
        tr = t[rows]
        use: dict[str, I64] = {}
        for q, (_names, ident_like) in _QUANTITIES.items():
            window = int((self.ident_window_s if ident_like else self.state_window_s) * _US)
            j = src[q][at] if at.size else np.zeros(0, dtype=np.int64)
            use[q] = np.where((j >= 0) & (np.abs(tr - times[q][np.maximum(j, 0)]) <= window), j, -1)
        self.aircraft = self._carry(order, new_group, src, a_key, vals, times, t[ev])
        return self._columns(f, rows, lat[fixed], lon[fixed], method[fixed], tr, rec, key, use, vals)

    def _carry(
        self, order: I64, new_group: B, src: dict[str, I64], a_key: U32, vals: dict[str, npt.NDArray[Any]],
        times: dict[str, I64], t_new: I64,
    ) -> _Aircraft:  # fmt: skip
        """Each aircraft's latest value of every quantity still inside its window."""
        if order.size == 0:
            return self.aircraft
        last = np.flatnonzero(np.r_[new_group[1:], True])  # sorted positions of each aircraft's last event
        now = int(t_new.max()) if t_new.size else max(int(v.max()) for v in times.values() if v.size)
        picked: dict[str, I64] = {}
        keep = np.zeros(last.size, dtype=bool)
        for q, (_names, ident_like) in _QUANTITIES.items():
            window = int((self.ident_window_s if ident_like else self.state_window_s) * _US)
            j = src[q][last]
            j = np.where((j >= 0) & (times[q][np.maximum(j, 0)] >= now - window), j, -1)
            picked[q] = j
            keep |= j >= 0
        values: dict[str, npt.NDArray[Any]] = {}
        new_times: dict[str, I64] = {}
        for q, (names, _ident_like) in _QUANTITIES.items():
            j = picked[q][keep]
            j0 = np.maximum(j, 0)
            new_times[q] = np.where(j >= 0, times[q][j0], _NEVER)
            for v in names:
                values[v] = vals[v][j0]
        return _Aircraft(key=a_key[order[last[keep]]], values=values, times=new_times)

    def _columns(
        self, f: Fields, rows: I64, lat: F64, lon: F64, method: npt.NDArray[np.int8], t: I64, rec: I64, key: U32,
        use: dict[str, I64], vals: dict[str, npt.NDArray[Any]],
    ) -> dict[str, object]:  # fmt: skip
        """Observation columns of the position rows ``rows``, filled from the events ``use`` points at."""

        def value(q: str, v: str) -> tuple[npt.NDArray[Any], B]:
            j = use[q]
            return vals[v][np.maximum(j, 0)], j >= 0

        n = rows.size
        surface = f.surface_pos[rows]
        gnss = f.tc[rows] >= 20
        alt_m = np.where(surface, np.nan, np.where(gnss, f.gnss_alt_m[rows], f.alt_ft[rows] * FT_TO_M))
        gs, has_kin = value("kin", "gs")
        trk, _ = value("kin", "track")
        speed_kt = np.where(surface, f.gs_kt[rows], np.where(has_kin, gs, np.nan))
        course = np.where(surface, f.track_deg[rows], np.where(has_kin, trk, np.nan))
        other = (key[rows] & _OTHER_BIT) > 0
        nibbles = (key[rows, None].astype(np.int64) >> np.arange(20, -4, -4)) & 15
        hexes = _text(_HEX_DIGITS[nibbles])
        ident = pc.if_else(pa.array(other), pc.binary_join_element_wise("~", hexes, ""), hexes)
        chars, has_cs = value("ident", "chars")
        cs = pc.utf8_trim_whitespace(_text(chars))
        name = pc.if_else(pc.and_(pa.array(has_cs), pc.not_equal(cs, "")), cs, pa.scalar(None, pa.string()))
        sqv, has_sq = value("squawk", "squawk")
        sq_text = _text(squawk_chars(sqv))
        vrv, has_vr = value("vrate", "vrate")
        vr = np.where(has_vr, np.round(vrv * FPM_TO_MPS, 3), np.nan)
        cat_tc, _ = value("ident", "tc")
        cat_num, _ = value("ident", "category")
        has_cat = has_cs & (cat_num > 0)
        cat_text: Any = np.char.add(np.array(list("?DCBA"))[np.clip(cat_tc, 0, 4)], cat_num.astype(str)) if n else []
        asp, has_air = value("air", "airspeed")
        tas, _ = value("air", "tas")
        hdg, _ = value("air", "heading")
        asp_mps = pa.array(np.round(asp * KT_TO_MPS, 3))
        has_hdg = has_air & ~np.isnan(hdg)
        frags = [
            _frag("squawk", sq_text, has_sq, quoted=True),
            _frag("on_ground", pa.array(np.where(surface, "true", "false")), np.ones(n, dtype=bool), quoted=False),
            _frag("vertrate_mps", pa.array(vr), ~np.isnan(vr), quoted=False),
            _frag("alt_geometric", pa.array(np.full(n, "true")), gnss & ~surface, quoted=False),
            _frag("category", pa.array(cat_text, pa.string()), has_cat, quoted=True),
            _frag("tas_mps", asp_mps, has_air & tas, quoted=False),
            _frag("ias_mps", asp_mps, has_air & ~tas, quoted=False),
            _frag("heading_deg", pa.array(np.where(has_hdg, hdg, 0.0)), has_hdg, quoted=False),
            _frag("cpr", pa.array(np.where(method == GLOBAL, "global", "local")), np.ones(n, dtype=bool), quoted=True),
        ]
        body = pc.binary_join_element_wise(*frags, ",", null_handling="skip")
        attrs = pc.binary_join_element_wise("{", body, "}", "")
        columns: dict[str, object] = {
            "time": t,
            "lon": lon,
            "lat": lat,
            "alt_m": alt_m,
            "speed_mps": speed_kt * KT_TO_MPS,
            "course_deg": course,
            "sensor": ["ADSB"] * n,
            "kind": ["aircraft"] * n,
            "ident": ident,
            "ident_kind": pa.array(np.where(other, "other", "icao24"), pa.string()),
            "name": name,
            "src_rec": rec[rows].astype(np.int64),
            "attrs": attrs,
        }
        for c, v in self.options.defaults.items():
            columns.setdefault(c, [v] * n)
        return columns
