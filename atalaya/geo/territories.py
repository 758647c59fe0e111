"""Territories: countries (land + 12 nm territorial sea) and states, and fast point labelling.

Countries are the Natural Earth admin-0 polygons of the bundled region file plus
their territorial sea: 12 nautical miles (22,224 m) from the land, buffered
geodesically (see :func:`atalaya.geo.kernels.geodesic_buffer`, within ≈ 20 m).
Where the seas of two neighbours overlap, each part of the overlap goes to the
nearer land (a Voronoi split of the densified coasts in a local azimuthal
equidistant projection: an approximate median line, within ≈ 1 km). A country's
sea never covers another country's land. States are the admin-1 land polygons of
MEX, USA, GTM and BLZ (no sea). Users may add their own territories from
GeoJSON (properties ``id``, ``name``, ``level``, ``owner``). Every country of the
world, loaded per tile the data touches, is :mod:`atalaya.geo.world`.

Building the territorial seas and the lookup grids takes seconds, so the derived
data is kept on disk (see :func:`cache_dir`): the territory geometries as WKB, and
the label and depth-bound grids as arrays, each file keyed by a digest of the
bundled source layers, any ``extra`` GeoJSON, the code that derives them and
:data:`CACHE_FORMAT`. Files are written atomically; one that is stale, damaged
or of the wrong shape is ignored and rebuilt.

>>> t = load_territories()
>>> t.ids[t.index_of("MEX")], t.levels[t.index_of("USA-AZ")]
('MEX', 'state')
>>> import numpy as np
>>> lab = label_points(t, np.array([-99.13, -90.0]), np.array([19.43, 25.0]))
>>> [t.ids[i] if i >= 0 else "INTL" for i in lab]
['MEX', 'INTL']
>>> label_points(t, np.array([]), np.array([])).shape
(0,)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

from atalaya.core.errors import ValidationError
from atalaya.geo import kernels
from atalaya.geo.kernels import (
    from_aeqd,
    geodesic_buffer,
    geodesic_upper_bound,
    geodesic_upper_bound_from_box,
    to_aeqd,
)
from atalaya.geo.naturalearth import LAYERS, load_layer

if TYPE_CHECKING:
    from atalaya.geo.tiles import TiledGrid

_log = logging.getLogger(__name__)

Level = Literal["country", "state"]
LEVELS: tuple[str, ...] = ("country", "state")
INTL = -1
"""Label of a point outside every territory of the level (international airspace/waters)."""
INTL_ID = "INTL"
"""Id of the international pseudo-territory in accounting tables."""
TERRITORIAL_SEA_M = 22_224.0
"""12 nautical miles in metres."""
STATE_COUNTRIES: tuple[str, ...] = ("MEX", "USA", "GTM", "BLZ")
"""Countries whose admin-1 states are bundled."""
FOCUS_BOUNDS: tuple[float, float, float, float] = (-126.0, -6.0, -58.0, 50.0)
"""Lon/lat box covered by the fast lookup grid of the bundled territories (the rest is tested exactly)."""

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
ObjArray = npt.NDArray[np.object_]


@dataclass(frozen=True, kw_only=True)
class Territories:
    """A set of territory polygons with their sovereign owners, as parallel numpy arrays."""

    ids: ObjArray
    """Territory ids: ``MEX``, ``USA`` (NE ``adm0_a3``) or ``MEX-SON``, ``USA-AZ`` (owner + ISO 3166-2 suffix)."""
    names: ObjArray
    """Human-readable names."""
    levels: ObjArray
    """``country`` or ``state``."""
    owners: ObjArray
    """``adm0_a3`` of the sovereign country."""
    geoms: ObjArray
    """Shapely (multi)polygons in lon/lat WGS84, prepared for fast predicates."""
    focus: tuple[float, float, float, float] | None = None
    """Lon/lat box of the lookup grid used by :func:`label_points`; ``None`` = all territories' bounds."""
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """Lazily built lookup structures (per level)."""

    def __len__(self) -> int:
        return len(self.ids)

    def index_of(self, territory_id: str) -> int:
        """Index of a territory id (raises ``KeyError`` with the known ids when absent)."""
        idx = self.id_index().get(territory_id)
        if idx is None:
            raise KeyError(f"unknown territory {territory_id!r}")
        return idx

    def id_index(self) -> dict[str, int]:
        """Territory id → index."""
        m = self._cache.get("id_index")
        if m is None:
            m = {str(k): i for i, k in enumerate(self.ids)}
            self._cache["id_index"] = m
        return dict(m)

    def country_index(self) -> dict[str, int]:
        """Country id → index, countries only."""
        return {str(self.ids[i]): int(i) for i in self.level_indices("country")}

    def level_indices(self, level: str) -> IntArray:
        """Indices of the territories of one level."""
        if level not in LEVELS:
            raise ValidationError(f"unknown territory level {level!r}", hint="use 'country' or 'state'")
        return np.flatnonzero(self.levels == level).astype(np.int64)

    def id_of(self, labels: IntArray) -> ObjArray:
        """Territory ids for labels (``INTL`` for -1)."""
        ids = np.append(self.ids, INTL_ID).astype(object)
        out: ObjArray = ids[np.where(labels < 0, len(self.ids), labels)]
        return out


def _make(
    rows: list[tuple[str, str, str, str, BaseGeometry]], focus: tuple[float, float, float, float] | None
) -> Territories:
    geoms = np.empty(len(rows), dtype=object)
    geoms[:] = [r[4] for r in rows]
    shapely.prepare(geoms)
    return Territories(
        ids=np.array([r[0] for r in rows], dtype=object),
        names=np.array([r[1] for r in rows], dtype=object),
        levels=np.array([r[2] for r in rows], dtype=object),
        owners=np.array([r[3] for r in rows], dtype=object),
        geoms=geoms,
        focus=focus,
    )


def _polygonal(g: BaseGeometry) -> BaseGeometry:
    """Only the polygon parts of a geometry (set operations may leave lines or points behind)."""
    g = shapely.make_valid(g)
    if g.geom_type in ("Polygon", "MultiPolygon"):
        return g
    parts = [p for p in shapely.get_parts(g) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def _split_overlap(
    land_a: BaseGeometry, land_b: BaseGeometry, overlap: BaseGeometry
) -> tuple[BaseGeometry, BaseGeometry]:
    """Split ``overlap`` into the parts nearer to ``land_a`` and to ``land_b`` (Voronoi of densified coasts)."""
    c = overlap.centroid
    lon0, lat0 = c.x, c.y
    o = _polygonal(to_aeqd(overlap, lon0, lat0))  # a valid shape may self-intersect once projected
    ox0, oy0, ox1, oy1 = o.bounds
    m = 3 * TERRITORIAL_SEA_M
    win = shapely.box(ox0 - m, oy0 - m, ox1 + m, oy1 + m)
    coasts = []
    for land in (land_a, land_b):
        bx0, by0, bx1, by1 = overlap.bounds
        near = shapely.clip_by_rect(land, bx0 - 0.8, by0 - 0.8, bx1 + 0.8, by1 + 0.8)
        b = shapely.intersection(to_aeqd(near.boundary, lon0, lat0), win)
        coasts.append(shapely.get_coordinates(shapely.segmentize(b, 1000.0)))
    if len(coasts[0]) == 0 or len(coasts[1]) == 0:
        return (overlap, shapely.Polygon()) if len(coasts[1]) == 0 else (shapely.Polygon(), overlap)
    owner_all = np.repeat([True, False], [len(coasts[0]), len(coasts[1])])
    # Shared border vertices appear in both coasts: keep one (they are equidistant anyway).
    pts, first = np.unique(np.round(np.vstack(coasts), 0), axis=0, return_index=True)
    owner_a = owner_all[first]
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=win, ordered=True))
    near_a = shapely.intersection(o, shapely.coverage_union_all(cells[owner_a]))
    near_b = shapely.intersection(o, shapely.coverage_union_all(cells[~owner_a]))
    return from_aeqd(near_a, lon0, lat0), from_aeqd(near_b, lon0, lat0)


def _countries() -> list[tuple[str, str, str, str, BaseGeometry]]:
    feats = load_layer("admin0_region")
    codes = [str(p["adm0_a3"]) for p, _ in feats]
    names = [str(p.get("name") or p["adm0_a3"]) for p, _ in feats]
    land = np.array([shapely.make_valid(g) for _, g in feats], dtype=object)
    bufs = np.array([geodesic_buffer(g, TERRITORIAL_SEA_M) for g in land], dtype=object)
    land_tree = shapely.STRtree(land)
    terr = list(bufs)
    for i in range(len(land)):
        others = [j for j in land_tree.query(bufs[i]) if j != i]
        if others:
            terr[i] = shapely.difference(terr[i], shapely.union_all(land[others]))
    tree = shapely.STRtree(np.array(terr, dtype=object))
    a_idx, b_idx = tree.query(np.array(terr, dtype=object), predicate="intersects")
    for a, b in zip(a_idx.tolist(), b_idx.tolist(), strict=True):
        if a >= b:
            continue
        ov = shapely.intersection(terr[a], terr[b])
        if ov.is_empty or ov.area == 0.0:
            continue
        near_a, near_b = _split_overlap(land[a], land[b], ov)
        terr[a] = shapely.difference(terr[a], near_b)
        terr[b] = shapely.difference(terr[b], near_a)
        # Anything of the overlap that neither part covered (numerical slivers) stays with both: drop from b.
        terr[b] = shapely.difference(terr[b], terr[a])
    return [(code, name, "country", code, _polygonal(g)) for code, name, g in zip(codes, names, terr, strict=True)]


def _states() -> list[tuple[str, str, str, str, BaseGeometry]]:
    rows = []
    for p, g in load_layer("admin1"):
        owner = str(p["adm0_a3"])
        if owner not in STATE_COUNTRIES:
            continue
        iso = str(p.get("iso_3166_2") or "")
        suffix = iso.split("-", 1)[-1].rstrip("~") if iso else "X"
        rows.append((f"{owner}-{suffix}", str(p.get("name") or iso), "state", owner, _polygonal(g)))
    return rows


def read_territories_geojson(path: Path) -> list[tuple[str, str, str, str, BaseGeometry]]:
    """Territory rows from a GeoJSON FeatureCollection with properties ``id``, ``name``, ``level``, ``owner``."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        feats = doc["features"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValidationError(
            f"cannot read territories from {path}: {e}",
            hint="give a GeoJSON FeatureCollection of Polygon/MultiPolygon features",
        ) from e
    rows = []
    for n, f in enumerate(feats):
        props = f.get("properties") or {}
        missing = [k for k in ("id", "level", "owner") if not props.get(k)]
        if missing:
            raise ValidationError(
                f"{path}: feature {n} lacks properties {', '.join(missing)}",
                hint="each feature needs properties id, name, level ('country'|'state') and owner (adm0_a3)",
            )
        if props["level"] not in LEVELS:
            raise ValidationError(
                f"{path}: feature {n} ({props['id']}) has level {props['level']!r}",
                hint="level must be 'country' or 'state'",
            )
        g = _polygonal(shapely.from_geojson(json.dumps(f["geometry"])))
        if g.is_empty or g.area == 0.0:
            raise ValidationError(
                f"{path}: feature {n} ({props['id']}) is not a polygon", hint="territories must be (multi)polygons"
            )
        g = _polygonal(g)
        rows.append(
            (str(props["id"]), str(props.get("name") or props["id"]), str(props["level"]), str(props["owner"]), g)
        )
    return rows


@cache
def _bundled() -> tuple[tuple[str, str, str, str, BaseGeometry], ...]:
    return tuple(_countries() + _states())


def _rows_of(t: Territories) -> list[tuple[str, str, str, str, BaseGeometry]]:
    return [(str(t.ids[i]), str(t.names[i]), str(t.levels[i]), str(t.owners[i]), t.geoms[i]) for i in range(len(t.ids))]


@cache
def _load(extra: str | None) -> Territories:
    key = _source_key(extra)
    t = _read_territories(key) if key is not None else None
    if t is None:
        if extra is None:
            rows = list(_bundled())
        else:
            new = read_territories_geojson(Path(extra))
            ids = {r[0] for r in new}
            rows = [r for r in _rows_of(_load(None)) if r[0] not in ids] + new
        t = _make(rows, FOCUS_BOUNDS)
        if key is not None:
            _write_territories(key, t)
    if key is not None:
        t._cache["disk_key"] = key
    return t


def load_territories(*, extra: Path | None = None) -> Territories:
    """The bundled countries (with territorial sea) and states, plus ``extra`` GeoJSON territories (cached).

    Extra territories replace bundled ones with the same id. The result is cached
    in the process and on disk (:func:`cache_dir`); a later process loads it in a
    fraction of a second.
    """
    return _load(str(Path(extra).resolve()) if extra is not None else None)


# --------------------------------------------------------------------------- on-disk cache

CACHE_FORMAT = 2
"""Version of the cached files' layout; bump it when the layout or the derivation changes."""
CACHE_KEEP = 4
"""Cached files kept per kind (say, the bundled territories and a few ``extra`` sets); older ones are removed."""
_SOURCE_LAYERS = ("admin0_region", "admin1")


def cache_dir() -> Path:
    """Folder of the on-disk cache: ``$ATALAYA_CACHE_DIR``, else ``$XDG_CACHE_HOME/atalaya``, else ``~/.cache/atalaya``.

    >>> import os
    >>> old = os.environ.get("ATALAYA_CACHE_DIR")
    >>> os.environ["ATALAYA_CACHE_DIR"] = "/tmp/atalaya-cache"
    >>> str(cache_dir())
    '/tmp/atalaya-cache'
    >>> _ = os.environ.pop("ATALAYA_CACHE_DIR") if old is None else os.environ.update(ATALAYA_CACHE_DIR=old)
    """
    env = os.environ.get("ATALAYA_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "atalaya"


def _source_key(extra: str | None) -> str | None:
    """Digest of everything the derived territories depend on (``None``: a source cannot be read, no caching)."""
    h = hashlib.sha256(f"atalaya-territories/{CACHE_FORMAT}/{shapely.geos_version_string}".encode())

    def add(label: str, data: bytes) -> None:
        h.update(f"\0{label}\0{len(data)}\0".encode())
        h.update(data)

    try:
        for name in _SOURCE_LAYERS:
            add(name, resources.files("atalaya.geo").joinpath("data", LAYERS[name]).read_bytes())
        for mod in (__file__, kernels.__file__):
            add(Path(mod).name, Path(mod).read_bytes())
        if extra is not None:
            add("extra", Path(extra).read_bytes())
    except OSError:
        return None
    return h.hexdigest()


def cached_arrays(
    kind: str, build: Callable[[], dict[str, npt.NDArray[Any]]], *, depends_on: tuple[str, ...] = ()
) -> dict[str, npt.NDArray[Any]]:
    """Arrays derived from the bundled boundaries, built once and kept in the on-disk cache.

    ``kind`` names the product; the cache key covers the bundled sources, this
    module and the files in ``depends_on`` (the module that builds it), so a
    change to any of them rebuilds it. Without a readable source the arrays are
    built every time.
    """
    key = _source_key(None)
    if key is None:
        return build()
    h = hashlib.sha256(key.encode())
    for dep in depends_on:
        h.update(Path(dep).read_bytes())
    full = h.hexdigest()
    got = _cache_read(kind, full)
    if got is not None:
        return got
    arrays = build()
    _cache_write(kind, full, arrays)
    return arrays


def _cache_file(kind: str, key: str) -> Path:
    return cache_dir() / f"{kind}-{key[:32]}.npz"


def _cache_read(kind: str, key: str) -> dict[str, npt.NDArray[Any]] | None:
    """Arrays of a cached file, or ``None`` when absent, unreadable, damaged or made for another key.

    The zip container checks each array's CRC-32 as it is read; the stored key must
    equal the full expected key. Callers also check shapes and value ranges.
    """
    path = _cache_file(kind, key)
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != f"{kind}/{key}":
                return None
            return {k: z[k] for k in z.files if k != "key"}
    except FileNotFoundError:
        return None
    except Exception as e:  # a damaged file fails in many ways (zip, CRC, header); it is rebuilt
        _log.warning("ignoring damaged cache file %s (%s); rebuilding it", path, e)
        return None


def _cache_write(kind: str, key: str, arrays: dict[str, npt.NDArray[Any]]) -> None:
    """Write a cache file atomically (temporary file in the same folder, then rename); failures only warn."""
    path = _cache_file(kind, key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                savez: Callable[..., None] = np.savez  # arrays by keyword (numpy's stub types them as its options)
                savez(f, key=np.array(f"{kind}/{key}"), **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as e:
        _log.warning("cannot write cache file %s (%s); continuing without it", path, e)
        return
    # Keep the most recent files of this kind (other sources or code versions); drop older ones.
    others = [p for p in path.parent.glob(f"{kind}-*.npz") if p != path]
    with contextlib.suppress(OSError):
        others.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        for old in others[CACHE_KEEP - 1 :]:
            old.unlink(missing_ok=True)


def _write_territories(key: str, t: Territories, *, kind: str = "territories") -> None:
    wkb = shapely.to_wkb(t.geoms)
    sizes = np.fromiter((len(b) for b in wkb), dtype=np.int64, count=len(wkb))
    _cache_write(
        kind,
        key,
        {
            "ids": np.asarray(t.ids, dtype=str),
            "names": np.asarray(t.names, dtype=str),
            "levels": np.asarray(t.levels, dtype=str),
            "owners": np.asarray(t.owners, dtype=str),
            "wkb": np.frombuffer(b"".join(wkb), dtype=np.uint8),
            "offsets": np.r_[0, np.cumsum(sizes)].astype(np.int64),
            "focus": np.asarray(t.focus if t.focus is not None else [], dtype=np.float64),
        },
    )


def _read_territories(key: str, *, kind: str = "territories") -> Territories | None:
    z = _cache_read(kind, key)
    if z is None:
        return None
    try:
        n = len(z["ids"])
        off, blob = z["offsets"], z["wkb"]
        ok = (
            all(z[k].ndim == 1 and len(z[k]) == n for k in ("ids", "names", "levels", "owners"))
            and off.shape == (n + 1,)
            and off[0] == 0
            and off[-1] == len(blob)
            and bool(np.all(np.diff(off) > 0))
            and set(z["levels"].tolist()) <= set(LEVELS)
            and z["focus"].shape in ((0,), (4,))
        )
        if not ok:
            raise ValueError("inconsistent arrays")
        raw = blob.tobytes()
        geoms = shapely.from_wkb([raw[a:b] for a, b in zip(off[:-1].tolist(), off[1:].tolist(), strict=True)])
        if not np.all(np.isin(shapely.get_type_id(geoms), (3, 6))):
            raise ValueError("non-polygonal geometry")
    except Exception as e:  # any inconsistency in a cached file means: rebuild it
        _log.warning("ignoring inconsistent %s cache (%s); rebuilding it", kind, e)
        return None
    focus = tuple(float(v) for v in z["focus"].tolist())
    rows = [
        (str(z["ids"][i]), str(z["names"][i]), str(z["levels"][i]), str(z["owners"][i]), geoms[i]) for i in range(n)
    ]
    return _make(rows, (focus[0], focus[1], focus[2], focus[3]) if len(focus) == 4 else None)


def territories_from_geometries(
    *,
    ids: list[str],
    geoms: list[BaseGeometry],
    levels: list[str] | None = None,
    owners: list[str] | None = None,
    names: list[str] | None = None,
) -> Territories:
    """Build :class:`Territories` from in-memory polygons (tests, user code).

    >>> from shapely.geometry import box
    >>> t = territories_from_geometries(ids=["A"], geoms=[box(0, 0, 1, 1)])
    >>> label_points(t, np.array([0.5, 2.0]), np.array([0.5, 0.5])).tolist()
    [0, -1]
    """
    n = len(ids)
    lv = levels or ["country"] * n
    rows = [(ids[i], (names or ids)[i], lv[i], (owners or ids)[i], _polygonal(geoms[i])) for i in range(n)]
    return _make(rows, None)


# --------------------------------------------------------------------------- labelling


@dataclass(frozen=True, kw_only=True)
class _Grid:
    """A lookup grid: each cell holds a territory index, -1 (international) or -2 (crossed by a boundary)."""

    x0: float
    """West edge, degrees."""
    y0: float
    """South edge, degrees."""
    cell: float
    """Cell size, degrees."""
    lut: npt.NDArray[np.int32]
    """``(ny, nx)`` cell labels."""
    idx: IntArray
    """Territory indices of the level."""
    bounds: FloatArray
    """``(k, 4)`` bounds of those territories."""


BOUNDARY = -2


def _exact(t: Territories, grid: _Grid, x: FloatArray, y: FloatArray) -> IntArray:
    """Exact labels: bounding-box prefilter, then prepared ``contains_xy`` per territory."""
    out = np.full(len(x), INTL, dtype=np.int64)
    if len(x) == 0:
        return out
    # Points sorted by longitude: each territory looks only at the slice within its west-east extent.
    order = np.argsort(x, kind="stable")
    xs = x[order]
    lo = np.searchsorted(xs, grid.bounds[:, 0], side="left")
    hi = np.searchsorted(xs, grid.bounds[:, 2], side="right")
    for k, gi in enumerate(grid.idx.tolist()):
        if hi[k] <= lo[k]:
            continue
        m = order[lo[k] : hi[k]]
        m = m[(y[m] >= grid.bounds[k, 1]) & (y[m] <= grid.bounds[k, 3])]
        if len(m) == 0:
            continue
        inside = shapely.contains_xy(t.geoms[gi], x[m], y[m])
        out[m[inside]] = gi
    return out


def _extent(t: Territories, bounds: FloatArray, max_cells: int) -> tuple[float, float, float, int, int]:
    """West and south edges, cell size and ``(nx, ny)`` of a grid over the level's bounds within the focus box."""
    if len(bounds):
        tb = (bounds[:, 0].min(), bounds[:, 1].min(), bounds[:, 2].max(), bounds[:, 3].max())
    else:
        tb = (0.0, 0.0, 1.0, 1.0)
    fb = t.focus or tb
    x0, y0 = max(tb[0], fb[0]), max(tb[1], fb[1])
    x1, y1 = min(tb[2], fb[2]), min(tb[3], fb[3])
    if x1 <= x0 or y1 <= y0:
        x0, y0, x1, y1 = 0.0, 0.0, 1e-9, 1e-9
    cell = max(float(np.sqrt((x1 - x0) * (y1 - y0) / max_cells)), 1e-4)
    nx = int(np.ceil((x1 - x0) / cell)) + 1
    ny = int(np.ceil((y1 - y0) / cell)) + 1
    return float(x0), float(y0), cell, nx, ny


def _build_grid(t: Territories, level: str, max_cells: int) -> _Grid:
    idx = t.level_indices(level)
    geoms = t.geoms[idx]
    bounds = shapely.bounds(geoms).reshape(-1, 4) if len(idx) else np.zeros((0, 4))
    x0, y0, cell, nx, ny = _extent(t, bounds, max_cells)
    empty = _Grid(x0=x0, y0=y0, cell=cell, lut=np.full((ny, nx), INTL, np.int32), idx=idx, bounds=bounds)
    if len(idx) == 0:
        return empty
    # 1. Cells touched by a boundary: densify boundaries to < one cell, mark their cells and the 8 neighbours.
    coords = shapely.get_coordinates(shapely.segmentize(shapely.boundary(geoms), cell * 0.5))
    cx = np.floor((coords[:, 0] - x0) / cell).astype(np.int64)
    cy = np.floor((coords[:, 1] - y0) / cell).astype(np.int64)
    bnd = np.zeros((ny + 2, nx + 2), dtype=bool)
    ok = (cx >= -1) & (cx <= nx) & (cy >= -1) & (cy <= ny)
    cx, cy = cx[ok] + 1, cy[ok] + 1
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            yy, xx = cy + dy, cx + dx
            k = (yy >= 0) & (yy < ny + 2) & (xx >= 0) & (xx < nx + 2)
            bnd[yy[k], xx[k]] = True
    bnd = bnd[1:-1, 1:-1]
    # 2. Within a row, a run of boundary-free cells has one label: test one cell centre per run.
    flat = ~bnd.ravel()
    col0 = np.zeros(ny * nx, dtype=bool)
    col0[::nx] = True
    prev = np.concatenate([[False], flat[:-1]])
    start = flat & (~prev | col0)
    starts = np.flatnonzero(start)
    sx = np.asarray(x0 + (starts % nx + 0.5) * cell, dtype=np.float64)
    sy = np.asarray(y0 + (starts // nx + 0.5) * cell, dtype=np.float64)
    run_lab = _exact(t, empty, sx, sy).astype(np.int32)
    run_id = np.cumsum(start, dtype=np.int32) - 1
    lut = np.full(ny * nx, BOUNDARY, dtype=np.int32)
    lut[flat] = run_lab[run_id[flat]]
    return _Grid(x0=x0, y0=y0, cell=cell, lut=lut.reshape(ny, nx), idx=idx, bounds=bounds)


def _cached_grid(t: Territories, level: str, max_cells: int) -> _Grid:
    """The lookup grid from the on-disk cache when its file is valid for these territories, else built (and saved)."""
    disk = t._cache.get("disk_key")
    if disk is None:
        return _build_grid(t, level, max_cells)
    kind = f"grid-{level}-{max_cells}"
    z = _cache_read(kind, disk)
    idx = t.level_indices(level)
    bounds = shapely.bounds(t.geoms[idx]).reshape(-1, 4) if len(idx) else np.zeros((0, 4))
    x0, y0, cell, nx, ny = _extent(t, bounds, max_cells)
    if z is not None:
        lut = z.get("lut")
        if (
            lut is not None
            and lut.dtype == np.int32
            and lut.shape == (ny, nx)
            and int(lut.min(initial=0)) >= BOUNDARY
            and int(lut.max(initial=0)) < len(t)
        ):
            return _Grid(x0=x0, y0=y0, cell=cell, lut=lut, idx=idx, bounds=bounds)
        _log.warning("ignoring inconsistent %s cache; rebuilding it", kind)
    g = _build_grid(t, level, max_cells)
    _cache_write(kind, disk, {"lut": g.lut})
    return g


def _grid(t: Territories, level: str, max_cells: int = 1 << 24) -> _Grid:
    key = f"grid:{level}:{max_cells}"
    g = t._cache.get(key)
    if g is None:
        g = _cached_grid(t, level, max_cells)
        t._cache[key] = g
    out: _Grid = g
    return out


def _tiled(t: Territories, level: str) -> TiledGrid | None:
    """The per-tile grid of a world set (:mod:`atalaya.geo.tiles`), ``None`` for a set with one grid."""
    if "tile_key" not in t._cache:
        return None
    from atalaya.geo.tiles import tiled_grid

    return tiled_grid(t, level)


def label_points(territories: Territories, lon: Any, lat: Any, level: str = "country") -> IntArray:
    """Index of the territory of ``level`` containing each point, or -1 (international).

    A lookup grid (≤ 16 M cells over the focus box, built once per level) answers
    points in cells that no boundary touches; points in boundary cells or outside
    the grid are tested exactly with prepared ``contains_xy``. Points exactly on a
    boundary count as outside.

    >>> from shapely.geometry import box
    >>> t = territories_from_geometries(ids=["A", "B"], geoms=[box(0, 0, 1, 1), box(1, 0, 2, 1)])
    >>> label_points(t, np.array([0.5, 1.5, 3.0]), np.array([0.5, 0.5, 0.5])).tolist()
    [0, 1, -1]
    """
    x = np.asarray(lon, dtype=np.float64).ravel()
    y = np.asarray(lat, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValidationError(
            f"lon and lat differ in length ({len(x)} vs {len(y)})", hint="pass one lon and one lat per point"
        )
    lab, _ = label_points_cells(territories, x, y, level)
    return lab


def label_points_cells(
    territories: Territories, x: FloatArray, y: FloatArray, level: str = "country"
) -> tuple[IntArray, IntArray]:
    """Labels as :func:`label_points` plus each point's lookup-grid cell (``iy * nx + ix``; -1 = not a pure cell).

    Two points in the same or side-adjacent pure cells are joined by a segment
    that crosses no boundary of the level (accounting uses this to skip exact
    crossing tests).
    """
    lab, ix, iy = label_points_grid(territories, x, y, level)
    nx = grid_width(territories, level)
    cells = np.where(ix >= 0, iy.astype(np.int64) * nx + ix, -1)
    return lab, cells


def label_points_grid(
    territories: Territories, x: FloatArray, y: FloatArray, level: str = "country"
) -> tuple[IntArray, npt.NDArray[np.int32], npt.NDArray[np.int32]]:
    """Labels as :func:`label_points` plus each point's lookup-grid column and row (both -1: not a pure cell).

    >>> from shapely.geometry import box
    >>> t = territories_from_geometries(ids=["A"], geoms=[box(0, 0, 1, 1)])
    >>> lab, ix, iy = label_points_grid(t, np.array([0.5, 3.0]), np.array([0.5, 0.5]))
    >>> lab.tolist(), bool(ix[0] >= 0), int(ix[1])
    ([0, -1], True, -1)
    """
    tiled = _tiled(territories, level)
    if tiled is not None:
        return tiled.label_points_grid(territories, x, y)
    g = _grid(territories, level)
    n = len(x)
    out = np.empty(n, dtype=np.int64)
    if n == 0:
        return out, np.zeros(0, np.int32), np.zeros(0, np.int32)
    ny, nx = g.lut.shape
    fx = (x - g.x0) / g.cell
    fy = (y - g.y0) / g.cell
    inside = (fx >= 0) & (fx < nx) & (fy >= 0) & (fy < ny)
    ix = np.where(inside, fx, -1).astype(np.int32)
    iy = np.where(inside, fy, -1).astype(np.int32)
    wide = np.int64 if ny * nx >= 2**31 else np.int32
    flat = np.where(inside, iy.astype(wide) * nx + ix, 0)
    lab = g.lut.ravel()[flat]
    out[:] = lab
    impure = ~inside | (lab == BOUNDARY)
    ix[impure] = -1
    iy[impure] = -1
    need = np.flatnonzero(impure)
    if len(need):
        out[need] = _exact(territories, g, x[need], y[need])
    return out, ix, iy


def cells_pure(territories: Territories, cells: IntArray, level: str = "country") -> npt.NDArray[np.bool_]:
    """Whether grid cells (flat indices from :func:`label_points_cells`, -1 allowed) are crossed by no boundary."""
    tiled = _tiled(territories, level)
    if tiled is not None:
        return tiled.cells_pure(territories, cells)
    lut = _grid(territories, level).lut.ravel()
    ok = cells >= 0
    out = np.zeros(len(cells), dtype=bool)
    out[ok] = lut[cells[ok]] != BOUNDARY
    return out


def grid_width(territories: Territories, level: str = "country") -> int:
    """Number of columns of the lookup grid of ``level`` (to decode cells of :func:`label_points_cells`)."""
    tiled = _tiled(territories, level)
    if tiled is not None:
        return tiled.width()
    return int(_grid(territories, level).lut.shape[1])


# --------------------------------------------------------------------------- depth bounds

DEPTH_CELLS = 1 << 19
"""Cells of the nearest-boundary-point grid of a level (over the same box as the lookup grid)."""
KM_PER_DEGREE_MAX = 111.7
"""No path of one degree in lon/lat is longer than this on WGS84 (meridian degree at the poles: 111.69 km)."""
SEED_INSIDE_MAX_DEG = 1e-7
"""Boundary points lying farther than this inside another territory of the level are not used for depth bounds."""


@dataclass(frozen=True, kw_only=True)
class _Field:
    """For each cell of a grid, a point of some boundary of the level near the cell centre."""

    x0: float
    """West edge, degrees."""
    y0: float
    """South edge, degrees."""
    cell: float
    """Cell size, degrees."""
    seed: npt.NDArray[np.int32]
    """``(ny, nx)`` index of the cell's boundary point (-1: none)."""
    sx: FloatArray
    """Boundary points (densified boundary vertices): longitudes."""
    sy: FloatArray
    """Latitudes."""
    slack_km: float
    """How far (km) inside a territory of the level any kept boundary point may lie (rounding along shared borders)."""
    cell_ub: FloatArray
    """``(ny, nx)`` bound (km, slack included) of the depth of any point of the cell (``inf``: no boundary point)."""


def _jump_flood(seed: npt.NDArray[np.int32], sx: FloatArray, sy: FloatArray, px: FloatArray, py: FloatArray) -> None:
    """Propagate to every cell the boundary point nearest its centre (jump flooding, then one unit pass), in place.

    Distances use the local scale of each row (``cos φ`` east-west). The result is
    the nearest point for nearly all cells and a close one otherwise; callers only
    rely on it being *some* boundary point.
    """
    ny, nx = seed.shape
    kx = np.cos(np.radians(py))[:, None]
    best = np.full(seed.shape, np.inf)
    ok = seed >= 0
    iy, ix = np.nonzero(ok)
    s = seed[ok]
    best[ok] = ((sx[s] - px[ix]) * kx[iy, 0]) ** 2 + (sy[s] - py[iy]) ** 2
    k = 1 << max(int(np.ceil(np.log2(max(nx, ny)))) - 1, 0)
    steps = []
    while k >= 1:
        steps.append(k)
        k //= 2
    for k in [*steps, 1]:
        for dy in (-k, 0, k):
            for dx in (-k, 0, k):
                if (dy == 0 and dx == 0) or abs(dy) >= ny or abs(dx) >= nx:
                    continue
                ty = slice(max(0, -dy), ny - max(0, dy))
                tx = slice(max(0, -dx), nx - max(0, dx))
                fy = slice(max(0, dy), ny - max(0, -dy))
                fx = slice(max(0, dx), nx - max(0, -dx))
                cand = seed[fy, fx]
                d2 = ((sx[cand] - px[tx]) * kx[ty]) ** 2 + (sy[cand] - py[ty, None]) ** 2
                better = (cand >= 0) & (d2 < best[ty, tx])
                np.copyto(best[ty, tx], d2, where=better)
                np.copyto(seed[ty, tx], cand, where=better)


def _build_field(t: Territories, level: str, max_cells: int) -> _Field:
    idx = t.level_indices(level)
    geoms = t.geoms[idx]
    bounds = shapely.bounds(geoms).reshape(-1, 4) if len(idx) else np.zeros((0, 4))
    x0, y0, cell, nx, ny = _extent(t, bounds, max_cells)
    bnd = shapely.boundary(geoms)
    xy = shapely.get_coordinates(shapely.segmentize(bnd, cell * 0.25))
    sx, sy = xy[:, 0], xy[:, 1]
    # A boundary point q inside the interior of a territory T bounds depths in T only with dist(q, ∂T)
    # added (the path p → q → ∂T). Along shared borders that distance is rounding; points farther inside
    # (where territories of the level overlap) are dropped, and the rest's largest distance is kept as slack.
    far = np.zeros(len(sx))
    for k, gi in enumerate(idx.tolist()):
        bx0, by0, bx1, by1 = bounds[k]
        m = np.flatnonzero((sx >= bx0) & (sx <= bx1) & (sy >= by0) & (sy <= by1))
        m = m[shapely.contains_xy(t.geoms[gi], sx[m], sy[m])]
        if len(m):
            far[m] = np.maximum(far[m], shapely.distance(bnd[k], shapely.points(sx[m], sy[m])))
    keep = far <= SEED_INSIDE_MAX_DEG
    sx, sy = np.ascontiguousarray(sx[keep]), np.ascontiguousarray(sy[keep])
    slack = float(far[keep].max(initial=0.0)) * KM_PER_DEGREE_MAX
    seed = np.full((ny, nx), -1, dtype=np.int32)
    px = np.asarray(x0 + (np.arange(nx) + 0.5) * cell, dtype=np.float64)
    py = np.asarray(y0 + (np.arange(ny) + 0.5) * cell, dtype=np.float64)
    cx = np.floor((sx - x0) / cell).astype(np.int64)
    cy = np.floor((sy - y0) / cell).astype(np.int64)
    ok = np.flatnonzero((cx >= 0) & (cx < nx) & (cy >= 0) & (cy < ny))
    # One point per cell: the one nearest the centre (assigned last, so it wins).
    d2 = (sx[ok] - px[cx[ok]]) ** 2 + (sy[ok] - py[cy[ok]]) ** 2
    ok = ok[np.argsort(-d2, kind="stable")]
    seed[cy[ok], cx[ok]] = ok.astype(np.int32)
    if len(ok):
        _jump_flood(seed, sx, sy, px, py)
    ub = _cell_bounds(x0, y0, cell, seed, sx, sy, slack)
    return _Field(x0=x0, y0=y0, cell=cell, seed=seed, sx=sx, sy=sy, slack_km=slack, cell_ub=ub)


def _cached_field(t: Territories, level: str, max_cells: int) -> _Field:
    """The depth-bound grid from the on-disk cache when its file is valid for these territories, else built."""
    disk = t._cache.get("disk_key")
    if disk is None:
        return _build_field(t, level, max_cells)
    kind = f"field-{level}-{max_cells}"
    z = _cache_read(kind, disk)
    idx = t.level_indices(level)
    bounds = shapely.bounds(t.geoms[idx]).reshape(-1, 4) if len(idx) else np.zeros((0, 4))
    x0, y0, cell, nx, ny = _extent(t, bounds, max_cells)
    if z is not None and {"seed", "sx", "sy", "slack_km", "cell_ub"} <= set(z):
        seed, sx, sy, slack, ub = z["seed"], z["sx"], z["sy"], z["slack_km"], z["cell_ub"]
        if (
            seed.dtype == np.int32
            and seed.shape == (ny, nx)
            and ub.dtype == np.float64
            and ub.shape == (ny, nx)
            and np.array_equal(np.isfinite(ub), seed >= 0)
            and float(np.min(ub, initial=0.0)) >= 0.0
            and sx.dtype == sy.dtype == slack.dtype == np.float64
            and sx.ndim == 1
            and sx.shape == sy.shape
            and slack.shape == ()
            and bool(np.isfinite(slack))
            and float(slack) >= 0.0
            and int(seed.min(initial=-1)) >= -1
            and int(seed.max(initial=-1)) < len(sx)
        ):
            return _Field(x0=x0, y0=y0, cell=cell, seed=seed, sx=sx, sy=sy, slack_km=float(slack), cell_ub=ub)
        _log.warning("ignoring inconsistent %s cache; rebuilding it", kind)
    f = _build_field(t, level, max_cells)
    arrays: dict[str, npt.NDArray[Any]] = {
        "seed": f.seed,
        "sx": f.sx,
        "sy": f.sy,
        "slack_km": np.array(f.slack_km),
        "cell_ub": f.cell_ub,
    }
    _cache_write(kind, disk, arrays)
    return f


def _cell_bounds(
    x0: float, y0: float, cell: float, seed: npt.NDArray[np.int32], sx: FloatArray, sy: FloatArray, slack_km: float
) -> FloatArray:
    """Per cell, the bound of :func:`depth_upper_bound` for any point of the cell (its boundary point is shared)."""
    ny, nx = seed.shape
    out = np.full(seed.shape, np.inf)
    iy, ix = np.nonzero(seed >= 0)
    s = seed[iy, ix]
    eps = 1e-9 * (1.0 + abs(x0) + abs(y0) + cell * max(nx, ny))  # points rounded into the cell from just outside
    west, south = x0 + ix * cell - eps, y0 + iy * cell - eps
    east, north = x0 + (ix + 1) * cell + eps, y0 + (iy + 1) * cell + eps
    out[iy, ix] = geodesic_upper_bound_from_box(west, south, east, north, sx[s], sy[s]) / 1000.0 + slack_km
    return out


def _field(t: Territories, level: str, max_cells: int = DEPTH_CELLS) -> _Field:
    max_cells = int(t._cache.get(f"depth_cells:{level}", max_cells))  # a world set asks for more at country level
    key = f"field:{level}:{max_cells}"
    f = t._cache.get(key)
    if f is None:
        f = _cached_field(t, level, max_cells)
        t._cache[key] = f
    out: _Field = f
    return out


def depth_upper_bound(territories: Territories, lon: Any, lat: Any, labels: Any, level: str = "country") -> FloatArray:
    """A guaranteed upper bound (km) of each point's geodesic distance to the boundary of its territory ``labels``.

    Each point is measured (:func:`atalaya.geo.kernels.geodesic_upper_bound`) to the
    boundary point that a grid (≤ :data:`DEPTH_CELLS` cells, built once per level)
    keeps for its cell: the boundary point nearest the cell centre, so the bound is
    close for deep points (about ``h² / 2d`` above the depth ``d`` for a point ``h``
    from the centre). Points outside the grid, or with label -1, get ``inf``.

    >>> from shapely.geometry import box
    >>> t = territories_from_geometries(ids=["A"], geoms=[box(0, 0, 2, 2)])
    >>> ub = depth_upper_bound(t, np.array([1.0, 0.1]), np.array([1.0, 1.0]), np.array([0, 0]))
    >>> bool(110.57 <= ub[0] < 111.5), bool(11.13 <= ub[1] < 11.4)  # depths: 110.57 km and 11.13 km
    (True, True)
    >>> depth_upper_bound(t, np.array([]), np.array([]), np.array([], dtype=np.int64)).shape
    (0,)
    """
    x = np.asarray(lon, dtype=np.float64).ravel()
    y = np.asarray(lat, dtype=np.float64).ravel()
    lab = np.asarray(labels).ravel()
    f = _field(territories, level)
    ny, nx = f.seed.shape
    out = np.full(len(x), np.inf)
    ix = np.floor((x - f.x0) / f.cell)
    iy = np.floor((y - f.y0) / f.cell)
    ok = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny) & (lab >= 0)
    k = np.flatnonzero(ok)
    s = f.seed.ravel()[iy[k].astype(np.int64) * nx + ix[k].astype(np.int64)]
    has = s >= 0
    k, s = k[has], s[has]
    out[k] = geodesic_upper_bound(x[k], y[k], f.sx[s], f.sy[s]) / 1000.0 + f.slack_km
    return out


def depth_cell_bound(territories: Territories, lon: Any, lat: Any, labels: Any, level: str = "country") -> FloatArray:
    """A cheaper, looser bound than :func:`depth_upper_bound` (km): the largest it gives over each point's grid cell.

    One lookup per point (no arithmetic), at most about a cell's diagonal above
    :func:`depth_upper_bound`; ``inf`` where that is ``inf``.

    >>> from shapely.geometry import box
    >>> t = territories_from_geometries(ids=["A"], geoms=[box(0, 0, 2, 2)])
    >>> x, y, lab = np.array([1.0, 0.1]), np.array([1.0, 1.0]), np.array([0, 0])
    >>> bool(np.all(depth_cell_bound(t, x, y, lab) >= depth_upper_bound(t, x, y, lab)))
    True
    >>> depth_cell_bound(t, np.array([]), np.array([]), np.array([], dtype=np.int64)).shape
    (0,)
    """
    x = np.asarray(lon, dtype=np.float64).ravel()
    y = np.asarray(lat, dtype=np.float64).ravel()
    lab = np.asarray(labels).ravel()
    f = _field(territories, level)
    ny, nx = f.seed.shape
    ix = np.floor((x - f.x0) / f.cell)
    iy = np.floor((y - f.y0) / f.cell)
    ok = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny) & (lab >= 0)
    flat = np.where(ok, iy, 0).astype(np.int64) * nx + np.where(ok, ix, 0).astype(np.int64)
    out: FloatArray = np.where(ok, f.cell_ub.ravel()[flat], np.inf)
    return out
