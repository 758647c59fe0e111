"""World territories: every Natural Earth admin-0 country with its territorial sea, derived per country, on demand.

The bundled world layer (``ne_10m_admin_0_countries_world.geojson.gz``, 258
countries and dependencies keyed by ``adm0_a3``: France is ``FRA`` although its
``iso_a3`` is ``-99``) is turned into territories the way
:mod:`atalaya.geo.territories` turns the Mexico region into them — land plus the
12 nm territorial sea, the overlap of two seas split by an approximate median
line — but one country at a time: a country's territory depends only on the
lands within 24 nm of it, so it is derived alone and kept in the on-disk cache
(:func:`atalaya.geo.territories.cache_dir`) under a key of the source layer and
this code. The split of an overlap is computed for the pair in a fixed order
(by ``adm0_a3``), so both neighbours derive the same median line and their
territories neither overlap nor leave a gap; a numerical sliver of an overlap
goes to the country first in that order.

Only the countries whose land (widened by its sea) reaches the 10° tiles
(:data:`TILE_DEG`) that the data touches are loaded (:func:`load_world`), and a
loaded set is itself cached, so a new process has it, grids included, in a
fraction of a second. States (admin-1, land only) are the bundled MEX, USA,
GTM and BLZ (1:10m) and BRA, CAN and AUS (1:50m) provinces, plus any Natural
Earth admin-1 GeoJSON a user names (``[territories] admin1`` in the workspace
configuration); they are loaded per tile the same way.

>>> t = load_world(lon=[2.35, 13.40], lat=[48.86, 52.52])
>>> [str(i) for i in t.id_of(label_points(t, [2.35, 13.40], [48.86, 52.52]))]
['FRA', 'DEU']
"""

from __future__ import annotations

import gzip
import hashlib
import inspect
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

from atalaya.core.errors import ValidationError
from atalaya.geo import kernels, territories
from atalaya.geo.kernels import geodesic_buffer
from atalaya.geo.naturalearth import LAYERS
from atalaya.geo.territories import (
    DEPTH_CELLS,
    TERRITORIAL_SEA_M,
    Territories,
    _cache_read,
    _cache_write,
    _make,
    _polygonal,
    _read_territories,
    _split_overlap,
    _write_territories,
    label_points,
    read_territories_geojson,
)

_log = logging.getLogger(__name__)

TILE_DEG = 10.0
"""Side of the tiles by which countries and states are selected (degrees)."""
TILES_X = int(360 / TILE_DEG)
TILES_Y = int(180 / TILE_DEG)
SEA_MARGIN_DEG = 0.25
"""A country's sea reaches at most this far (degrees of latitude) from its land: 12 nm is 0.2°."""
WORLD_FORMAT = 1
"""Version of the world derivation; bump it when the way a country's territory is derived changes."""
DEPTH_CELL_DEG = 0.125
"""Largest cell (degrees) of the country level's depth-bound grid of a world set
(:func:`atalaya.geo.territories.depth_upper_bound`; the Mexico region's has 0.09°): finer bounds leave fewer
fixes to measure exactly. The whole world takes 4 M cells: 50 MB of cache, about 0.1 s to load."""
STATE_LAYERS: tuple[str, ...] = ("admin1", "admin1_bra_can_aus")
"""Bundled admin-1 layers (``adm0_a3`` + ISO 3166-2 suffix ids, as in :mod:`atalaya.geo.territories`)."""

Row = tuple[str, str, str, str, BaseGeometry]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def tile_index(lon: Any, lat: Any) -> IntArray:
    """The :data:`TILE_DEG` tile (``row * 36 + column``, counted from 180° W, 90° S) of each point.

    >>> tile_index([-180.0, 179.99, 2.35], [-90.0, 90.0, 48.86]).tolist()
    [0, 647, 486]
    """
    x = np.asarray(lon, dtype=np.float64).ravel()
    y = np.asarray(lat, dtype=np.float64).ravel()
    tx = np.clip(np.floor((x + 180.0) / TILE_DEG), 0, TILES_X - 1).astype(np.int64)
    ty = np.clip(np.floor((y + 90.0) / TILE_DEG), 0, TILES_Y - 1).astype(np.int64)
    out: IntArray = ty * TILES_X + tx
    return out


def tiles_of(lon: Any, lat: Any) -> IntArray:
    """The distinct tiles (:func:`tile_index`) holding the points, sorted."""
    return np.unique(tile_index(lon, lat))


def outside_loaded_tiles(t: Territories, lon: Any, lat: Any) -> npt.NDArray[np.bool_] | None:
    """For a world set (:func:`load_world`): the points outside the tiles it was loaded for; ``None`` for others."""
    tiles = t._cache.get("tiles")
    if tiles is None:
        return None
    out: npt.NDArray[np.bool_] = ~np.isin(tile_index(lon, lat), tiles)
    return out


def _touching(boxes: FloatArray, tiles: IntArray) -> npt.NDArray[np.bool_]:
    """Which ``(n, 4)`` lon/lat boxes meet any of the tiles."""
    want = np.zeros((TILES_Y, TILES_X), dtype=bool)
    want.ravel()[tiles] = True
    # Prefix sums: a box meets a wanted tile when the count over its tile range is > 0.
    cs = np.zeros((TILES_Y + 1, TILES_X + 1), dtype=np.int64)
    cs[1:, 1:] = np.cumsum(np.cumsum(want, axis=0), axis=1)
    x0 = np.clip(np.floor((boxes[:, 0] + 180.0) / TILE_DEG), 0, TILES_X - 1).astype(np.int64)
    x1 = np.clip(np.floor((boxes[:, 2] + 180.0) / TILE_DEG), 0, TILES_X - 1).astype(np.int64) + 1
    y0 = np.clip(np.floor((boxes[:, 1] + 90.0) / TILE_DEG), 0, TILES_Y - 1).astype(np.int64)
    y1 = np.clip(np.floor((boxes[:, 3] + 90.0) / TILE_DEG), 0, TILES_Y - 1).astype(np.int64) + 1
    hits: npt.NDArray[np.bool_] = (cs[y1, x1] - cs[y0, x1] - cs[y1, x0] + cs[y0, x0]) > 0
    return hits


# --------------------------------------------------------------------------- sources and keys


def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256(f"atalaya-world/{WORLD_FORMAT}/{shapely.geos_version_string}".encode())
    for p in parts:
        b = p.encode() if isinstance(p, str) else p
        h.update(f"\0{len(b)}\0".encode())
        h.update(b)
    return h.hexdigest()


@cache
def _world_key() -> str:
    """Digest of the world layer and of the code deriving territories from it (the functions, not their modules)."""
    data = resources.files("atalaya.geo").joinpath("data", LAYERS["admin0_world"]).read_bytes()
    derive = (_land, _buffer, _sea, _near_lands, _split, _derive, _widen, territories._split_overlap, _polygonal)
    code = [inspect.getsource(f) for f in derive]
    return _digest(data, str(SEA_MARGIN_DEG), str(TERRITORIAL_SEA_M), Path(kernels.__file__).read_bytes(), *code)


def _geojson_features(data: bytes, where: str) -> list[dict[str, Any]]:
    try:
        doc = json.loads(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
        feats: list[dict[str, Any]] = doc["features"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValidationError(
            f"cannot read features from {where}: {e}", hint="give a GeoJSON FeatureCollection (optionally gzipped)"
        ) from e
    return feats


@dataclass(frozen=True, kw_only=True)
class _Land:
    """The world layer parsed: per country its code, name and land; an STRtree over the lands."""

    codes: list[str]
    names: list[str]
    land: npt.NDArray[np.object_]
    tree: shapely.STRtree


@cache
def _land() -> _Land:
    """Parse the world layer (only when a country must be derived: a few seconds)."""
    data = resources.files("atalaya.geo").joinpath("data", LAYERS["admin0_world"]).read_bytes()
    feats = _geojson_features(data, LAYERS["admin0_world"])
    codes = [str(f["properties"]["adm0_a3"]) for f in feats]
    names = [str(f["properties"].get("name") or f["properties"]["adm0_a3"]) for f in feats]
    geoms = shapely.from_geojson([json.dumps(f["geometry"]) for f in feats])
    land = np.empty(len(feats), dtype=object)
    land[:] = [shapely.make_valid(g) for g in geoms]
    return _Land(codes=codes, names=names, land=land, tree=shapely.STRtree(land))


@dataclass(frozen=True, kw_only=True)
class _Index:
    """What selecting countries by tile needs, without parsing the layer: codes, names, part boxes with sea."""

    codes: list[str]
    names: list[str]
    boxes: FloatArray
    """``(parts, 4)`` lon/lat boxes of the land parts widened by :data:`SEA_MARGIN_DEG` (east-west: scaled)."""
    owner: IntArray
    """Country (index into ``codes``) of each box."""


def _widen(b: FloatArray) -> FloatArray:
    lat = np.minimum(np.maximum(np.abs(b[:, 1]), np.abs(b[:, 3])), 89.0)
    dx = SEA_MARGIN_DEG / np.cos(np.radians(lat))
    return np.column_stack([b[:, 0] - dx, b[:, 1] - SEA_MARGIN_DEG, b[:, 2] + dx, b[:, 3] + SEA_MARGIN_DEG])


@cache
def _index() -> _Index:
    key = _world_key()
    z = _cache_read("world-index", key)
    if z is not None and {"codes", "names", "boxes", "owner"} <= set(z):
        codes, names, boxes, owner = z["codes"], z["names"], z["boxes"], z["owner"]
        if (
            codes.ndim == 1
            and names.shape == codes.shape
            and boxes.dtype == np.float64
            and boxes.ndim == 2
            and boxes.shape[1] == 4
            and owner.shape == (len(boxes),)
            and int(owner.min(initial=0)) >= 0
            and int(owner.max(initial=0)) < len(codes)
        ):
            return _Index(codes=codes.tolist(), names=names.tolist(), boxes=boxes, owner=owner.astype(np.int64))
        _log.warning("ignoring inconsistent world index cache; rebuilding it")
    w = _land()
    parts, owner = shapely.get_parts(w.land, return_index=True)
    boxes = _widen(shapely.bounds(parts).reshape(-1, 4))
    _cache_write(
        "world-index",
        key,
        {"codes": np.array(w.codes, dtype=str), "names": np.array(w.names, dtype=str), "boxes": boxes, "owner": owner},
    )
    return _Index(codes=w.codes, names=w.names, boxes=boxes, owner=owner.astype(np.int64))


# --------------------------------------------------------------------------- one country


@cache
def _buffer(i: int) -> BaseGeometry:
    """Land plus 12 nm of country ``i`` (before neighbours are taken out)."""
    return geodesic_buffer(_land().land[i], TERRITORIAL_SEA_M)


@cache
def _sea(i: int) -> BaseGeometry:
    """Country ``i``'s buffer less every other land it reaches."""
    w = _land()
    b = _buffer(i)
    others = [j for j in w.tree.query(b, predicate="intersects").tolist() if j != i]
    return shapely.difference(b, shapely.union_all(w.land[others])) if others else b


def _near_lands(i: int) -> list[int]:
    """Countries whose land lies within about 24 nm of country ``i``'s land (their seas may meet)."""
    w = _land()
    parts = shapely.get_parts(_buffer(i))
    if len(parts) == 0:
        return []
    b = shapely.bounds(parts).reshape(-1, 4)
    # Per part, a distance in degrees that is at least 12 nm in any direction at the part's highest latitude.
    lat = np.minimum(np.maximum(np.abs(b[:, 1]), np.abs(b[:, 3])), 89.0)
    dist = SEA_MARGIN_DEG / np.cos(np.radians(lat))
    _, near = w.tree.query(parts, predicate="dwithin", distance=dist)
    return [j for j in np.unique(near).tolist() if j != i]


@cache
def _split(a: int, b: int) -> tuple[BaseGeometry, BaseGeometry, BaseGeometry]:
    """The overlap of the seas of ``a`` and ``b`` (``a`` first by code) and its parts nearer each of them."""
    w = _land()
    ov = shapely.intersection(_sea(a), _sea(b))
    if ov.is_empty or ov.area == 0.0:
        return ov, shapely.Polygon(), shapely.Polygon()
    near_a, near_b = _split_overlap(w.land[a], w.land[b], ov)
    return ov, near_a, near_b


def _derive(i: int) -> BaseGeometry:
    """Country ``i``'s territory: its sea less the parts of each overlap nearer a neighbour."""
    w = _land()
    terr = _sea(i)
    for j in _near_lands(i):
        if not shapely.intersects(_buffer(i), _buffer(j)):
            continue
        first = w.codes[i] < w.codes[j]
        a, b = (i, j) if first else (j, i)
        ov, _, near_b = _split(a, b)
        if ov.is_empty or ov.area == 0.0:
            continue
        # The first of the pair keeps the overlap less the part nearer the second (numerical slivers included).
        terr = shapely.difference(terr, near_b) if first else shapely.difference(terr, shapely.difference(ov, near_b))
    return _polygonal(terr)


def country_territory(code: str) -> BaseGeometry:
    """Land and territorial sea of one country (``adm0_a3``), from the on-disk cache or derived and cached.

    >>> round(country_territory("NLD").bounds[0], 1)  # the Dutch coast and sea, Caribbean islands included
    -68.6
    """
    idx = _index()
    try:
        i = idx.codes.index(code)
    except ValueError:
        raise ValidationError(
            f"unknown country {code!r}", hint="give a Natural Earth adm0_a3 code (FRA, NLD, MEX, …)"
        ) from None
    key = _world_key()
    kind = f"wcountry-{code}"
    z = _cache_read(kind, key)
    if z is not None and "wkb" in z and z["wkb"].dtype == np.uint8:
        try:
            g = shapely.from_wkb(z["wkb"].tobytes())
            if g.geom_type in ("Polygon", "MultiPolygon"):
                return g
        except Exception as e:  # a damaged file is rebuilt
            _log.warning("ignoring damaged %s cache (%s); rebuilding it", kind, e)
    g = _derive(i)
    _cache_write(kind, key, {"wkb": np.frombuffer(shapely.to_wkb(g), dtype=np.uint8)})
    return g


# --------------------------------------------------------------------------- states


@dataclass(frozen=True, kw_only=True)
class _States:
    """Admin-1 rows of one source, with their boxes."""

    rows: list[Row]
    boxes: FloatArray
    """``(parts, 4)`` boxes of the states' parts."""
    owner: IntArray
    """State (index into ``rows``) of each box."""


def _state_rows(feats: Sequence[dict[str, Any]]) -> list[Row]:
    rows: list[Row] = []
    for f in feats:
        p = {k.lower(): v for k, v in (f.get("properties") or {}).items()}
        owner = str(p.get("adm0_a3") or "")
        if not owner or not f.get("geometry"):
            continue
        iso = str(p.get("iso_3166_2") or "")
        suffix = iso.split("-", 1)[-1].rstrip("~") if iso else "X"
        g = _polygonal(shapely.from_geojson(json.dumps(f["geometry"])))
        if g.is_empty:
            continue
        rows.append((f"{owner}-{suffix}", str(p.get("name") or iso), "state", owner, g))
    return rows


@cache
def _source_digest(path: str) -> str:
    """Digest of a user's file (what its derived tiles depend on)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@cache
def _states(source: str) -> _States:
    """States of a bundled layer (``layer:NAME``) or of a user's admin-1 file (a path), cached on disk as WKB."""
    if source.startswith("layer:"):
        name = source.removeprefix("layer:")
        data = resources.files("atalaya.geo").joinpath("data", LAYERS[name]).read_bytes()
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as e:
            raise ValidationError(
                f"cannot read admin-1 territories from {source}: {e}",
                hint="set [territories] admin1 to a Natural Earth admin-1 GeoJSON (ne_10m_admin_1_states_provinces)",
            ) from e
    key = _digest(data, Path(__file__).read_bytes())
    t = _read_territories(key, kind="wstates")
    if t is None:
        t = _make(_state_rows(_geojson_features(data, source)), None)
        _write_territories(key, t, kind="wstates")
    rows = [(str(t.ids[i]), str(t.names[i]), "state", str(t.owners[i]), t.geoms[i]) for i in range(len(t))]
    parts, owner = shapely.get_parts(t.geoms, return_index=True)
    return _States(rows=rows, boxes=shapely.bounds(parts).reshape(-1, 4), owner=owner.astype(np.int64))


# --------------------------------------------------------------------------- loading


def load_world(
    *,
    lon: Any = None,
    lat: Any = None,
    tiles: Iterable[int] | None = None,
    admin1: Path | None = None,
    extra: Path | None = None,
) -> Territories:
    """Countries (land + territorial sea) and states reaching the tiles of the points (or ``tiles``; all if neither).

    States come from the bundled admin-1 layers and, when given, from ``admin1``
    (a Natural Earth admin-1 GeoJSON, plain or gzipped); its states replace
    bundled ones with the same id. ``extra`` territories (GeoJSON with ``id``,
    ``name``, ``level``, ``owner``) replace loaded ones with the same id. The set
    is cached in the process and on disk.
    """
    if tiles is not None:
        tl = np.unique(np.asarray(list(tiles), dtype=np.int64))
    elif lon is not None and lat is not None:
        tl = tiles_of(lon, lat)
    else:
        tl = np.arange(TILES_X * TILES_Y, dtype=np.int64)
    if len(tl) and (tl.min() < 0 or tl.max() >= TILES_X * TILES_Y):
        raise ValidationError("tile numbers out of range", hint=f"tiles are 0..{TILES_X * TILES_Y - 1}")
    src = str(Path(admin1).resolve()) if admin1 is not None else None
    key = tuple(tl.tolist())
    return _load_world(key, src) if extra is None else _with_extra(key, src, str(Path(extra).resolve()))


@cache
def _with_extra(tiles: tuple[int, ...], admin1: str | None, extra: str) -> Territories:
    base = _load_world(tiles, admin1)
    try:
        data = Path(extra).read_bytes()
    except OSError as e:
        raise ValidationError(
            f"cannot read territories from {extra}: {e}", hint="give an existing GeoJSON FeatureCollection"
        ) from e
    key = _digest(str(base._cache["disk_key"]), data)
    t = _read_territories(key, kind="wterritories")
    if t is None:
        new = read_territories_geojson(Path(extra))
        ids = {r[0] for r in new}
        keep = [i for i in range(len(base)) if str(base.ids[i]) not in ids]
        rows: list[Row] = [
            (str(base.ids[i]), str(base.names[i]), str(base.levels[i]), str(base.owners[i]), base.geoms[i])
            for i in keep
        ]
        t = _make(rows + new, base.focus)
        _write_territories(key, t, kind="wterritories")
    t._cache["disk_key"] = key
    t._cache["tiles"] = base._cache["tiles"]
    t._cache["depth_cells:country"] = _depth_cells(t.focus)
    t._cache["tile_key"] = _digest(str(base._cache["tile_key"]), data)
    return t


@cache
def _load_world(tiles: tuple[int, ...], admin1: str | None) -> Territories:
    tl = np.asarray(tiles, dtype=np.int64)
    idx = _index()
    countries = sorted(set(idx.owner[_touching(idx.boxes, tl)].tolist()), key=lambda i: idx.codes[i])
    sources = [f"layer:{n}" for n in STATE_LAYERS] + ([admin1] if admin1 is not None else [])
    state_sets = [_states(s) for s in sources]
    picked: dict[str, Row] = {}
    for st in state_sets:  # later sources replace earlier ones with the same id
        for k in np.unique(st.owner[_touching(st.boxes, tl)]).tolist():
            picked[st.rows[k][0]] = st.rows[k]
    states = sorted(picked.values(), key=lambda r: r[0])
    codes = [idx.codes[i] for i in countries]
    key = _digest(_world_key(), ",".join(codes), *(s for s in sources), ",".join(r[0] for r in states))
    t = _read_territories(key, kind="wterritories")
    if t is None:
        rows: list[Row] = [
            (idx.codes[i], idx.names[i], "country", idx.codes[i], country_territory(idx.codes[i])) for i in countries
        ]
        t = _make(rows + states, _focus(tl))
        _write_territories(key, t, kind="wterritories")
    t._cache["disk_key"] = key
    t._cache["tiles"] = tl
    t._cache["depth_cells:country"] = _depth_cells(t.focus)
    t._cache["tile_key"] = _digest(_world_key(), *sources, *(_source_digest(s) for s in sources[len(STATE_LAYERS) :]))
    return t


def _depth_cells(focus: tuple[float, float, float, float] | None) -> int:
    """Cells of the country level's depth-bound grid over ``focus``: at most :data:`DEPTH_CELL_DEG` each."""
    if focus is None:
        return DEPTH_CELLS
    area = (focus[2] - focus[0]) * (focus[3] - focus[1])
    return max(DEPTH_CELLS, int(np.ceil(area / DEPTH_CELL_DEG**2)))


def _focus(tl: IntArray) -> tuple[float, float, float, float]:
    """Lon/lat box of the tiles (the lookup grid's extent)."""
    tx, ty = tl % TILES_X, tl // TILES_X
    return (
        float(tx.min() * TILE_DEG - 180.0),
        float(ty.min() * TILE_DEG - 90.0),
        float((tx.max() + 1) * TILE_DEG - 180.0),
        float((ty.max() + 1) * TILE_DEG - 90.0),
    )


__all__ = ["TILE_DEG", "country_territory", "label_points", "load_world", "tiles_of"]
