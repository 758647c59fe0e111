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


@dataclass(frozen=True, kw_only=True)
class _Aircraft:
    """Last identification, squawk and velocity per aircraft key."""

    key: U32
    chars: U8
    category: U8
    tc: U8
    cs_t: I64
    squawk: U32
    sq_t: I64
    gs: F64
    track: F64
    kin_t: I64
    vrate: F64
    vr_t: I64

    @staticmethod
    def empty() -> _Aircraft:
        z, u, f = np.zeros(0, np.int64), np.zeros(0, np.uint32), np.zeros(0, np.float64)
        return _Aircraft(key=u, chars=np.zeros((0, 8), np.uint8), category=np.zeros(0, np.uint8),
                         tc=np.zeros(0, np.uint8), cs_t=z, squawk=u, sq_t=z, gs=f, track=f, kin_t=z, vrate=f,
                         vr_t=z)  # fmt: skip


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
        ident = es[ev] & (f.tc[ev] >= 1) & (f.tc[ev] <= 4)
        sq = (f.df[ev] == 5) | (f.df[ev] == 21)
        kin = es[ev] & f.velocity[ev] & ~np.isnan(f.gs_kt[ev])
        vr = es[ev] & f.velocity[ev] & ~np.isnan(f.vrate_fpm[ev])
        chars = np.concatenate((st.chars, f.chars[ev]))
        category = np.concatenate((st.category, f.category[ev]))
        tcs = np.concatenate((st.tc, f.tc[ev]))
        cs_t = np.concatenate((st.cs_t, t[ev]))
        sqv = np.concatenate((st.squawk, f.ident[ev]))
        sq_t = np.concatenate((st.sq_t, t[ev]))
        gs = np.concatenate((st.gs, f.gs_kt[ev]))
        trk = np.concatenate((st.track, f.track_deg[ev]))
        kin_t = np.concatenate((st.kin_t, t[ev]))
        vrv = np.concatenate((st.vrate, f.vrate_fpm[ev]))
        vr_t = np.concatenate((st.vr_t, t[ev]))
        v_cs = np.concatenate((st.cs_t > np.iinfo(np.int64).min, ident))
        v_sq = np.concatenate((st.sq_t > np.iinfo(np.int64).min, sq))
        v_kin = np.concatenate((st.kin_t > np.iinfo(np.int64).min, kin))
        v_vr = np.concatenate((st.vr_t > np.iinfo(np.int64).min, vr))
        order = np.argsort(a_key, kind="stable")
        inv = np.empty_like(order)
        inv[order] = np.arange(order.size)
        s_key = a_key[order]
        new_group = np.r_[True, s_key[1:] != s_key[:-1]] if s_key.size else np.zeros(0, dtype=bool)
        gstart = np.maximum.accumulate(np.where(new_group, np.arange(s_key.size), 0)) if s_key.size else order

        def src(valid: B) -> I64:
            s = _ffill_in_group(valid[order], gstart)
            return np.where(s >= 0, order[np.maximum(s, 0)], -1)

        s_cs, s_sq, s_kin, s_vr = src(v_cs), src(v_sq), src(v_kin), src(v_vr)
        # position rows: their place among the events
        ev_of = np.full(t.size, -1, dtype=np.int64)
        ev_of[ev] = k + np.arange(ev.size)
        at = inv[ev_of[rows]] if rows.size else np.zeros(0, dtype=np.int64)
        tr = t[rows]
        kin_w, id_w = int(self.state_window_s * _US), int(self.ident_window_s * _US)

        def pick(s: I64, q_t: I64, window: int) -> I64:
            j = s[at] if at.size else np.zeros(0, dtype=np.int64)
            good = (j >= 0) & (np.abs(tr - q_t[np.maximum(j, 0)]) <= window)
            return np.where(good, j, -1)

        u_cs, u_sq = pick(s_cs, cs_t, id_w), pick(s_sq, sq_t, id_w)
        u_kin, u_vr = pick(s_kin, kin_t, kin_w), pick(s_vr, vr_t, kin_w)
        self.aircraft = self._carry(order, new_group, s_cs, s_sq, s_kin, s_vr, a_key, chars, category, tcs, cs_t,
                                    sqv, sq_t, gs, trk, kin_t, vrv, vr_t, t[ev])  # fmt: skip
        return self._columns(f, rows, lat[fixed], lon[fixed], method[fixed], tr, rec, key,
                             u_cs, u_sq, u_kin, u_vr, chars, category, tcs, sqv, gs, trk, vrv)  # fmt: skip

    def _carry(
        self, order: I64, new_group: B, s_cs: I64, s_sq: I64, s_kin: I64, s_vr: I64, a_key: U32, chars: U8,
        category: U8, tcs: U8, cs_t: I64, sqv: U32, sq_t: I64, gs: F64, trk: F64, kin_t: I64, vrv: F64, vr_t: I64,
        t_new: I64,
    ) -> _Aircraft:  # fmt: skip
        if order.size == 0:
            return self.aircraft
        last = np.flatnonzero(np.r_[new_group[1:], True])  # sorted positions
        now = int(t_new.max()) if t_new.size else int(max(cs_t.max(), sq_t.max(), kin_t.max(), vr_t.max()))
        never = np.iinfo(np.int64).min

        def take(s: I64, q_t: I64, window: float) -> tuple[I64, I64]:
            j = s[last]
            alive = (j >= 0) & (q_t[np.maximum(j, 0)] >= now - int(window * _US))
            return np.where(alive, j, -1), np.where(alive, q_t[np.maximum(j, 0)], never)

        (jc, tc_), (js, ts_) = take(s_cs, cs_t, self.ident_window_s), take(s_sq, sq_t, self.ident_window_s)
        (jk, tk_), (jv, tv_) = take(s_kin, kin_t, self.state_window_s), take(s_vr, vr_t, self.state_window_s)
        keep = (jc >= 0) | (js >= 0) | (jk >= 0) | (jv >= 0)
        jc, js, jk, jv = jc[keep], js[keep], jk[keep], jv[keep]
        c0, s0, k0, v0 = np.maximum(jc, 0), np.maximum(js, 0), np.maximum(jk, 0), np.maximum(jv, 0)
        return _Aircraft(
            key=a_key[order[last[keep]]], chars=chars[c0], category=category[c0], tc=np.where(jc >= 0, tcs[c0], 0),
            cs_t=tc_[keep], squawk=sqv[s0], sq_t=ts_[keep], gs=gs[k0], track=trk[k0], kin_t=tk_[keep],
            vrate=vrv[v0], vr_t=tv_[keep],
        )  # fmt: skip

    def _columns(
        self, f: Fields, rows: I64, lat: F64, lon: F64, method: npt.NDArray[np.int8], t: I64, rec: I64, key: U32,
        u_cs: I64, u_sq: I64, u_kin: I64, u_vr: I64, chars: U8, category: U8, tcs: U8, sqv: U32, gs: F64,
        trk: F64, vrv: F64,
    ) -> dict[str, object]:  # fmt: skip
        n = rows.size
        surface = f.surface_pos[rows]
        gnss = f.tc[rows] >= 20
        alt_m = np.where(surface, np.nan, np.where(gnss, f.gnss_alt_m[rows], f.alt_ft[rows] * FT_TO_M))
        speed_kt = np.where(surface, f.gs_kt[rows], np.where(u_kin >= 0, gs[np.maximum(u_kin, 0)], np.nan))
        course = np.where(surface, f.track_deg[rows], np.where(u_kin >= 0, trk[np.maximum(u_kin, 0)], np.nan))
        other = (key[rows] & _OTHER_BIT) > 0
        nibbles = (key[rows, None].astype(np.int64) >> np.arange(20, -4, -4)) & 15
        hexes = _text(_HEX_DIGITS[nibbles])
        ident = pc.if_else(pa.array(other), pc.binary_join_element_wise("~", hexes, ""), hexes)
        has_cs = u_cs >= 0
        cs = pc.utf8_trim_whitespace(_text(chars[np.maximum(u_cs, 0)]))
        name = pc.if_else(pc.and_(pa.array(has_cs), pc.not_equal(cs, "")), cs, pa.scalar(None, pa.string()))
        has_sq = u_sq >= 0
        sq_text = _text(squawk_chars(sqv[np.maximum(u_sq, 0)]))
        vr = np.where(u_vr >= 0, np.round(vrv[np.maximum(u_vr, 0)] * FPM_TO_MPS, 3), np.nan)
        cat_tc = tcs[np.maximum(u_cs, 0)]
        cat_num = category[np.maximum(u_cs, 0)]
        has_cat = has_cs & (cat_num > 0)
        cat_text: Any = np.char.add(np.array(list("?DCBA"))[np.clip(cat_tc, 0, 4)], cat_num.astype(str)) if n else []
        frags = [
            _frag("squawk", sq_text, has_sq, quoted=True),
            _frag("on_ground", pa.array(np.where(surface, "true", "false")), np.ones(n, dtype=bool), quoted=False),
            _frag("vertrate_mps", pa.array(vr), ~np.isnan(vr), quoted=False),
            _frag("alt_geometric", pa.array(np.full(n, "true")), gnss & ~surface, quoted=False),
            _frag("category", pa.array(cat_text, pa.string()), has_cat, quoted=True),
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
