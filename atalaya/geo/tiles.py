"""Per-tile lookup grids: the lookup grid of a world territory set, built and cached one 10° tile at a time.

The grid is one virtual lon/lat grid over the whole world, :data:`CELLS_PER_TILE`
cells per tile side (10° / 256 = 0.039°, about 4 km). A tile's cells are built
the first time a point falls in the tile (or next to it, for the accounting's
crossing test), the way :mod:`atalaya.geo.territories` builds its grid: cells
touched by a boundary are marked, then one cell centre per run of unmarked
cells in a row is tested exactly. A cell holds a territory, -1 (international)
or -2 (crossed by a boundary: its points are tested exactly). Each tile is kept
in the on-disk cache with the ids of the territories it names, so another
selection of the same world set (other tiles loaded) reuses it.

>>> from atalaya.geo.world import load_world
>>> from atalaya.geo.territories import label_points
>>> t = load_world(lon=[4.9], lat=[52.37])
>>> str(t.id_of(label_points(t, [4.9], [52.37]))[0])
'NLD'
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import threading
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import shapely

from atalaya.geo.territories import BOUNDARY, INTL, _cache_read, _cache_write

if TYPE_CHECKING:
    from atalaya.geo.territories import Territories

_log = logging.getLogger(__name__)

TILE_DEG = 10.0
"""Side of a tile (degrees); the same tiles by which :mod:`atalaya.geo.world` selects countries."""
CELLS_PER_TILE = 256  # a power of two (cells are split by shifts)
"""Cells per tile side."""
CELL_DEG = TILE_DEG / CELLS_PER_TILE
_SHIFT = CELLS_PER_TILE.bit_length() - 1
_MASK = CELLS_PER_TILE - 1
TILES_X = 36
TILES_Y = 18
NX = TILES_X * CELLS_PER_TILE
"""Columns of the virtual world grid."""
NY = TILES_Y * CELLS_PER_TILE
"""Rows of the virtual world grid."""

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]


@dataclass(kw_only=True)
class TiledGrid:
    """The lookup grid of one level of a territory set, tiles loaded on demand (thread-safe)."""

    level: str
    key: str
    """Digest of the sources the tiles derive from (the same for every selection of one world set)."""
    slot: I32 = field(default_factory=lambda: np.full(TILES_X * TILES_Y, -1, dtype=np.int32))
    """Per tile, its index in ``stack`` (-1: not loaded yet)."""
    stack: npt.NDArray[np.signedinteger[Any]] = field(
        default_factory=lambda: np.zeros((0, CELLS_PER_TILE, CELLS_PER_TILE), dtype=np.int16)
    )
    """Loaded tiles' cells: territory index, :data:`INTL` or :data:`BOUNDARY` (int16 when indices fit)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    # ----------------------------------------------------------------- lookups

    def width(self) -> int:
        """Columns of the virtual grid (to decode flat cell numbers)."""
        return NX

    def label_points_grid(self, t: Territories, x: FloatArray, y: FloatArray) -> tuple[IntArray, I32, I32]:
        """Labels, grid columns and rows (both -1 where the cell is crossed by a boundary); see territories."""
        n = len(x)
        out = np.empty(n, dtype=np.int64)
        if n == 0:
            return out, np.zeros(0, np.int32), np.zeros(0, np.int32)
        fx = np.floor((x + 180.0) / CELL_DEG)
        fy = np.floor((y + 90.0) / CELL_DEG)
        inside = (fx >= 0) & (fx < NX) & (fy >= 0) & (fy < NY)
        ix = np.where(inside, fx, -1).astype(np.int32)
        iy = np.where(inside, fy, -1).astype(np.int32)
        lab = np.full(n, BOUNDARY, dtype=np.int64)
        k = np.flatnonzero(inside)
        lab[k] = self._cells(t, ix[k].astype(np.int64), iy[k].astype(np.int64))
        out[:] = lab
        impure = lab == BOUNDARY
        ix[impure] = -1
        iy[impure] = -1
        need = np.flatnonzero(impure)
        if len(need):
            out[need] = _exact(t, self.level, x[need], y[need])
        return out, ix, iy

    def cells_pure(self, t: Territories, cells: IntArray) -> npt.NDArray[np.bool_]:
        """Whether flat cells (``iy * NX + ix``; -1 allowed) are crossed by no boundary."""
        ok = cells >= 0
        out = np.zeros(len(cells), dtype=bool)
        c = cells[ok]
        out[ok] = self._cells(t, c % NX, c // NX) != BOUNDARY
        return out

    def _cells(self, t: Territories, ix: IntArray, iy: IntArray) -> IntArray:
        tile = (iy >> _SHIFT) * TILES_X + (ix >> _SHIFT)
        self._ensure(t, tile)
        s = self.slot[tile].astype(np.int64)
        flat = (((s << _SHIFT) + (iy & _MASK)) << _SHIFT) + (ix & _MASK)
        out: IntArray = self.stack.ravel()[flat].astype(np.int64)
        return out

    # ----------------------------------------------------------------- loading

    def _ensure(self, t: Territories, tiles: IntArray) -> None:
        used = np.zeros(TILES_X * TILES_Y, dtype=bool)
        used[tiles] = True  # the distinct tiles, without sorting the points
        if not bool(np.any(used & (self.slot < 0))):
            return
        with self.lock:
            todo = np.flatnonzero(used & (self.slot < 0))
            if len(todo) == 0:
                return
            # int16 cells when the territory indices fit: half the memory of the loaded tiles
            dtype = np.int16 if len(t) < np.iinfo(np.int16).max else np.int32
            stack = np.empty((len(self.stack) + len(todo), CELLS_PER_TILE, CELLS_PER_TILE), dtype=dtype)
            stack[: len(self.stack)] = self.stack
            for j, k in enumerate(todo.tolist()):
                stack[len(self.stack) + j] = self._tile(t, int(k))
            slot = self.slot.copy()
            slot[todo] = np.arange(len(self.stack), len(stack), dtype=np.int32)
            # Readers index ``stack`` through ``slot``: publish the larger stack first.
            self.stack = stack
            self.slot = slot

    def _tile(self, t: Territories, tile: int) -> I32:
        kind = f"wtile-{self.level}-{tile:03d}"
        ids = t.id_index()
        z = _cache_read(kind, self.key)
        if z is not None and {"lut", "palette"} <= set(z):
            lut, palette = z["lut"], z["palette"]
            known = [ids.get(str(p), -1) for p in palette.tolist()]
            if (
                lut.dtype == np.int32
                and lut.shape == (CELLS_PER_TILE, CELLS_PER_TILE)
                and palette.ndim == 1
                and int(lut.min(initial=0)) >= BOUNDARY
                and int(lut.max(initial=-1)) < len(palette)
                and min(known, default=0) >= 0
            ):
                remap = np.asarray([BOUNDARY, INTL, *known], dtype=np.int32)
                out: I32 = remap[lut + 2]
                return out
            _log.warning("ignoring inconsistent %s cache; rebuilding it", kind)
        lut = _build_tile(t, self.level, tile)
        used = np.unique(lut[lut >= 0])
        local = np.full(len(t) + 2, 0, dtype=np.int32)
        local[used + 2] = np.arange(len(used), dtype=np.int32)
        local[BOUNDARY + 2], local[INTL + 2] = BOUNDARY, INTL
        _cache_write(kind, self.key, {"lut": local[lut + 2], "palette": np.asarray(t.ids[used], dtype=str)})
        return lut


def tiled_grid(t: Territories, level: str) -> TiledGrid | None:
    """The tiled grid of a world set's ``level`` (``None`` for other sets: they use one grid over their extent)."""
    key = t._cache.get("tile_key")
    if key is None:
        return None
    name = f"tiled:{level}"
    g = t._cache.get(name)
    if g is None:
        t.level_indices(level)  # validates the level
        h = hashlib.sha256(f"{key}/{level}/{CELLS_PER_TILE}/".encode())
        h.update(_code_digest().encode())
        g = TiledGrid(level=level, key=h.hexdigest())
        t._cache[name] = g
    out: TiledGrid = g
    return out


# --------------------------------------------------------------------------- building


@cache
def _code_digest() -> str:
    """Digest of the code that builds a tile (a change to it rebuilds the cached tiles)."""
    return hashlib.sha256("".join(inspect.getsource(f) for f in (_level, _exact, _build_tile)).encode()).hexdigest()


def _level(t: Territories, level: str) -> tuple[IntArray, FloatArray, Any]:
    """Indices, bounds and an STRtree of the territories of ``level`` (cached on ``t``)."""
    name = f"tiled-index:{level}"
    hit = t._cache.get(name)
    if hit is None:
        idx = t.level_indices(level)
        bounds = shapely.bounds(t.geoms[idx]).reshape(-1, 4) if len(idx) else np.zeros((0, 4))
        hit = (idx, bounds, shapely.STRtree(t.geoms[idx]))
        t._cache[name] = hit
    out: tuple[IntArray, FloatArray, Any] = hit
    return out


def _exact(t: Territories, level: str, x: FloatArray, y: FloatArray, only: IntArray | None = None) -> IntArray:
    """Exact labels: points sorted by longitude, each territory's box, then prepared ``contains_xy``."""
    idx, bounds, _ = _level(t, level)
    if only is not None:
        idx, bounds = idx[only], bounds[only]
    out = np.full(len(x), INTL, dtype=np.int64)
    if len(x) == 0:
        return out
    order = np.argsort(x, kind="stable")
    xs = x[order]
    lo = np.searchsorted(xs, bounds[:, 0], side="left")
    hi = np.searchsorted(xs, bounds[:, 2], side="right")
    for k in np.flatnonzero(hi > lo).tolist():
        m = order[lo[k] : hi[k]]
        m = m[(y[m] >= bounds[k, 1]) & (y[m] <= bounds[k, 3])]
        if len(m):
            out[m[shapely.contains_xy(t.geoms[idx[k]], x[m], y[m])]] = idx[k]
    return out


def _build_tile(t: Territories, level: str, tile: int) -> I32:
    """A tile's cells: territory index, INTL, or BOUNDARY (a boundary passes within one cell)."""
    n = CELLS_PER_TILE
    x0 = (tile % TILES_X) * TILE_DEG - 180.0
    y0 = (tile // TILES_X) * TILE_DEG - 90.0
    _, _, tree = _level(t, level)
    box = shapely.box(x0 - CELL_DEG, y0 - CELL_DEG, x0 + TILE_DEG + CELL_DEG, y0 + TILE_DEG + CELL_DEG)
    near = np.asarray(tree.query(box, predicate="intersects"), dtype=np.int64)
    idx, _, _ = _level(t, level)
    if len(near) == 0:
        return np.full((n, n), INTL, dtype=np.int32)
    clipped = shapely.clip_by_rect(
        shapely.boundary(t.geoms[idx[near]]),
        x0 - CELL_DEG,
        y0 - CELL_DEG,
        x0 + TILE_DEG + CELL_DEG,
        y0 + TILE_DEG + CELL_DEG,
    )
    coords = shapely.get_coordinates(shapely.segmentize(clipped, CELL_DEG * 0.5))
    cx = np.floor((coords[:, 0] - x0) / CELL_DEG).astype(np.int64)
    cy = np.floor((coords[:, 1] - y0) / CELL_DEG).astype(np.int64)
    bnd = np.zeros((n + 2, n + 2), dtype=bool)
    ok = (cx >= -1) & (cx <= n) & (cy >= -1) & (cy <= n)
    cx, cy = cx[ok] + 1, cy[ok] + 1
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            yy, xx = cy + dy, cx + dx
            k = (yy >= 0) & (yy < n + 2) & (xx >= 0) & (xx < n + 2)
            bnd[yy[k], xx[k]] = True
    free = ~bnd[1:-1, 1:-1].ravel()
    # Within a row, a run of boundary-free cells has one label: test one cell centre per run.
    col0 = np.zeros(n * n, dtype=bool)
    col0[::n] = True
    prev = np.concatenate([[False], free[:-1]])
    start = free & (~prev | col0)
    starts = np.flatnonzero(start)
    sx = np.asarray(x0 + (starts % n + 0.5) * CELL_DEG, dtype=np.float64)
    sy = np.asarray(y0 + (starts // n + 0.5) * CELL_DEG, dtype=np.float64)
    run_lab = _exact(t, level, sx, sy, near).astype(np.int32)
    run_id = np.cumsum(start, dtype=np.int32) - 1
    lut = np.full(n * n, BOUNDARY, dtype=np.int32)
    lut[free] = run_lab[run_id[free]]
    return lut.reshape(n, n)
