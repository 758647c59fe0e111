"""Corridors (H3 cell flows of many tracks) and MEX–USA border crossings with their hot spots.

Every function takes plain columns (track id, time in µs since the epoch,
lon, lat) so that any track source can feed it: identified tracks of the
fusion engine, AIS/ADS-B/CoT positions straight from the lake, or true
scenario tracks.

- :func:`h3_cells` — H3 cell of each point (exact; repeated positions are
  resolved once).
- :func:`corridor_flows` — per track, the sequence of visited cells (jumps over
  non-adjacent cells are filled along the H3 grid line); unique tracks per cell
  and per directed edge; corridors = connected chains of cells and edges used
  by at least ``min_tracks`` tracks, ranked by the number of tracks.
- :func:`border_crossings` — segments of consecutive points that change side
  (Mexico ↔ USA) and cut the land boundary line: crossing point, interpolated
  time and direction.
- :func:`crossing_hotspots` — crossings within ``radius_m`` of each other
  chained into hot spots with counts and a 24-hour profile.
- :func:`run_corridors` — the workspace job: tracks from the lake (or the
  identified tracks when present) → ``corridors`` and ``crossings`` tables.

>>> import numpy as np
>>> f = corridor_flows(np.array([], dtype=np.int64), np.array([], dtype=np.int64), np.array([]), np.array([]))
>>> f.corridors.num_rows, f.cells.num_rows
(0, 0)
>>> x = border_crossings(np.array([1, 1]), np.array([0, 60_000_000]), np.array([-106.45, -106.45]),
...                      np.array([31.70, 31.80]))
>>> x.column("direction").to_pylist(), round(x.column("lat")[0].as_py(), 2)
(['north'], 31.76)
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import h3.api.numpy_int as h3n
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import shapely
from shapely.geometry.base import BaseGeometry

from atalaya.core.errors import ValidationError
from atalaya.core.ids import new_run_id
from atalaya.core.markings import NO_INPUTS_MARKING, combine_groups, combine_texts
from atalaya.core.provenance import Provenance
from atalaya.core.workspace import Workspace
from atalaya.geo.kernels import geodesic_distance
from atalaya.geo.naturalearth import load_layer
from atalaya.store.knowledge import KnowledgeStore, upsert
from atalaya.store.knowledge import schema as ks
from atalaya.store.lake import Lake, bucket_count

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

METHOD = "corridors/h3-flows-v1"
CROSSING_METHOD = "crossings/segment-border-v1"
_US_PER_S = 1_000_000
_M_PER_DEG = 111_320.0


# --------------------------------------------------------------------------- shared helpers


def as_codes(track_id: Any) -> tuple[I64, npt.NDArray[Any]]:
    """Dense integer codes of track ids (any dtype) and the distinct ids in code order.

    >>> c, u = as_codes(np.array(["b", "a", "b"], dtype=object))
    >>> c.tolist(), u.tolist()
    ([1, 0, 1], ['a', 'b'])
    >>> as_codes(np.array([]))[0].size
    0
    """
    if isinstance(track_id, (pa.Array, pa.ChunkedArray)):
        return _arrow_codes(track_id)
    arr = np.asarray(track_id)
    if arr.dtype == object:
        arr = arr.astype(str)
    uniq, inv = np.unique(arr, return_inverse=True)
    return inv.astype(np.int64).ravel(), uniq


def _arrow_codes(col: pa.Array | pa.ChunkedArray) -> tuple[I64, npt.NDArray[Any]]:
    """:func:`as_codes` of an Arrow column without a Python object per row: each chunk is dictionary-encoded
    (hashing, in Arrow) and only the distinct ids are sorted, so the codes are the same as NumPy's.

    >>> col = pa.chunked_array([pa.array(["b", "a"]).dictionary_encode(), pa.array(["c", "b"]).dictionary_encode()])
    >>> c, u = as_codes(col)
    >>> c.tolist(), u.tolist()
    ([1, 0, 2, 1], ['a', 'b', 'c'])
    """
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    idx: list[I64] = []
    dicts: list[npt.NDArray[Any]] = []
    for c in chunks:
        d = c if pa.types.is_dictionary(c.type) else pc.dictionary_encode(c)
        idx.append(np.asarray(d.indices.to_numpy(zero_copy_only=False), dtype=np.int64))
        dicts.append(np.asarray(d.dictionary.to_pylist(), dtype=object).astype(str))
    if not idx:
        return np.zeros(0, np.int64), np.zeros(0, dtype=str)
    uniq, inv = np.unique(np.concatenate(dicts), return_inverse=True)
    offsets = np.cumsum([0] + [d.size for d in dicts[:-1]])
    codes = np.concatenate([inv.ravel()[o + i] for o, i in zip(offsets.tolist(), idx, strict=True)])
    return codes.astype(np.int64), uniq


def check_columns(**cols: Any) -> int:
    """Length shared by all columns (raises :class:`ValidationError` with a hint when they differ)."""
    sizes = {k: len(v) if isinstance(v, (pa.Array, pa.ChunkedArray)) else int(np.asarray(v).size)
             for k, v in cols.items() if v is not None}  # fmt: skip
    if len(set(sizes.values())) > 1:
        raise ValidationError(
            f"columns differ in length: {sizes}", hint="pass one value per point in every column (same order)"
        )
    return next(iter(sizes.values()), 0)


def sort_tracks(codes: I64, time_us: I64) -> npt.NDArray[np.intp]:
    """Order that sorts points by track, then time."""
    return np.lexsort((time_us, codes))


def neighbour_pairs(group: I64, lon: F64, lat: F64, radius_m: float) -> tuple[I64, I64, F64]:
    """Pairs ``(i, j, distance)`` with ``i < j``, the same ``group`` and within ``radius_m`` (geodesic).

    Points are bucketed by group and a lon/lat grid of about ``radius_m``; only
    buckets that touch are compared, so the cost follows the number of close
    pairs, not ``n²``.

    >>> i, j, d = neighbour_pairs(np.array([0, 0, 1]), np.array([0.0, 0.001, 0.0]), np.zeros(3), 200.0)
    >>> i.tolist(), j.tolist(), [round(x) for x in d]
    ([0], [1], [111])
    >>> neighbour_pairs(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), 1.0)[0].size
    0
    """
    n = lon.size
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    if n < 2:
        return empty
    max_lat = min(float(np.max(np.abs(lat))), 85.0)
    step_y = radius_m / _M_PER_DEG * 1.01
    step_x = step_y / math.cos(math.radians(max_lat))
    cx = np.floor((lon + 180.0) / step_x).astype(np.int64)
    cy = np.floor((lat + 90.0) / step_y).astype(np.int64)
    width = int(cx.max()) + 3
    height = int(cy.max()) + 3
    g = group.astype(np.int64) - int(group.min())
    key = (g * height + cy) * width + cx
    order = np.argsort(key, kind="stable")
    ks_ = key[order]
    ii: list[I64] = []
    jj: list[I64] = []
    # half of the neighbourhood (the other half is the same pairs reversed)
    for dy, dx in ((0, 0), (0, 1), (1, -1), (1, 0), (1, 1)):
        q = key + dy * width + dx
        lo = np.searchsorted(ks_, q, side="left")
        hi = np.searchsorted(ks_, q, side="right")
        cnt = hi - lo
        tot = int(cnt.sum())
        if tot == 0:
            continue
        rep = np.repeat(np.arange(n), cnt)
        starts = np.repeat(lo - np.cumsum(np.r_[0, cnt[:-1]]), cnt)
        other = order[starts + np.arange(tot)]
        if dy == 0 and dx == 0:
            keep = rep < other
            rep, other = rep[keep], other[keep]
        ii.append(rep)
        jj.append(other)
    if not ii:
        return empty
    i = np.concatenate(ii)
    j = np.concatenate(jj)
    d = geodesic_distance(lon[i], lat[i], lon[j], lat[j])
    keep = d <= radius_m
    a, b = np.minimum(i[keep], j[keep]), np.maximum(i[keep], j[keep])
    return a.astype(np.int64), b.astype(np.int64), d[keep]


def unique_rows(*cols: I64) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.intp], I64]:
    """Distinct rows of int64 columns: ``(rows (k, m), inverse (n,), counts (k,))``, rows sorted.

    Faster than ``np.unique(axis=0)`` (a lexsort and one comparison per column).

    >>> r, inv, c = unique_rows(np.array([2, 1, 2]), np.array([5, 7, 5]))
    >>> r.tolist(), inv.tolist(), c.tolist()
    ([[1, 7], [2, 5]], [1, 0, 1], [1, 2])
    >>> unique_rows(np.zeros(0, np.int64))[0].shape
    (0, 1)
    """
    n = cols[0].size
    if n == 0:
        return np.zeros((0, len(cols)), np.int64), np.zeros(0, np.intp), np.zeros(0, np.int64)
    order = np.lexsort(cols[::-1])
    new = np.zeros(n, dtype=bool)
    new[0] = True
    for c in cols:
        sc = c[order]
        new[1:] |= sc[1:] != sc[:-1]
    starts = np.flatnonzero(new)
    rows = np.column_stack([c[order][starts] for c in cols]).astype(np.int64)
    inv = np.empty(n, dtype=np.intp)
    inv[order] = np.cumsum(new) - 1
    counts = np.diff(np.r_[starts, n]).astype(np.int64)
    return rows, inv, counts


def connected_components(n: int, a: I64, b: I64) -> I64:
    """Component label (smallest member index) of ``n`` nodes joined by edges ``a[k]–b[k]``.

    Vectorised label propagation with pointer jumping.

    >>> connected_components(5, np.array([0, 3]), np.array([1, 4])).tolist()
    [0, 0, 2, 3, 3]
    >>> connected_components(0, np.zeros(0, np.int64), np.zeros(0, np.int64)).size
    0
    """
    lab = np.arange(n, dtype=np.int64)
    if a.size == 0:
        return lab
    while True:
        m = np.minimum(lab[a], lab[b])
        new = lab.copy()
        np.minimum.at(new, a, m)
        np.minimum.at(new, b, m)
        new = new[new]  # pointer jumping
        new = new[new]
        if np.array_equal(new, lab):
            return lab
        lab = new


# --------------------------------------------------------------------------- H3


def _h3_loop(lat: F64, lon: F64, res: int) -> I64:
    """``latlng_to_cell`` per point (the exact fallback)."""
    f = h3n.latlng_to_cell
    cells = np.fromiter((f(la, lo, res) for la, lo in zip(lat.tolist(), lon.tolist(), strict=True)),
                        dtype=np.uint64, count=lat.size)  # fmt: skip
    out: I64 = cells.view(np.int64)
    return out


def _inradius_m(cells: I64) -> tuple[F64, F64, F64]:
    """Centre lat, lon and inscribed-circle radius (metres, local plane) of each cell."""
    lat = np.empty(cells.size)
    lon = np.empty(cells.size)
    rad = np.empty(cells.size)
    for k, c in enumerate(cells.tolist()):  # one call per distinct cell (few)
        u = c & 0xFFFFFFFFFFFFFFFF
        la, lo = h3n.cell_to_latlng(u)
        v = np.asarray(h3n.cell_to_boundary(u), dtype=np.float64)
        kx = _M_PER_DEG * math.cos(math.radians(la))
        px, py = (v[:, 1] - lo) * kx, (v[:, 0] - la) * _M_PER_DEG
        qx, qy = np.roll(px, -1), np.roll(py, -1)
        ex, ey = qx - px, qy - py
        # distance from the centre (origin) to each edge's line
        d = np.abs(px * ey - py * ex) / np.maximum(np.hypot(ex, ey), 1e-9)
        lat[k], lon[k], rad[k] = la, lo, float(d.min())
    return lat, lon, rad


def h3_cells(lon: Any, lat: Any, res: int) -> I64:
    """H3 cell (as int64) of each point at resolution ``res``, exact.

    Points are binned on a lon/lat grid of 1/8 of the cell edge; the cell of
    each bin centre is looked up once, and a bin that lies wholly inside the
    inscribed circle of that cell (with a 5 % margin) gives its cell to all its
    points. Points in the other bins (near cell edges) are looked up one by
    one, so the result equals ``latlng_to_cell`` per point.

    >>> h3_cells(np.array([-99.13]), np.array([19.43]), 6).tolist() == [h3n.latlng_to_cell(19.43, -99.13, 6)]
    True
    >>> h3_cells(np.array([]), np.array([]), 6).size
    0
    """
    if not 0 <= res <= 15:
        raise ValidationError(f"H3 resolution must be 0–15, got {res}", hint="corridors use 5–8; 6 is ≈ 36 km² cells")
    x = np.asarray(lon, dtype=np.float64).ravel()
    y = np.asarray(lat, dtype=np.float64).ravel()
    if x.size == 0:
        return np.zeros(0, dtype=np.int64)
    if x.size < 1000 or float(np.max(np.abs(y))) > 80.0:
        return _h3_loop(y, x, res)
    q = h3n.average_hexagon_edge_length(res, "m") / 8.0 / _M_PER_DEG
    bx = np.floor((x + 180.0) / q).astype(np.int64)
    by = np.floor((y + 90.0) / q).astype(np.int64)
    ukey, inv = np.unique(by * (1 << 32) + bx, return_inverse=True)
    inv = inv.ravel()
    cx = ((ukey & 0xFFFFFFFF) + 0.5) * q - 180.0
    cy = ((ukey >> 32) + 0.5) * q - 90.0
    bin_cell = _h3_loop(cy, cx, res)
    ucell, cinv = np.unique(bin_cell, return_inverse=True)
    clat, clon, crad = _inradius_m(ucell)
    cinv = cinv.ravel()
    kx = _M_PER_DEG * np.cos(np.radians(cy))
    dist = np.hypot((cx - clon[cinv]) * kx, (cy - clat[cinv]) * _M_PER_DEG)
    half_diag = 0.5 * q * np.hypot(kx, _M_PER_DEG)
    safe = dist + half_diag <= 0.95 * crad[cinv]
    out = bin_cell[inv]
    todo = np.flatnonzero(~safe[inv])
    if todo.size:
        out[todo] = _h3_loop(y[todo], x[todo], res)
    return out


def cell_str(cells: Any) -> list[str]:
    """H3 cells (int64) as their hex strings."""
    return [format(int(c) & 0xFFFFFFFFFFFFFFFF, "x") for c in np.asarray(cells, dtype=np.int64).tolist()]


def cell_int(cells: Sequence[str]) -> I64:
    """H3 hex strings as int64 cells (inverse of :func:`cell_str`)."""
    return np.array([int(c, 16) for c in cells], dtype=np.uint64).view(np.int64)


# --------------------------------------------------------------------------- corridors


@dataclass(frozen=True, kw_only=True)
class CorridorParams:
    """Settings of :func:`corridor_flows`."""

    res: int = 6
    """H3 resolution of the flow grid (6: edge ≈ 3.7 km; 7: ≈ 1.4 km)."""
    min_tracks: int = 3
    """Cells and edges used by fewer distinct tracks do not form corridors."""
    min_cells: int = 3
    """Corridors with fewer cells are dropped."""
    max_fill: int = 40
    """Jumps between non-adjacent cells up to this grid distance are filled along the H3 line; longer ones break."""
    max_gap_s: float = 3 * 3600.0
    """Consecutive points further apart in time are not joined."""


@dataclass(frozen=True, kw_only=True)
class Flows:
    """Output of :func:`corridor_flows` (Arrow tables)."""

    cells: pa.Table
    """``cell`` (int64 H3), ``tracks`` (distinct tracks), ``corridor`` (id or -1)."""
    edges: pa.Table
    """``src``, ``dst`` (int64 H3, adjacent), ``tracks`` (distinct tracks taking the step)."""
    corridors: pa.Table
    """``corridor``, ``rank`` (1 = most used), ``volume`` (distinct tracks), ``n_cells``, ``cells`` (hex strings),
    ``lon``, ``lat`` (centre of the busiest cell)."""


def _fill_jumps(src: I64, dst: I64, max_fill: int) -> tuple[I64, I64, I64]:
    """Split jumps ``src→dst`` (non-adjacent) into adjacent steps; returns (jump index, step src, step dst)."""
    pairs = unique_rows(src, dst)[0]
    paths: dict[tuple[int, int], list[int]] = {}
    for a, b in pairs.tolist():
        ua, ub = a & 0xFFFFFFFFFFFFFFFF, b & 0xFFFFFFFFFFFFFFFF
        try:
            if h3n.grid_distance(ua, ub) > max_fill:
                continue
            p = [int(c) for c in h3n.grid_path_cells(ua, ub)]
        except Exception:  # h3 raises for pentagon distortion and distant cells: treat as a break
            continue
        paths[(a, b)] = [c - (1 << 64) if c >= 1 << 63 else c for c in p]
    ji: list[int] = []
    ss: list[int] = []
    dd: list[int] = []
    for k, (a, b) in enumerate(zip(src.tolist(), dst.tolist(), strict=True)):
        path = paths.get((a, b))
        if path is None:
            continue
        ji.extend([k] * (len(path) - 1))
        ss.extend(path[:-1])
        dd.extend(path[1:])
    return np.array(ji, np.int64), np.array(ss, np.int64), np.array(dd, np.int64)


def corridor_flows(track_id: Any, time_us: Any, lon: Any, lat: Any, *, params: CorridorParams | None = None) -> Flows:
    """Cell flows of many tracks and the corridors they form.

    Per track (points sorted by time), consecutive cells give directed steps;
    a jump to a non-adjacent cell within ``max_fill`` grid steps (and
    ``max_gap_s``) is replaced by the cells of the H3 grid line between them.
    A cell's volume is the number of distinct tracks visiting it; an edge's the
    number of distinct tracks taking that step. Cells and edges with at least
    ``min_tracks`` tracks are joined into connected components; each component
    of ``min_cells`` or more is a corridor, ranked by the distinct tracks that
    use its cells.

    >>> t = np.repeat(np.arange(4), 30)
    >>> lon = np.tile(np.linspace(-100.0, -99.0, 30), 4)
    >>> f = corridor_flows(t, np.tile(np.arange(30) * 60_000_000, 4), lon, np.full(120, 20.0))
    >>> f.corridors.column("volume").to_pylist(), f.corridors.column("n_cells")[0].as_py() >= 10
    ([4], True)
    """
    p = params or CorridorParams()
    return _flows_from_steps(*visits_steps(track_id, time_us, lon, lat, p), p)


def visits_steps(
    track_id: Any, time_us: Any, lon: Any, lat: Any, p: CorridorParams, *, distinct: bool = False
) -> tuple[I64, I64, I64, I64, I64]:
    """``(track, cell)`` of each visit and ``(track, src, dst)`` of each adjacent step of the tracks (tracks as
    dense codes from 0); with ``distinct``, each once: all that corridors need of a set of tracks, so that
    several sets can be read one at a time and joined (:func:`flows_of_parts`)."""
    n = check_columns(track_id=track_id, time_us=time_us, lon=lon, lat=lat)
    codes, _ = as_codes(track_id) if n else (np.zeros(0, np.int64), None)
    t = np.asarray(time_us, dtype=np.int64).ravel()
    x = np.asarray(lon, dtype=np.float64).ravel()
    y = np.asarray(lat, dtype=np.float64).ravel()
    ok = np.isfinite(x) & np.isfinite(y)
    codes, t, x, y = codes[ok], t[ok], x[ok], y[ok]
    order = sort_tracks(codes, t)
    codes, t = codes[order], t[order]
    cells = h3_cells(x[order], y[order], p.res)
    # visits: (track, cell); steps: (track, src, dst)
    same = np.zeros(cells.size, dtype=bool)
    same[1:] = codes[1:] == codes[:-1]
    moved = same.copy()
    moved[1:] &= cells[1:] != cells[:-1]
    moved[1:] &= (t[1:] - t[:-1]) <= p.max_gap_s * _US_PER_S
    k = np.flatnonzero(moved)
    src, dst, trk = cells[k - 1], cells[k], codes[k]
    adj = np.zeros(k.size, dtype=bool)
    if k.size:
        # neighbours share a parent-free adjacency test; h3 answers per pair (unique pairs only)
        pairs, pinv, _ = unique_rows(src, dst)
        nb = np.fromiter(
            (
                h3n.are_neighbor_cells(int(a) & 0xFFFFFFFFFFFFFFFF, int(b) & 0xFFFFFFFFFFFFFFFF)
                for a, b in pairs.tolist()
            ),
            dtype=bool,
            count=len(pairs),
        )
        adj = nb[pinv.ravel()]
    ji, fs, fd = _fill_jumps(src[~adj], dst[~adj], p.max_fill)
    step_trk = np.concatenate([trk[adj], trk[~adj][ji]])
    step_src = np.concatenate([src[adj], fs])
    step_dst = np.concatenate([dst[adj], fd])
    v_trk = np.concatenate([codes, step_trk, step_trk])
    v_cell = np.concatenate([cells, step_src, step_dst])
    if not distinct:
        return v_trk, v_cell, step_trk, step_src, step_dst
    visits = unique_rows(v_trk, v_cell)[0]
    steps = unique_rows(step_trk, step_src, step_dst)[0]
    return visits[:, 0], visits[:, 1], steps[:, 0], steps[:, 1], steps[:, 2]


def flows_of_parts(parts: Sequence[tuple[I64, I64, I64, I64, I64]], p: CorridorParams) -> Flows:
    """:func:`corridor_flows` of several sets of tracks from their :func:`visits_steps`, each set's tracks numbered
    after the previous set's (the same flows as one call over all of them)."""
    off = 0
    out: list[tuple[I64, I64, I64, I64, I64]] = []
    for vt, vc, st, ss, sd in parts:
        out.append((vt + off, vc, st + off, ss, sd))
        off += int(vt.max()) + 1 if vt.size else 0  # every step's track visits a cell too
    if not out:
        z = np.zeros(0, np.int64)
        return _flows_from_steps(z, z, z, z, z, p)
    vt, vc, st, ss, sd = (np.concatenate(c) for c in zip(*out, strict=True))
    return _flows_from_steps(vt, vc, st, ss, sd, p)


def _flows_from_steps(
    v_trk: I64, v_cell: I64, s_trk: I64, s_src: I64, s_dst: I64, p: CorridorParams
) -> Flows:  # fmt: skip
    visits = unique_rows(v_trk, v_cell)[0]
    ucell, cinv, ccount = np.unique(visits[:, 1], return_inverse=True, return_counts=True)
    cinv = cinv.ravel()
    steps = unique_rows(s_trk, s_src, s_dst)[0]
    uedge, _, ecount = unique_rows(steps[:, 1], steps[:, 2])
    hot_cell = ccount >= p.min_tracks
    ei = np.searchsorted(ucell, uedge[:, 0]) if len(uedge) else np.zeros(0, np.int64)
    ej = np.searchsorted(ucell, uedge[:, 1]) if len(uedge) else np.zeros(0, np.int64)
    hot_edge = (ecount >= p.min_tracks) & hot_cell[ei] & hot_cell[ej] if len(uedge) else np.zeros(0, bool)
    lab = connected_components(ucell.size, ei[hot_edge].astype(np.int64), ej[hot_edge].astype(np.int64))
    in_edge = np.zeros(ucell.size, dtype=bool)
    in_edge[ei[hot_edge]] = True
    in_edge[ej[hot_edge]] = True
    member = hot_cell & in_edge
    comp = np.where(member, lab, -1)
    # component sizes and volumes (distinct tracks over member cells)
    roots, rinv, rsize = np.unique(comp[member], return_inverse=True, return_counts=True)
    keep_root = rsize >= p.min_cells
    vis_comp = comp[cinv]
    vm = vis_comp >= 0
    tv = unique_rows(vis_comp[vm], visits[vm, 0])[0]
    root_vol = np.zeros(roots.size, dtype=np.int64)
    if len(tv):
        np.add.at(root_vol, np.searchsorted(roots, tv[:, 0]), 1)
    kept = np.flatnonzero(keep_root)
    rank_order = kept[np.lexsort((roots[kept], -root_vol[kept]))]
    corr_id = np.full(roots.size, -1, dtype=np.int64)
    corr_id[rank_order] = np.arange(rank_order.size)
    cell_corr = np.full(ucell.size, -1, dtype=np.int64)
    cell_corr[member] = corr_id[rinv.ravel()]
    c_cells: list[list[str]] = []
    c_lon: list[float] = []
    c_lat: list[float] = []
    by_corr = np.argsort(cell_corr, kind="stable")
    bounds = np.searchsorted(cell_corr[by_corr], np.arange(rank_order.size + 1))
    for r in range(rank_order.size):
        idx = by_corr[bounds[r] : bounds[r + 1]]
        idx = idx[np.lexsort((ucell[idx], -ccount[idx]))]
        c_cells.append(cell_str(ucell[idx]))
        la, lo = h3n.cell_to_latlng(int(ucell[idx[0]]) & 0xFFFFFFFFFFFFFFFF)
        c_lon.append(float(lo))
        c_lat.append(float(la))
    corridors = pa.table(
        {
            "corridor": pa.array(np.arange(rank_order.size), pa.int64()),
            "rank": pa.array(np.arange(1, rank_order.size + 1), pa.int64()),
            "volume": pa.array(root_vol[rank_order], pa.int64()),
            "n_cells": pa.array(rsize[rank_order], pa.int64()),
            "cells": pa.array(c_cells, pa.list_(pa.string())),
            "lon": pa.array(c_lon, pa.float64()),
            "lat": pa.array(c_lat, pa.float64()),
        }
    )
    return Flows(
        cells=pa.table({"cell": ucell, "tracks": ccount.astype(np.int64), "corridor": cell_corr}),
        edges=pa.table({"src": uedge[:, 0], "dst": uedge[:, 1], "tracks": ecount}),
        corridors=corridors,
    )


# --------------------------------------------------------------------------- border crossings


@dataclass(frozen=True, kw_only=True)
class Border:
    """A boundary line cut into straight pieces, indexed for segment queries."""

    x0: F64
    """Start lon of each piece."""
    y0: F64
    """Start lat of each piece."""
    x1: F64
    """End lon of each piece."""
    y1: F64
    """End lat of each piece."""
    b_left: B
    """Whether side B (e.g. the USA) lies left of each piece (looking from start to end)."""
    tree: shapely.STRtree
    """R-tree over the pieces."""

    @classmethod
    def from_line(cls, line: BaseGeometry, side_b: BaseGeometry) -> Border:
        """Cut a (multi)line into pieces; ``side_b`` is a polygon on one side of it (sets :attr:`b_left`)."""
        parts = shapely.get_parts(line)
        coords, idx = shapely.get_coordinates(parts, return_index=True)
        same = idx[1:] == idx[:-1]
        a, b = coords[:-1][same], coords[1:][same]
        dx, dy = b[:, 0] - a[:, 0], b[:, 1] - a[:, 1]
        norm = np.maximum(np.hypot(dx, dy), 1e-12)
        mx, my = (a[:, 0] + b[:, 0]) / 2, (a[:, 1] + b[:, 1]) / 2
        off = 1e-4  # ≈ 10 m to the left of the piece's midpoint
        left_in = shapely.contains_xy(side_b, mx - dy / norm * off, my + dx / norm * off)
        right_in = shapely.contains_xy(side_b, mx + dy / norm * off, my - dx / norm * off)
        # where both or neither test falls in side B (tiny pieces), trust the majority orientation of the part
        b_left = np.where(left_in != right_in, left_in, left_in.mean() >= 0.5 if left_in.size else False)
        segs = shapely.linestrings(np.stack([a, b], axis=1)) if len(a) else np.zeros(0, dtype=object)
        return cls(x0=a[:, 0], y0=a[:, 1], x1=b[:, 0], y1=b[:, 1], b_left=b_left.astype(bool),
                   tree=shapely.STRtree(segs))  # fmt: skip


@cache
def mex_usa_border() -> Border:
    """The MEX–USA land boundary (Natural Earth ``boundary_lines_land``), side B = USA (admin-0 polygon)."""
    parts = [
        g
        for props, g in load_layer("boundary_lines_land")
        if {props.get("adm0_a3_l"), props.get("adm0_a3_r")} == {"MEX", "USA"}
    ]
    usa = shapely.union_all([g for props, g in load_layer("admin0_region") if props.get("adm0_a3") == "USA"])
    shapely.prepare(usa)
    return Border.from_line(shapely.union_all(parts), usa)


@dataclass(frozen=True, kw_only=True)
class CrossingParams:
    """Settings of :func:`border_crossings`."""

    max_gap_s: float = 6 * 3600.0
    """Consecutive points further apart in time are not joined (the crossing time would be a guess)."""
    max_speed_mps: float | None = None
    """Consecutive points whose straight-line speed exceeds this are not joined (``None``: no test)."""
    dense_s: float = 120.0
    """Points at most this far apart are trusted to move in a straight line: every cut between them is a
    crossing (in and out across a meander). Further apart, only the net change of side counts."""


def border_crossings(
    track_id: Any,
    time_us: Any,
    lon: Any,
    lat: Any,
    *,
    params: CrossingParams | None = None,
    border: Border | None = None,
) -> pa.Table:
    """Where tracks cross a border line: the cuts of the line by segments of consecutive points.

    Each segment of consecutive points (same track, at most ``max_gap_s``
    apart and, when ``max_speed_mps`` is set, no faster than that in a
    straight line) is tested against the border pieces near it (R-tree).
    Between dense fixes (at most ``dense_s`` apart) the segment is the path:
    every cut is a crossing. Across a longer gap only the change of side is
    known: a segment that cuts the line an even number of times ends where it
    started (a chord across a meander) and is not a crossing; otherwise the
    crossing is inferred at its first cut. Times are interpolated along the
    segment.

    Returns ``track`` (the given id, as text), ``time_us``, ``lon``, ``lat``,
    ``direction`` (``north`` = into side B, by default into the USA; ``south``
    = out of it) and ``gap_s`` (time between the two points: the time
    uncertainty).

    >>> x = border_crossings(np.array(["a", "a", "a"]), np.array([0, 1, 2]) * 600_000_000,
    ...                      np.array([-106.45, -106.45, -106.45]), np.array([31.70, 31.80, 31.70]))
    >>> x.column("direction").to_pylist()
    ['north', 'south']
    >>> border_crossings(np.array([]), np.array([], dtype=np.int64), np.array([]), np.array([])).num_rows
    0
    """
    p = params or CrossingParams()
    bd = border if border is not None else mex_usa_border()
    n = check_columns(track_id=track_id, time_us=time_us, lon=lon, lat=lat)
    codes, uniq = as_codes(track_id) if n else (np.zeros(0, np.int64), np.zeros(0, dtype=object))
    t = np.asarray(time_us, dtype=np.int64).ravel()
    x = np.asarray(lon, dtype=np.float64).ravel()
    y = np.asarray(lat, dtype=np.float64).ravel()
    order = sort_tracks(codes, t)
    codes, t, x, y = codes[order], t[order], x[order], y[order]
    k = np.flatnonzero((codes[1:] == codes[:-1]) & ((t[1:] - t[:-1]) <= p.max_gap_s * _US_PER_S)) + 1
    if p.max_speed_mps is not None and k.size:
        d = geodesic_distance(x[k - 1], y[k - 1], x[k], y[k])
        k = k[d <= p.max_speed_mps * np.maximum((t[k] - t[k - 1]) / _US_PER_S, 1.0)]
    # cheap prefilter: segments whose box meets the border's box
    if bd.x0.size and k.size:
        bx0, bx1 = min(bd.x0.min(), bd.x1.min()), max(bd.x0.max(), bd.x1.max())
        by0, by1 = min(bd.y0.min(), bd.y1.min()), max(bd.y0.max(), bd.y1.max())
        sx0, sx1 = np.minimum(x[k - 1], x[k]), np.maximum(x[k - 1], x[k])
        sy0, sy1 = np.minimum(y[k - 1], y[k]), np.maximum(y[k - 1], y[k])
        k = k[(sx1 >= bx0) & (sx0 <= bx1) & (sy1 >= by0) & (sy0 <= by1) & ((sx1 > sx0) | (sy1 > sy0))]
    else:
        k = np.zeros(0, np.int64)
    segs = shapely.linestrings(np.stack([np.column_stack([x[k - 1], y[k - 1]]), np.column_stack([x[k], y[k]])], 1))
    qs, qb = bd.tree.query(segs, predicate="intersects") if k.size else (np.zeros(0, np.int64),) * 2
    # exact cut parameters (segment a→b against piece p→q)
    ax, ay = x[k - 1][qs], y[k - 1][qs]
    rx, ry = x[k][qs] - ax, y[k][qs] - ay
    px, py = bd.x0[qb], bd.y0[qb]
    sx, sy = bd.x1[qb] - px, bd.y1[qb] - py
    den = rx * sy - ry * sx
    par = np.abs(den) > 1e-18
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.where(par, ((px - ax) * sy - (py - ay) * sx) / np.where(par, den, 1.0), 0.0)
    u = np.clip(u, 0.0, 1.0)
    # cuts per segment: every cut of a dense segment; the first cut of a sparse one cut an odd number of times
    cnt = np.bincount(qs, minlength=k.size)
    dense = (t[k] - t[k - 1]) <= p.dense_s * _US_PER_S
    first = np.lexsort((u, qs))
    lead = np.r_[True, qs[first][1:] != qs[first][:-1]] if first.size else np.zeros(0, dtype=bool)
    head = first[dense[qs[first]] | (lead & (cnt[qs[first]] % 2 == 1))]
    seg = qs[head]
    kk = k[seg]
    f = u[head]
    into_b = (den[head] < 0) == bd.b_left[qb[head]]  # r × s < 0: moving to the left of the piece
    tt = t[kk - 1] + np.round(f * (t[kk] - t[kk - 1])).astype(np.int64)
    return pa.table(
        {
            "track": pa.array(uniq.astype(str)[codes[kk]].tolist() if kk.size else [], pa.string()),
            "time_us": pa.array(tt, pa.int64()),
            "lon": pa.array(x[kk - 1] + f * (x[kk] - x[kk - 1]), pa.float64()),
            "lat": pa.array(y[kk - 1] + f * (y[kk] - y[kk - 1]), pa.float64()),
            "direction": pa.array(np.where(into_b, "north", "south").tolist(), pa.string()),
            "gap_s": pa.array((t[kk] - t[kk - 1]) / _US_PER_S, pa.float64()),
        }
    )


MAX_SPEED_MPS: dict[str, float] = {"vehicle": 50.0, "vessel": 30.0, "aircraft": 350.0}
"""Fastest plausible straight-line speed across a gap, per object kind (other kinds: the largest)."""
GAP_S = 120.0
"""Crossings inferred across a longer silence than this are marked ``method = gap``."""


LINK_GAP_S = 900.0
"""Id-less track fragments ending on one side and starting on the other at most this much later may be one object."""
SAME_EVENT_M = 300.0
"""Crossings of different tracks within this distance …"""
SAME_EVENT_S = 120.0
"""… and this time are one event seen twice (e.g. a tagged vehicle also tracked by GMTI): the first is kept."""


def link_fragments(
    track_id: Any, time_us: Any, lon: Any, lat: Any, *, max_gap_s: float = LINK_GAP_S, max_speed_mps: float = 50.0
) -> tuple[I64, I64]:
    """Pairs ``(end row, start row)``: a track's last point and a later track's first point it could continue into.

    The start follows the end by at most ``max_gap_s`` and lies within reach at
    ``max_speed_mps`` (plus 500 m for position error). Each end and each start
    is used once, closest in time first. Rows index the given columns.

    >>> e, s = link_fragments(np.array([1, 1, 2, 2]), np.array([0, 60, 300, 360]) * 1_000_000,
    ...                       np.array([0.0, 0.001, 0.004, 0.005]), np.zeros(4))
    >>> e.tolist(), s.tolist()
    ([1], [2])
    """
    n = check_columns(track_id=track_id, time_us=time_us, lon=lon, lat=lat)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    if n == 0:
        return empty
    codes, _ = as_codes(track_id)
    t = np.asarray(time_us, dtype=np.int64).ravel()
    x = np.asarray(lon, dtype=np.float64).ravel()
    y = np.asarray(lat, dtype=np.float64).ravel()
    order = sort_tracks(codes, t)
    c = codes[order]
    last = order[np.r_[c[1:] != c[:-1], True]]
    first = order[np.r_[True, c[1:] != c[:-1]]]
    by_t = first[np.argsort(t[first], kind="stable")]
    ts = t[by_t]
    lo = np.searchsorted(ts, t[last], side="right")
    hi = np.searchsorted(ts, t[last] + int(max_gap_s * _US_PER_S), side="right")
    cnt = hi - lo
    if int(cnt.sum()) == 0:
        return empty
    a = np.repeat(last, cnt)
    b = by_t[np.repeat(lo - np.cumsum(np.r_[0, cnt[:-1]]), cnt) + np.arange(int(cnt.sum()))]
    dt = (t[b] - t[a]) / _US_PER_S
    ok = (codes[a] != codes[b]) & (geodesic_distance(x[a], y[a], x[b], y[b]) <= max_speed_mps * dt + 500.0)
    a, b, dt = a[ok], b[ok], dt[ok]
    used_a: set[int] = set()
    used_b: set[int] = set()
    ea: list[int] = []
    sb: list[int] = []
    for k in np.argsort(dt, kind="stable").tolist():
        i, j = int(a[k]), int(b[k])
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            ea.append(i)
            sb.append(j)
    return np.array(ea, np.int64), np.array(sb, np.int64)


def _distinct(col: pa.ChunkedArray | pa.Array) -> list[Any]:
    """Sorted distinct values of a column (plain or dictionary), without a Python object per row."""
    u = pc.unique(col)
    if pa.types.is_dictionary(u.type):
        u = u.cast(u.type.value_type)
    return sorted(v for v in u.to_pylist() if v is not None)


def _source_of(pts: pa.Table, tracks: pa.ChunkedArray | pa.Array) -> dict[str, str]:
    """Tracks file (``source``) of each of ``tracks``, looked up among the points' tracks."""
    want = pa.array(_distinct(tracks), pa.string())
    sel = pts.filter(pc.is_in(pts.column("track_id"), want))
    pairs = pa.table({"t": sel.column("track_id").cast(pa.string()), "s": sel.column("source").cast(pa.string())})
    pairs = pairs.group_by(["t", "s"]).aggregate([])
    return dict(zip(pairs.column("t").to_pylist(), pairs.column("s").to_pylist(), strict=True))


def _drop_repeats(x: pa.Table) -> pa.Table:
    """Keep the first of crossings that are one event seen by an id-less and another track (:data:`SAME_EVENT_M`,
    :data:`SAME_EVENT_S`)."""
    n = x.num_rows
    if n < 2:
        return x
    i, j, _ = neighbour_pairs(np.zeros(n, np.int64), x.column("lon").to_numpy(), x.column("lat").to_numpy(),
                              SAME_EVENT_M)  # fmt: skip
    t = x.column("time_us").to_numpy()
    tr = np.asarray(x.column("track").to_pylist(), dtype=object)
    idless = np.asarray(x.column("source").to_pylist(), dtype=object) != "identified"
    # two identified tracks are two objects (two ids); an id-less track may be either of them
    same = (np.abs(t[i] - t[j]) <= SAME_EVENT_S * _US_PER_S) & (tr[i] != tr[j]) & (idless[i] | idless[j])
    drop = np.zeros(n, dtype=bool)
    for a, b in sorted(zip(i[same].tolist(), j[same].tolist(), strict=True)):
        if not drop[a]:
            drop[b] = True
    return x.filter(pa.array(~drop))


def track_crossings(pts: pa.Table, *, params: CrossingParams | None = None, border: Border | None = None) -> pa.Table:
    """Border crossings of a workspace's tracks (:func:`load_track_points` columns), per object kind.

    :func:`border_crossings` on each kind's tracks with that kind's speed
    envelope (:data:`MAX_SPEED_MPS`): a track seen on one side and next on the
    other within ``max_gap_s`` and at a plausible speed crosses on the border
    between the two fixes. Id-less tracks (``source`` other than
    ``identified``) break where the sensor loses the object: a fragment ending
    on one side joined (:func:`link_fragments`) to one starting on the other
    crosses between its last and the other's first fix. Crossings that are
    one event seen by several tracks are kept once, identified tracks first.
    Adds ``kind``, ``source`` (the tracks file) and ``method`` (``track``:
    between fixes at most :data:`GAP_S` apart; ``gap``: inferred across a
    longer silence of one track; ``link``: between two id-less fragments).
    """
    return _finish_crossings(_crossing_parts(pts, params=params, border=border), border=border)


def _track_marks(pts: pa.Table) -> dict[str, str] | None:
    """The combined marking of each track of ``pts`` (from its points' ``marking`` column; ``None`` without one)."""
    if "marking" not in pts.column_names:
        return None
    if pts.num_rows == 0:
        return {}
    codes, uniq = _arrow_codes(pts.column("track_id"))
    mk = _dictionary(pts.column("marking"))
    per = combine_groups(codes, np.asarray(mk.indices.fill_null(-1).to_numpy(zero_copy_only=False), np.int64),
                         mk.dictionary.to_pylist(), int(uniq.size))  # fmt: skip
    none = NO_INPUTS_MARKING.to_text()
    return {str(t): m or none for t, m in zip(uniq.tolist(), per, strict=True)}


def _dictionary(col: pa.ChunkedArray | pa.Array) -> pa.DictionaryArray:
    """A string column as one dictionary array (chunks with dictionaries of their own are encoded again)."""
    if pa.types.is_dictionary(col.type):
        if isinstance(col, pa.Array):
            return col
        col = col.cast(col.type.value_type)
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    return pc.dictionary_encode(arr)


def _crossing_parts(
    pts: pa.Table, *, params: CrossingParams | None = None, border: Border | None = None
) -> list[pa.Table]:
    """The crossings of :func:`track_crossings` before repeats are dropped: of each track, and across the id-less
    fragments that :func:`link_fragments` joins (all of a source's fragments must be in ``pts``)."""
    p = params or CrossingParams()
    parts: list[pa.Table] = []
    marks = _track_marks(pts)
    kinds = _distinct(pts.column("kind")) if pts.num_rows else []
    for kind in kinds:
        sub = pts.filter(pc.equal(pts.column("kind"), kind))
        vmax = MAX_SPEED_MPS.get(str(kind), max(MAX_SPEED_MPS.values()))
        x = border_crossings(
            sub.column("track_id"), sub.column("time_us").to_numpy(),
            sub.column("lon").to_numpy(), sub.column("lat").to_numpy(),
            params=CrossingParams(max_gap_s=p.max_gap_s, max_speed_mps=p.max_speed_mps or vmax), border=border,
        )  # fmt: skip
        if x.num_rows == 0:
            continue
        src = _source_of(sub, x.column("track")) if "source" in sub.column_names else {}
        x = x.append_column("kind", pa.array([str(kind)] * x.num_rows, pa.string()))
        x = x.append_column("source", pa.array([src.get(t, "") for t in x.column("track").to_pylist()], pa.string()))
        gap = x.column("gap_s").to_numpy()
        x = x.append_column("method", pa.array(np.where(gap > GAP_S, "gap", "track").tolist(), pa.string()))
        if marks is not None:
            x = x.append_column("marking", pa.array([marks[t] for t in x.column("track").to_pylist()], pa.string()))
        parts.append(x)
    if pts.num_rows and "source" in pts.column_names:
        idless = pts.filter(pc.not_equal(pts.column("source"), "identified"))
        groups = [(k, src) for k in _distinct(idless.column("kind"))
                  for src in _distinct(idless.filter(pc.equal(idless.column("kind"), k)).column("source"))]  # fmt: skip
        for kind, source in groups:
            keep = pc.and_(pc.equal(idless.column("kind"), kind), pc.equal(idless.column("source"), source))
            sub = idless.filter(keep)
            codes, uniq = as_codes(sub.column("track_id"))
            t, x0, y0 = sub.column("time_us").to_numpy(), sub.column("lon").to_numpy(), sub.column("lat").to_numpy()
            vmax = MAX_SPEED_MPS.get(str(kind), max(MAX_SPEED_MPS.values()))
            ea, sb = link_fragments(codes, t, x0, y0, max_speed_mps=vmax)
            if ea.size == 0:
                continue
            rows = np.ravel(np.column_stack([ea, sb]))
            tid = uniq.astype(object)
            names = np.repeat(np.array([f"{tid[codes[a]]}>{tid[codes[b]]}" for a, b in zip(ea, sb, strict=True)],
                                       dtype=object), 2)  # fmt: skip
            x = border_crossings(names, t[rows], x0[rows], y0[rows], params=CrossingParams(dense_s=0.0), border=border)
            if x.num_rows == 0:
                continue
            x = x.append_column("kind", pa.array([str(kind)] * x.num_rows, pa.string()))
            x = x.append_column("source", pa.array([str(source)] * x.num_rows, pa.string()))
            x = x.append_column("method", pa.array(["link"] * x.num_rows, pa.string()))
            if marks is not None:  # a linked crossing comes of both fragments
                both = {f"{tid[codes[a]]}>{tid[codes[b]]}": combine_texts([marks[str(tid[codes[a]])],
                                                                           marks[str(tid[codes[b]])]])
                        for a, b in zip(ea.tolist(), sb.tolist(), strict=True)}  # fmt: skip
                x = x.append_column("marking", pa.array([both[n] for n in x.column("track").to_pylist()], pa.string()))
            parts.append(x)
    return parts


def _finish_crossings(parts: Sequence[pa.Table], *, border: Border | None = None) -> pa.Table:
    """Crossings of every part as one table, one event seen by several tracks kept once, by time."""
    parts = [x for x in parts if x.num_rows]
    if not parts:
        e = border_crossings(np.array([]), np.zeros(0, np.int64), np.zeros(0), np.zeros(0), border=border)
        for name in ("kind", "source", "method", "marking"):
            e = e.append_column(name, pa.array([], pa.string()))
        return e
    allx = pa.concat_tables(parts)
    rank = pc.if_else(pc.equal(allx.column("source"), "identified"), 0, 1)
    first = allx.append_column("_r", rank).sort_by(
        [("_r", "ascending"), ("time_us", "ascending"), ("track", "ascending")]
    )
    return _drop_repeats(first.drop_columns(["_r"])).sort_by([("time_us", "ascending"), ("track", "ascending")])


def crossing_hotspots(
    lon: Any, lat: Any, time_us: Any, *, radius_m: float = 2_000.0, direction: Any = None, marking: Any = None
) -> pa.Table:
    """Crossings chained into hot spots: points within ``radius_m`` of another join its hot spot.

    Each hot spot has ``hotspot`` (0 = busiest), ``lon``/``lat`` (median of
    its crossings), ``count``, ``hour_profile`` (24 counts by UTC hour),
    ``first_us``/``last_us``, ``north``/``south`` counts (when ``direction`` is
    given), ``radius_m`` (largest distance of a member from the centre) and, when each crossing's ``marking`` is
    given, ``marking``: the combination of its crossings' markings.

    >>> h = crossing_hotspots(np.array([-106.45, -106.451, -100.0]), np.array([31.78, 31.78, 28.7]),
    ...                       np.array([0, 3_600_000_000, 0]))
    >>> h.column("count").to_pylist(), h.column("hour_profile")[0].as_py()[:2]
    ([2, 1], [1, 1])
    >>> crossing_hotspots(np.array([]), np.array([]), np.array([], dtype=np.int64)).num_rows
    0
    """
    n = check_columns(lon=lon, lat=lat, time_us=time_us, direction=direction)
    x = np.asarray(lon, dtype=np.float64).ravel()
    y = np.asarray(lat, dtype=np.float64).ravel()
    t = np.asarray(time_us, dtype=np.int64).ravel()
    i, j, _ = neighbour_pairs(np.zeros(n, np.int64), x, y, radius_m)
    comp = connected_components(n, i, j)
    roots, inv, counts = np.unique(comp, return_inverse=True, return_counts=True)
    inv = inv.ravel()
    m = roots.size
    order = np.lexsort((roots, -counts))
    rank = np.empty(m, dtype=np.int64)
    rank[order] = np.arange(m)
    hs = rank[inv]
    by = np.lexsort((x, hs))
    bounds = np.searchsorted(hs[by], np.arange(m + 1))
    cx = np.array([float(np.median(x[by[bounds[r] : bounds[r + 1]]])) for r in range(m)])
    cy = np.array([float(np.median(y[by[bounds[r] : bounds[r + 1]]])) for r in range(m)])
    hour = ((t // (3600 * _US_PER_S)) % 24).astype(np.int64)
    prof = np.zeros((m, 24), dtype=np.int64)
    np.add.at(prof, (hs, hour), 1)
    first = np.full(m, np.iinfo(np.int64).max)
    last = np.full(m, np.iinfo(np.int64).min)
    np.minimum.at(first, hs, t)
    np.maximum.at(last, hs, t)
    spread = np.zeros(m)
    if n:
        np.maximum.at(spread, hs, geodesic_distance(x, y, cx[hs], cy[hs]))
    d = np.asarray(direction).astype(str) if direction is not None else np.full(n, "")
    north = np.bincount(hs, weights=(d == "north").astype(np.float64), minlength=m).astype(np.int64)
    south = np.bincount(hs, weights=(d == "south").astype(np.float64), minlength=m).astype(np.int64)
    extra: dict[str, pa.Array] = {}
    if marking is not None:
        mk = _dictionary(pa.array(np.asarray(marking, dtype=object).ravel(), pa.string()) if not isinstance(
            marking, (pa.Array, pa.ChunkedArray)) else marking)  # fmt: skip
        per = combine_groups(hs, np.asarray(mk.indices.fill_null(-1).to_numpy(zero_copy_only=False), np.int64),
                             mk.dictionary.to_pylist(), m)  # fmt: skip
        extra["marking"] = pa.array([x or NO_INPUTS_MARKING.to_text() for x in per], pa.string())
    return pa.table(
        {
            "hotspot": pa.array(np.arange(m), pa.int64()),
            "lon": pa.array(cx, pa.float64()),
            "lat": pa.array(cy, pa.float64()),
            "count": pa.array(counts[order], pa.int64()),
            "hour_profile": pa.array(prof.tolist(), pa.list_(pa.int64())),
            "first_us": pa.array(first, pa.int64()),
            "last_us": pa.array(last, pa.int64()),
            "north": pa.array(north, pa.int64()),
            "south": pa.array(south, pa.int64()),
            "radius_m": pa.array(spread, pa.float64()),
            **extra,
        }
    )


# --------------------------------------------------------------------------- workspace job

TRACK_KINDS: tuple[str, ...] = ("vehicle", "vessel", "aircraft")
"""Object kinds whose tracks form corridors and crossings (own sortie tracks and people are left out)."""


def tracks_dir(ws: Workspace) -> Path:
    """Where identified tracks are written (``WORKSPACE/analysis/tracks``)."""
    return ws.root / "analysis" / "tracks"


def _track_kinds(ws: Workspace, store: KnowledgeStore | None, column: str = "kind") -> dict[str, str]:
    """Object kind (or another ``column``) of each stored track summary (``tracks`` table of the knowledge store)."""
    from sqlalchemy import select

    own = store is None
    st = KnowledgeStore.open(ws.db_url) if store is None else store
    try:
        with st.engine.connect() as conn:
            return {str(r[0]): str(r[1]) for r in conn.execute(select(ks.tracks.c.id, ks.tracks.c[column]))}
    finally:
        if own:
            st.close()


BUCKET_ROWS = 4_000_000
"""Identified track points read at a time by :func:`track_point_batches`: above this, the tracks are split into
buckets by a hash of the track id, so that corridors and crossings hold a bucket at a time, not the period."""

_TEXT = pa.dictionary(pa.int32(), pa.string())


def load_track_points(ws: Workspace, store: KnowledgeStore | None = None) -> pa.Table:
    """Track points ``track_id, kind, time_us, lon, lat, source, marking`` for corridors and crossings.

    Uses the tracks under ``analysis/tracks`` when present (``source`` is the
    file's stem: ``identified``, ``unidentified-GMTI``, …; the object kind
    comes from the file or, when the file has none, from the track summaries
    in the knowledge store, and so does the marking: the track's, the
    combination of its reports'; a track without a summary is marked
    :data:`~atalaya.core.markings.NO_INPUTS_MARKING`); otherwise positions with an identifier (AIS MMSI,
    ADS-B ICAO24, CoT uid) straight from the lake, one track per identifier
    (``source`` = ``identified``, ``marking`` the report's). Own platforms and people are left out.
    """
    parts = list(track_point_batches(ws, store, bucket_rows=0))
    return pa.concat_tables(parts) if len(parts) > 1 else parts[0]


def track_point_batches(
    ws: Workspace, store: KnowledgeStore | None = None, *, bucket_rows: int = BUCKET_ROWS
) -> Iterator[pa.Table]:
    """:func:`load_track_points` in batches of whole tracks (never fewer than one): identified tracks in buckets
    of about ``bucket_rows`` points by a hash of the track id (0: all at once), then each file of id-less tracks
    whole (its fragments are linked across one another)."""
    files = sorted(tracks_dir(ws).glob("*.parquet")) if tracks_dir(ws).exists() else []
    kinds_of: dict[str, str] | None = None
    marks_of: dict[str, str] | None = None
    any_file = False
    for f in files:
        names = pq.read_schema(f).names
        if not {"track_id", "time", "lon", "lat"} <= set(names):
            continue
        any_file = True
        cols = [c for c in ("track_id", "kind", "time", "lon", "lat", "marking") if c in names]
        n = pq.read_metadata(f).num_rows
        k = bucket_count(n, bucket_rows) if f.stem == "identified" else 1
        for bk in range(k):
            if k == 1:  # ids and kinds stay dictionaries (an integer per point), not a Python string per point
                tb = pq.read_table(
                    f, columns=cols, read_dictionary=[c for c in ("track_id", "kind", "marking") if c in names]
                )
            else:
                tb = _duck_read(f, cols, f"hash(track_id) % {k} = {bk}")
            if "kind" not in names and kinds_of is None:
                kinds_of = _track_kinds(ws, store)
            if "marking" not in names and marks_of is None:
                marks_of = _track_kinds(ws, store, "marking")
            out = _points_table(tb, f.stem, kinds_of or {}, marks_of or {})
            del tb
            yield out.filter(pc.invert(pc.is_in(out.column("kind"), pa.array(["platform", "person"]))))
    if any_file:
        return
    kinds = ", ".join(f"'{k}'" for k in TRACK_KINDS)
    where = (f"ident IS NOT NULL AND CAST(ident_kind AS VARCHAR) IN ('mmsi', 'icao24', 'cot_uid') "
             f"AND CAST(kind AS VARCHAR) IN ({kinds})")  # fmt: skip
    lake = Lake(ws.lake_dir)
    n = int(lake.query(f"SELECT count(*) AS n FROM observations WHERE {where}").column("n")[0].as_py() or 0)
    k = bucket_count(n, bucket_rows)
    for bk in range(k):
        yield lake.query(
            "SELECT CAST(ident_kind AS VARCHAR) || ':' || ident AS track_id, CAST(kind AS VARCHAR) AS kind, "
            "epoch_us(time) AS time_us, lon, lat, 'identified' AS source, CAST(marking AS VARCHAR) AS marking "
            "FROM observations "
            f"WHERE {where}{'' if k == 1 else f' AND hash(ident) % {k} = {bk}'} ORDER BY track_id, time_us, lon, lat"
        )


def _duck_read(path: Path, cols: Sequence[str], where: str) -> pa.Table:
    """Columns of a Parquet file's rows that meet ``where``, read by DuckDB (a scan that holds only those)."""
    import duckdb

    from atalaya.store.lake import fetch_arrow

    con = duckdb.connect()
    try:
        lit = "'" + str(path).replace("'", "''") + "'"
        return fetch_arrow(con.sql(f"SELECT {', '.join(cols)} FROM read_parquet({lit}) WHERE {where}"))
    finally:
        con.close()


def _points_table(tb: pa.Table, stem: str, kinds_of: dict[str, str], marks_of: dict[str, str]) -> pa.Table:
    """A track point file's rows as :func:`load_track_points` columns."""
    tid = tb.column("track_id").cast(_TEXT)
    ids: list[Any] | None = None
    at: Any = None

    def per_track(of: dict[str, str], default: str) -> pa.ChunkedArray:
        nonlocal ids, at
        if ids is None:  # each distinct track once, then a take per point
            ids = pc.unique(tid).to_pylist()
            at = pc.index_in(tid.cast(pa.string()), pa.array(ids, pa.string()))
        return pc.take(pa.array([of.get(str(i), default) for i in ids], pa.string()), at).cast(_TEXT)

    kind = tb.column("kind").cast(_TEXT) if "kind" in tb.column_names else per_track(kinds_of, "unknown")
    marking = (tb.column("marking").cast(_TEXT) if "marking" in tb.column_names
               else per_track(marks_of, NO_INPUTS_MARKING.to_text()))  # fmt: skip
    tm = tb.column("time")
    t_us = tm.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()) if pa.types.is_timestamp(tm.type) else tm
    source = pa.DictionaryArray.from_arrays(pa.array(np.zeros(tb.num_rows, np.int32)), pa.array([stem]))
    return pa.table({"track_id": tid, "kind": kind, "time_us": t_us.cast(pa.int64()), "lon": tb.column("lon"),
                     "lat": tb.column("lat"), "source": source, "marking": marking})  # fmt: skip


def _ts(us: int) -> datetime:
    return datetime.fromtimestamp(us / _US_PER_S, tz=UTC)


def _marks_by_code(pts: pa.Table) -> list[str]:
    """The marking of each track of ``pts`` in the order of its :func:`as_codes` code."""
    marks = _track_marks(pts)
    if marks is None:
        return []
    return [marks[str(t)] for t in _arrow_codes(pts.column("track_id"))[1].tolist()] if pts.num_rows else []


def corridor_markings(
    flows: Flows, parts: Sequence[tuple[I64, I64, I64, I64, I64]], marks: Sequence[Sequence[str]]
) -> list[str]:
    """The marking of each corridor of ``flows`` (:func:`flows_of_parts` of ``parts``): the combination of the
    markings of the tracks that visit its cells (``marks``: per part, each track's marking by its code), so a
    corridor never goes further than any track that makes it. Distinct (corridor, marking) pairs by NumPy; each
    distinct set combined once."""
    n = flows.corridors.num_rows
    if n == 0:
        return []
    off = 0
    vts: list[I64] = []
    vcs: list[I64] = []
    per_track: list[str] = []
    for (vt, vc, _, _, _), mk in zip(parts, marks, strict=True):
        size = int(vt.max()) + 1 if vt.size else 0  # numbered as flows_of_parts numbers them
        vts.append(vt + off)
        vcs.append(vc)
        per_track.extend(mk[:size] if len(mk) >= size else [*mk, *[NO_INPUTS_MARKING.to_text()] * (size - len(mk))])
        off += size
    vt_all, vc_all = np.concatenate(vts), np.concatenate(vcs)
    cells = np.asarray(flows.cells.column("cell").to_numpy(), dtype=np.int64)
    corr = np.asarray(flows.cells.column("corridor").to_numpy(), dtype=np.int64)
    at = np.clip(np.searchsorted(cells, vc_all), 0, max(cells.size - 1, 0))
    c_of = np.where(cells[at] == vc_all, corr[at], -1) if cells.size else np.full(vc_all.size, -1)
    keep = c_of >= 0
    names, code = np.unique(np.asarray(per_track, dtype=object).astype(str), return_inverse=True)
    out = combine_groups(c_of[keep], code.ravel()[vt_all[keep]], names.tolist(), n)
    return [m or NO_INPUTS_MARKING.to_text() for m in out]


def run_corridors(
    ws: Workspace,
    store: KnowledgeStore,
    *,
    progress: bool = False,
    params: CorridorParams | None = None,
    hotspot_radius_m: float = 2_000.0,
    bucket_rows: int = BUCKET_ROWS,
) -> dict[str, Any]:
    """Corridors per object kind and border-crossing hot spots of a workspace's tracks; returns a summary.

    Tracks are read in batches of whole tracks (:func:`track_point_batches`, about ``bucket_rows`` points).

    Replaces the previous analytic rows of the ``corridors`` and ``crossings``
    tables and writes the crossings themselves to
    ``WORKSPACE/analysis/corridors/crossings.parquet``.
    """
    p = params or CorridorParams()
    started = datetime.now(UTC)
    run_id = f"corridors-{new_run_id()[:16]}"
    # a batch of whole tracks at a time: what corridors need of a batch is each track's distinct cells and steps
    # (tracks numbered apart across batches), and crossings are a track's own but for the linked id-less
    # fragments, which come in one batch per source; only repeats are dropped over all batches at the end
    flows_in: dict[str, list[tuple[I64, I64, I64, I64, I64]]] = {}
    marks_in: dict[str, list[list[str]]] = {}  # per set of tracks, each track's marking (by its code)
    x_parts: list[pa.Table] = []
    n_points = 0
    track_ids: set[str] = set()
    bar: Any = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(desc="corridors", unit="batch")
    for pts in track_point_batches(ws, store, bucket_rows=bucket_rows):
        n_points += pts.num_rows
        track_ids.update(_distinct(pts.column("track_id")))
        for kind in _distinct(pts.column("kind")) if pts.num_rows else []:
            sub = pts.filter(pc.equal(pts.column("kind"), kind))
            flows_in.setdefault(kind, []).append(
                visits_steps(sub.column("track_id"), sub.column("time_us").to_numpy(), sub.column("lon").to_numpy(),
                             sub.column("lat").to_numpy(), p, distinct=True)
            )  # fmt: skip
            marks_in.setdefault(kind, []).append(_marks_by_code(sub))
        x_parts.extend(_crossing_parts(pts))
        del pts
        if bar is not None:
            bar.update(1)
    rows: list[dict[str, Any]] = []
    per_kind: dict[str, int] = {}
    for kind in sorted(flows_in):
        parts = flows_in.pop(kind)
        fl = flows_of_parts(parts, p)
        c_marks = corridor_markings(fl, parts, marks_in.pop(kind))
        per_kind[kind] = fl.corridors.num_rows
        for c in fl.corridors.to_pylist():
            cells = c["cells"]
            rows.append(
                {
                    "id": f"corridor--{kind}-{c['rank']:04d}",
                    "h3_cells": cells,
                    "volume": int(c["volume"]),
                    "kind": kind,
                    "rank": int(c["rank"]),
                    "run_id": run_id,
                    "marking": c_marks[int(c["corridor"])],
                    "provenance": Provenance(run_id=run_id, method=METHOD, n_support=int(c["volume"])).to_dict(),
                }
            )
    xing = _finish_crossings(x_parts)
    if bar is not None:
        bar.close()
    hot = crossing_hotspots(
        xing.column("lon").to_numpy(),
        xing.column("lat").to_numpy(),
        xing.column("time_us").to_numpy(),
        radius_m=hotspot_radius_m,
        direction=xing.column("direction").to_numpy(zero_copy_only=False),
        marking=xing.column("marking"),
    )
    out_dir = ws.root / "analysis" / "corridors"
    out_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(xing, out_dir / "crossings.parquet")
    pq.write_table(hot, out_dir / "hotspots.parquet")
    x_rows = []
    for h in hot.to_pylist():
        x_rows.append(
            {
                "id": f"crossing--{h['lon']:.3f}_{h['lat']:.3f}",
                "lon": h["lon"],
                "lat": h["lat"],
                "count": h["count"],
                "hour_profile": h["hour_profile"],
                "first_seen": _ts(h["first_us"]),
                "last_seen": _ts(h["last_us"]),
                "run_id": run_id,
                "marking": h["marking"],
                "provenance": Provenance(
                    run_id=run_id, method=CROSSING_METHOD, n_support=h["count"],
                    first_seen=_ts(h["first_us"]).isoformat(), last_seen=_ts(h["last_us"]).isoformat(),
                ).to_dict(),
            }
        )  # fmt: skip
    with store.begin() as conn:
        conn.execute(ks.corridors.delete().where(ks.corridors.c.id.like("corridor--%")))
        conn.execute(ks.crossings.delete().where(ks.crossings.c.id.like("crossing--%")))
        upsert(conn, ks.corridors, rows, keys=["id"])
        upsert(conn, ks.crossings, x_rows, keys=["id"])
    summary: dict[str, Any] = {
        "run_id": run_id,
        "track_points": n_points,
        "tracks": len(track_ids),
        "corridors": per_kind,
        "crossings": xing.num_rows,
        "hotspots": hot.num_rows,
        "top_hotspots": [
            {"lon": round(h["lon"], 4), "lat": round(h["lat"], 4), "count": h["count"]}
            for h in hot.slice(0, 5).to_pylist()
        ],
        "output": str(out_dir),
    }
    with store.begin() as conn:
        conn.execute(
            ks.analysis_runs.insert().values(
                id=run_id, kind="corridors", started_at=started, finished_at=datetime.now(UTC),
                params={"method": METHOD, "res": p.res, "min_tracks": p.min_tracks,
                        "hotspot_radius_m": hotspot_radius_m},
                summary=json.loads(json.dumps(summary)),
            )
        )  # fmt: skip
    return summary
