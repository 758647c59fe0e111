"""Ground truth: Parquet/JSON writers and the true overflight figures of each sortie.

Overflight truth resamples each sortie track every second and labels every
point with :func:`atalaya.geo.territories.label_points` (countries with their
territorial sea, and states; ``INTL`` outside all). Each 1 s step is charged to
the territory of its start point, so the per-level totals conserve the flight
duration and length exactly. ``entries`` counts the runs of consecutive points
in a territory (the first counts as an entry). ``max_depth_km`` is the largest
distance from a point of the sortie inside a country to that country's
boundary (land border, coast of its territorial sea); for a state, the largest
such country depth reached inside the state.

Border-crossing truth (:func:`border_cuts`, :func:`crossings_columns`) is
computed from the true track geometry: every place where the sampled path cuts
the MEX–USA land boundary line (the Natural Earth ``boundary_lines_land``
pieces between Mexico and the USA, the same line the analytics use), at the
time interpolated between the two samples either side of the cut.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq
import shapely
from pyproj import Transformer

from atalaya.geo.territories import Territories, label_points, load_territories
from atalaya.scenario.sorties import HOST, Sortie, in_host, reported_fixes, track_rules
from atalaya.scenario.world import F64, GEOD

_LAEA = "+proj=laea +lat_0=24 +lon_0=-102 +datum=WGS84 +units=m"


def border_cuts(
    t: npt.NDArray[np.int64], lon: F64, lat: F64, border: Any, usa: Any
) -> tuple[F64, F64, F64, npt.NDArray[np.bool_]]:
    """Where one sampled path cuts ``border``: ``(time_s, lon, lat, into_usa)`` in time order.

    Each segment between consecutive samples is intersected with the line;
    every cut point is placed on the segment by its planar fraction, which
    gives its time. The direction alternates from the side (``usa`` polygon
    or not) of the segment's first sample, so a segment that cuts twice goes
    in and out again.
    """
    empty = (np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, dtype=bool))
    if lon.size < 2:
        return empty
    ends = np.stack([np.column_stack([lon[:-1], lat[:-1]]), np.column_stack([lon[1:], lat[1:]])], 1)
    segs = shapely.linestrings(ends)
    hit = np.flatnonzero(shapely.intersects(segs, border))
    if hit.size == 0:
        return empty
    side0 = np.asarray(shapely.contains_xy(usa, lon[hit], lat[hit]), dtype=bool)
    tt: list[float] = []
    xx: list[float] = []
    yy: list[float] = []
    dd: list[bool] = []
    for k, s0 in zip(hit.tolist(), side0.tolist(), strict=True):
        pts = shapely.get_coordinates(shapely.intersection(segs[k], border))
        dx, dy = lon[k + 1] - lon[k], lat[k + 1] - lat[k]
        den = dx * dx + dy * dy
        if pts.shape[0] == 0 or den == 0.0:
            continue
        f = np.clip(((pts[:, 0] - lon[k]) * dx + (pts[:, 1] - lat[k]) * dy) / den, 0.0, 1.0)
        f = np.unique(f)  # in order along the segment; a cut shared by two pieces counts once
        side = s0
        for fi in f.tolist():
            side = not side
            tt.append(float(t[k]) + fi * float(t[k + 1] - t[k]))
            xx.append(float(lon[k] + fi * dx))
            yy.append(float(lat[k] + fi * dy))
            dd.append(side)
    return np.array(tt), np.array(xx), np.array(yy), np.array(dd, dtype=bool)


CROSSING_COLUMNS = ("object_id", "time", "lon", "lat", "crossing_id", "illicit", "kind", "direction",
                    "site_lon", "site_lat")  # fmt: skip
"""Columns of ``truth/crossings.parquet`` (see ``README_OUT.md``)."""


def crossings_columns(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Crossing rows (from :class:`atalaya.scenario.movement.DayTraffic`) as the columns of the truth table."""
    rows = sorted(rows, key=lambda c: (c["time"], c["object_id"]))
    us = np.array([round(c["time"] * 1_000_000) for c in rows], dtype=np.int64)
    return {
        "object_id": pa.array([c["object_id"] for c in rows], type=pa.string()),
        "time": pa.array(us, type=pa.timestamp("us", tz="UTC")),
        "lon": pa.array([c["lon"] for c in rows], type=pa.float64()),
        "lat": pa.array([c["lat"] for c in rows], type=pa.float64()),
        "crossing_id": pa.array([c["crossing_id"] for c in rows], type=pa.string()),
        "illicit": pa.array([c["illicit"] for c in rows], type=pa.bool_()),
        "kind": pa.array([c["kind"] for c in rows], type=pa.string()),
        "direction": pa.array([c["direction"] for c in rows], type=pa.string()),
        "site_lon": pa.array([c["site_lon"] for c in rows], type=pa.float64()),
        "site_lat": pa.array([c["site_lat"] for c in rows], type=pa.float64()),
    }


def write_parquet(path: Path, columns: dict[str, Any], schema: pa.Schema | None = None) -> None:
    """Write a table deterministically (no wall-clock metadata)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table(columns, schema=schema) if schema is not None else pa.table(columns)
    pq.write_table(table, path, compression="zstd")


def write_json(path: Path, data: Any) -> None:
    """Stable, indented JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


@cache
def _territories() -> Territories:
    return load_territories()


@cache
def _transformers() -> tuple[Transformer, Transformer]:
    return (
        Transformer.from_crs("EPSG:4326", _LAEA, always_xy=True),
        Transformer.from_crs(_LAEA, "EPSG:4326", always_xy=True),
    )


@cache
def _projected_boundary(idx: int, simplified: bool = False) -> Any:
    t = _territories()
    fwd = _transformers()[0]
    b = t.geoms[idx].boundary
    pb = shapely.transform(b, lambda xy: np.column_stack(fwd.transform(xy[:, 0], xy[:, 1])))
    if simplified:
        pb = shapely.simplify(pb, 300.0)
    shapely.prepare(pb)
    return pb


def _depth_m(idx: int, lon: F64, lat: F64, *, coarse: bool = False) -> F64:
    x, y = _transformers()[0].transform(lon, lat)
    pts = shapely.points(np.asarray(x), np.asarray(y))
    return np.asarray(shapely.distance(pts, _projected_boundary(idx, coarse)), dtype=np.float64)


def _exact_depth_m(idx: int, lon: float, lat: float) -> float:
    """Geodesic distance from a point to the nearest boundary point (nearest point found in LAEA)."""
    fwd, inv = _transformers()
    x, y = fwd.transform(lon, lat)
    line = shapely.shortest_line(shapely.Point(x, y), _projected_boundary(idx))
    bx, by = shapely.get_coordinates(line)[1]
    blon, blat = inv.transform(bx, by)
    _, _, d = GEOD.inv(lon, lat, blon, blat)
    return float(d)


def _max_depth_m(cidx: int, idx: npt.NDArray[np.int64], lon: F64, lat: F64) -> float:
    """Largest depth into country ``cidx`` over the points ``idx`` (coarse search, exact refinement)."""
    if idx.size == 0:
        return 0.0
    coarse = np.unique(np.append(idx[::10], idx[-1]))
    d = _depth_m(cidx, lon[coarse], lat[coarse], coarse=True)
    # every coarse point that could be the deepest once the boundary is exact (simplification
    # ≤ 300 m, 10 s of flight ≤ 2.5 km) gets a 1 s window evaluated against the full boundary
    cands = coarse[d >= d.max() - 3_000.0]
    if cands.size > 40:
        cands = cands[np.argsort(-d[d >= d.max() - 3_000.0], kind="stable")[:40]]
    near = np.zeros(idx.size, dtype=bool)
    for c in cands.tolist():
        near |= (idx >= c - 10) & (idx <= c + 10)
    win = idx[near]
    dw = _depth_m(cidx, lon[win], lat[win])
    top = int(win[int(np.argmax(dw))])
    return _exact_depth_m(cidx, float(lon[top]), float(lat[top]))


def overflight(sortie: Sortie) -> list[dict[str, Any]]:
    """True per-territory figures of one sortie (country and state levels)."""
    t = _territories()
    lon, lat = sortie.lon, sortie.lat
    n = lon.size
    _, _, step_m = GEOD.inv(lon[:-1], lat[:-1], lon[1:], lat[1:])
    step_m = np.asarray(step_m)
    step_s = np.diff(sortie.t).astype(np.float64)
    rows: list[dict[str, Any]] = []
    country_lab = label_points(t, lon, lat, level="country")
    country_rows: dict[str, dict[str, Any]] = {}
    for level in ("country", "state"):
        lab = country_lab if level == "country" else label_points(t, lon, lat, level=level)
        ids = t.id_of(lab)
        start_of_run = np.ones(n, dtype=bool)
        start_of_run[1:] = lab[1:] != lab[:-1]
        for tid in sorted(set(ids.tolist())):
            m = ids == tid
            ms = m[:-1]
            owner = "INTL" if tid == "INTL" else str(t.owners[t.index_of(str(tid))])
            dmax = 0.0
            if tid != "INTL" and owner in t.country_index():
                cidx = t.index_of(owner)
                dmax = _max_depth_m(cidx, np.flatnonzero(m & (country_lab == cidx)), lon, lat) / 1000.0
            if level == "state" and owner in country_rows:
                crow = country_rows[owner]  # a country is at least as deep as any of its states
                crow["max_depth_km"] = max(crow["max_depth_km"], round(dmax, 3))
            rows.append(
                {
                    "sortie_id": sortie.sortie_id,
                    "level": level,
                    "territory_id": str(tid),
                    "owner": owner,
                    "time_s": float(step_s[ms].sum()),
                    "distance_km": float(step_m[ms].sum()) / 1000.0,
                    "entries": int((start_of_run & m).sum()),
                    "max_depth_km": round(dmax, 3),
                }
            )
            if level == "country":
                country_rows[str(tid)] = rows[-1]
    return rows


def host_depth_km(lon: F64, lat: F64, owner: str = "MEX") -> F64:
    """Depth (km) of each point into ``owner``'s territory: distance to its boundary (land border or 12 nm limit)."""
    t = _territories()
    return _depth_m(t.index_of(owner), np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)) / 1000.0


COMPLIANCE_STATUSES = ("compliant", "violation", "no-host")
"""Statuses of ``truth/compliance.json``."""


def expected_rules(sortie: Sortie, items: dict[str, dict[str, Any]]) -> tuple[str, list[str]]:
    """The status and the broken rules of one sortie, from its track as reported (GPX fixes) and its manifest.

    ``items`` are the agreements' collection items by id. Rule ids are those of
    :data:`atalaya.sovereignty.compliance.RULES`.
    """
    fx = reported_fixes(sortie.t)
    t, x, y, z = sortie.t[fx], np.round(sortie.lon[fx], 6), np.round(sortie.lat[fx], 6), np.round(sortie.alt[fx], 1)
    if not in_host(x, y).any():
        return "no-host", []
    if sortie.agreement_id is None:
        return "violation", ["no-agreement"]
    item = items.get(sortie.authorisation_id or "")
    if item is None or item["host"] != HOST:
        return "violation", ["collection-unknown"]
    rules = track_rules(t, x, y, z, sortie.platform_type, item)
    if sortie.notified_at is None or sortie.notified_at > sortie.takeoff - 3600 * float(item["notification_lead_h"]):
        rules.append("notification-late")
    due = sortie.landing + 3600 * float(item["report_deadline_h"])
    if sortie.report_filed_at is None:
        rules.append("report-missing")
    elif sortie.report_filed_at > due:
        rules.append("report-late")
    return ("violation" if rules else "compliant"), rules


def compliance_truth(sorties: list[Sortie], agreements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``truth/compliance.json``: per sortie, the expected status, the rules broken and which were planted."""
    items = {c["id"]: c for a in agreements for c in a["collection"]}
    out = []
    for s in sorties:
        status, rules = expected_rules(s, items)
        row = {"sortie_id": s.sortie_id, "mission": s.mission, "status": status, "rules": rules}
        out.append({**row, "planted": list(s.planted)})
    return out
