"""Writers of the raw observation feeds in their real formats.

- detections: CSV with the observation column names as header (one file per day and sensor);
- AIS: NMEA ``!AIVDM`` sentences with NMEA 4.0 tag blocks (types 1, 18 and 5);
- ADS-B: SBS-1/BaseStation lines;
- CoT: Cursor-on-Target XML events, one per line;
- sorties: GPX 1.1 tracks (``<name>`` sortie, ``<src>`` platform, ``<type>`` platform type).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from atalaya.ingest import ais_codec
from atalaya.ingest.tracks import SortieTrack, write_gpx_tracks
from atalaya.model.observation import SOURCE_COLUMNS
from atalaya.scenario.movement import Track
from atalaya.scenario.sorties import Sortie
from atalaya.scenario.world import F64, I64

DETECTION_COLUMNS: tuple[str, ...] = SOURCE_COLUMNS
"""Header of the detection CSV files (observation column names)."""


def iso_times(t_s: F64) -> pa.Array:
    """ISO 8601 UTC strings with ``Z`` (millisecond precision when fractional)."""
    us = np.round(np.asarray(t_s, dtype=np.float64) * 1e6).astype(np.int64)
    frac = bool((us % 1_000_000 != 0).any())
    ts = pa.array(us, type=pa.timestamp("us")).cast(pa.timestamp("ms" if frac else "s"), safe=False)
    return pc.binary_join_element_wise(pc.strftime(ts, format="%Y-%m-%dT%H:%M:%S"), "Z", "")


def _nullable(x: F64, decimals: int) -> pa.Array:
    a = np.round(np.asarray(x, dtype=np.float64), decimals)
    return pa.array(a, type=pa.float64(), mask=~np.isfinite(a))


def write_detections(path: Path, cols: dict[str, Any]) -> int:
    """Write detection rows (already sorted) as CSV; returns the row count."""
    n = len(cols["time"])
    table = pa.table(
        {
            "time": iso_times(cols["time"]),
            "lon": _nullable(cols["lon"], 6),
            "lat": _nullable(cols["lat"], 6),
            "alt_m": _nullable(np.full(n, np.nan), 1),
            "pos_err_m": _nullable(cols["pos_err_m"], 1),
            "err_minor_m": _nullable(cols["err_minor_m"], 1),
            "err_orient_deg": _nullable(cols["err_orient_deg"], 1),
            "speed_mps": _nullable(cols["speed_mps"], 2),
            "course_deg": _nullable(cols["course_deg"], 1),
            "sensor": pa.array(cols["sensor"].tolist(), type=pa.string()),
            "kind": pa.array(cols["kind"].tolist(), type=pa.string()),
            "ident": pa.array(cols["ident"].tolist(), type=pa.string()),
            "ident_kind": pa.array(cols["ident_kind"].tolist(), type=pa.string()),
            "name": pa.array([None] * n, type=pa.string()),
            "confidence": _nullable(cols["confidence"], 3),
            "platform_id": pa.array(cols["platform_id"].tolist(), type=pa.string()),
            "sortie_id": pa.array(cols["sortie_id"].tolist(), type=pa.string()),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write((",".join(DETECTION_COLUMNS) + "\n").encode("ascii"))
        pcsv.write_csv(table, fh, write_options=pcsv.WriteOptions(quoting_style="needed", include_header=False))
    return n


def write_ais(path: Path, tracks: Sequence[Track], step: int, station: str = "atalaya-rx") -> int:
    """AIS NMEA lines for the transmitting samples of the tracks (every ``step`` s); returns positions written."""
    rows_t: list[I64] = []
    rows_i: list[I64] = []
    rows_k: list[I64] = []
    for k, tr in enumerate(tracks):
        m = tr.on & (tr.t % step == 0)
        idx = np.flatnonzero(m)
        rows_t.append(tr.t[idx])
        rows_i.append(idx)
        rows_k.append(np.full(idx.size, k, dtype=np.int64))
    if not rows_t:
        path.write_text("", encoding="ascii")
        return 0
    t = np.concatenate(rows_t)
    ii = np.concatenate(rows_i)
    kk = np.concatenate(rows_k)
    mmsi = np.array([int(tr.ident or 0) for tr in tracks], dtype=np.int64)
    order = np.lexsort((mmsi[kk], t))
    t, ii, kk = t[order], ii[order], kk[order]
    lon = np.array([tracks[k].lon[i] for k, i in zip(kk.tolist(), ii.tolist(), strict=True)])
    lat = np.array([tracks[k].lat[i] for k, i in zip(kk.tolist(), ii.tolist(), strict=True)])
    sog = np.array([tracks[k].speed[i] for k, i in zip(kk.tolist(), ii.tolist(), strict=True)]) / ais_codec.KNOT_MPS
    cog = np.array([tracks[k].course[i] for k, i in zip(kk.tolist(), ii.tolist(), strict=True)])
    class_b = np.array([tr.role == "suspect" for tr in tracks])[kk]
    lines: list[tuple[int, str]] = []
    for msg_type, sel in ((1, ~class_b), (18, class_b)):
        idx = np.flatnonzero(sel)
        if idx.size == 0:
            continue
        pay = ais_codec.encode_positions(
            msg_type,
            ais_codec.PositionFields(
                mmsi=mmsi[kk[idx]],
                lon=lon[idx],
                lat=lat[idx],
                sog_knots=sog[idx],
                cog_deg=cog[idx],
                heading=np.round(cog[idx]).astype(np.int64) % 360,
                status=np.where(sog[idx] < 0.5, 1, 0),
                second=t[idx] % 60,
            ),
        )
        for j, (p, fill) in zip(idx.tolist(), pay, strict=True):
            tb = ais_codec.tag_block(time_s=int(t[j]), station=station)
            lines.extend((j, tb + s) for s in ais_codec.sentences(p, fill, channel="A" if j % 2 else "B"))
    # one static report per vessel at its first transmission of the file
    first: dict[int, int] = {}
    for j, k in enumerate(kk.tolist()):
        first.setdefault(k, j)
    ks = sorted(first)
    if ks:
        stat = ais_codec.encode_static(
            [int(mmsi[k]) for k in ks],
            [tracks[k].name or "" for k in ks],
            ship_types=[30 if tracks[k].role == "suspect" else 70 for k in ks],
        )
        for n, (k, (p, fill)) in enumerate(zip(ks, stat, strict=True)):
            j = first[k]
            tb = ais_codec.tag_block(time_s=int(t[j]), station=station)
            lines.extend((j, tb + s) for s in ais_codec.sentences(p, fill, seq_id=n % 10))
    lines.sort(key=lambda x: x[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="ascii", newline="\n") as fh:
        fh.write("\n".join(s for _, s in lines))
        fh.write("\n")
    return int(t.size)


def _sbs(
    icao: list[str], time_us: I64, lon: F64, lat: F64, alt: F64, spd: F64, crs: F64, call: list[str | None]
) -> list[str]:
    try:
        from atalaya.ingest import adsb
    except ImportError:  # the ADS-B module is optional here: a plain writer follows
        adsb = None  # type: ignore[assignment]  # fallback when the reader module is absent
    if adsb is not None:
        lines: list[str] = adsb.format_sbs_lines(
            icao24=icao, time_us=time_us, lon=lon, lat=lat, alt_m=alt, speed_mps=spd, course_deg=crs,
            callsign=call, ident_every=10,
        )  # fmt: skip
        return lines
    out: list[str] = []
    ts = pa.array(time_us, type=pa.timestamp("us")).cast(pa.timestamp("ms"), safe=False)
    d = pc.strftime(ts, format="%Y/%m/%d").to_pylist()
    tod = pc.strftime(ts, format="%H:%M:%S").to_pylist()
    for j in range(len(icao)):
        ft = round(alt[j] / 0.3048)
        kt = spd[j] / (1852.0 / 3600.0)
        out.append(
            f"MSG,3,1,1,{icao[j].upper()},1,{d[j]},{tod[j]},{d[j]},{tod[j]},{call[j] or ''},{ft},{kt:.0f},{crs[j]:.0f},"
            f"{lat[j]:.5f},{lon[j]:.5f},,,0,0,0,0"
        )
    return out


def write_adsb(path: Path, tracks: Sequence[Track], step: int) -> int:
    """SBS-1 lines for the transmitting samples of aircraft tracks; returns positions written."""
    parts = [(k, np.flatnonzero(tr.on & (tr.t % step == 0))) for k, tr in enumerate(tracks)]
    parts = [(k, i) for k, i in parts if i.size]
    if not parts:
        path.write_text("", encoding="ascii")
        return 0
    t = np.concatenate([tracks[k].t[i] for k, i in parts])
    kk = np.concatenate([np.full(i.size, k) for k, i in parts])
    lon = np.concatenate([tracks[k].lon[i] for k, i in parts])
    lat = np.concatenate([tracks[k].lat[i] for k, i in parts])
    alt = np.concatenate([tracks[k].alt[i] for k, i in parts])
    spd = np.concatenate([tracks[k].speed[i] for k, i in parts])
    crs = np.concatenate([tracks[k].course[i] for k, i in parts])
    icao_k = np.array([tr.ident or "" for tr in tracks], dtype=object)
    order = np.lexsort((icao_k[kk].astype(str), t))
    kk = kk[order]
    lines = _sbs(
        [str(x) for x in icao_k[kk]],
        t[order].astype(np.int64) * 1_000_000,
        lon[order],
        lat[order],
        alt[order],
        spd[order],
        crs[order],
        [tracks[k].name for k in kk.tolist()],
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="ascii", newline="\n") as fh:
        fh.write("\n".join(lines))
        fh.write("\n")
    return int(t.size)


def write_cot(path: Path, tracks: Sequence[Track], step: int) -> int:
    """CoT events (one per line) for the reporting samples of CoT tracks; returns events written."""
    ev: list[tuple[int, str, str]] = []
    for tr in tracks:
        idx = np.flatnonzero(tr.on & (tr.t % step == 0))
        if idx.size == 0:
            continue
        times = iso_times(tr.t[idx].astype(np.float64)).to_pylist()
        stale = iso_times(tr.t[idx].astype(np.float64) + 5 * step).to_pylist()
        typ = "a-f-G-U-C" if tr.kind == "person" else "a-u-G-E-V-C"
        call = tr.name or tr.ident or ""
        for j, i in enumerate(idx.tolist()):
            ev.append(
                (
                    int(tr.t[i]),
                    tr.ident or "",
                    f'<event version="2.0" uid={quoteattr(tr.ident or "")} type="{typ}" time="{times[j]}" '
                    f'start="{times[j]}" stale="{stale[j]}" how="m-g"><point lat="{tr.lat[i]:.6f}" '
                    f'lon="{tr.lon[i]:.6f}" hae="9999999.0" ce="10.0" le="9999999.0"/><detail>'
                    f"<contact callsign={quoteattr(call)}/>"
                    f'<track speed="{tr.speed[i]:.2f}" course="{tr.course[i]:.1f}"/>'
                    f'<__atalaya sensor="COT" kind="{tr.kind}" confidence="0.95"/></detail></event>',
                )
            )
    ev.sort(key=lambda e: (e[0], e[1]))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("".join(e[2] + "\n" for e in ev))
    return len(ev)


def write_sortie_gpx(path: Path, sortie: Sortie, step: int) -> int:
    """The flown track of a sortie as GPX (every ``step`` seconds and the landing); returns points."""
    idx = np.flatnonzero(sortie.t % step == 0)
    if idx.size == 0 or idx[-1] != sortie.t.size - 1:
        idx = np.append(idx, sortie.t.size - 1)
    if idx[0] != 0:
        idx = np.insert(idx, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_gpx_tracks(
        path,
        [
            SortieTrack(
                sortie_id=sortie.sortie_id,
                platform_id=sortie.platform_id,
                platform_type=sortie.platform_type,
                time_us=sortie.t[idx].astype(np.int64) * 1_000_000,
                lon=np.round(sortie.lon[idx], 6),
                lat=np.round(sortie.lat[idx], 6),
                alt_m=np.round(sortie.alt[idx], 1),
            )
        ],
    )
    return int(idx.size)
