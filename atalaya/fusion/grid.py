"""Evidence accumulation on a fixed multi-level metric grid (the incremental state of the sites analytic).

Detections are binned, never clustered: each one adds its weight to one row
keyed by *(level, cell, day, channel)*. Rows of a new batch merge into the
saved state by a group-by (sum, min, max), so new days update the picture
without touching old detections, and the state grows with the occupied area
and the days, not with the number of detections.

The grid is Web Mercator (EPSG:3857) cut into squares of ``CELL_M · 4**level``
projected metres. Mercator is conformal, so a cell is a square on the ground
too, of side ``CELL_M · cos(lat)`` (72 m at 25° N); rows and columns are
aligned, so neighbours are ``key ± 1`` and ``key ± ROW``. The level follows the
detection's position uncertainty: sharp detections (EO/IR, < ~150 m) land in
level-0 cells, SIGINT ellipses of a kilometre in coarser ones.

Each row keeps the weighted count (``w``), the precision-weighted position sums
(``q``, ``qx``, ``qy``: a sharp centroid), the number of detections, first/last
time and one sample observation id (the heaviest) for provenance.

>>> import numpy as np
>>> st = accumulate(
...     lon=np.array([-107.0, -107.0001]), lat=np.array([25.0, 25.0]),
...     time_us=np.array([0, 3_600_000_000]), channel=np.array([1, 1], dtype=np.int8),
...     weight=np.array([1.0, 0.5]), sigma_m=np.array([30.0, 30.0]),
... )
>>> st.n_rows, float(st.w.sum()), int(st.n.sum())
(1, 1.5, 2)
>>> merge(st, st).n_rows, float(merge(st, st).w.sum())
(1, 3.0)
>>> empty_state().n_rows
0
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from atalaya.core.errors import StoreError

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

R_MERC = 6_378_137.0
"""Web Mercator sphere radius, metres."""
CELL_M = 80.0
"""Level-0 cell side in projected metres (``CELL_M · cos(lat)`` on the ground)."""
LEVELS = 4
"""Number of levels (cell sides 80, 320, 1280 and 5120 projected metres)."""
LEVEL_SIGMA_M = (150.0, 600.0, 2_500.0)
"""Upper 1-sigma bound (ground metres) of levels 0, 1 and 2; anything larger goes to the last level."""
_OFF = 1 << 18
ROW = 1 << 19
"""Key step between vertically adjacent cells (``key + ROW`` is the cell to the north)."""
_DAY_BITS = 16
_CH_BITS = 5
_LEVEL_BITS = 2
_MAX_LAT = 85.0
_US_PER_DAY = 86_400_000_000
SAMPLE_TYPE = pa.binary(16)


@dataclass(frozen=True, kw_only=True)
class GridState:
    """Accumulated evidence, one row per (level, cell, day, channel), sorted by that key."""

    level: npt.NDArray[np.int8]
    """Grid level of the row (0 = finest)."""
    cell: I64
    """Cell key at that level (see :func:`cell_keys`)."""
    day: npt.NDArray[np.int32]
    """UTC day number since 1970-01-01."""
    channel: npt.NDArray[np.int8]
    """Evidence channel (defined by the caller, e.g. :class:`atalaya.fusion.sites.Channel`)."""
    n: npt.NDArray[np.int32]
    """Number of detections."""
    w: F64
    """Sum of detection weights (evidence mass)."""
    q: F64
    """Sum of precision weights ``weight / sigma²`` (1/m²)."""
    qx: F64
    """Sum of ``q · x`` (Mercator x, metres)."""
    qy: F64
    """Sum of ``q · y`` (Mercator y, metres)."""
    t_first: I64
    """Earliest detection time, µs since the epoch."""
    t_last: I64
    """Latest detection time, µs since the epoch."""
    sample: list[bytes | None]
    """Id of the heaviest detection of the row (16 bytes) or None."""

    @property
    def n_rows(self) -> int:
        return int(self.cell.size)

    def take(self, idx: npt.NDArray[np.intp] | npt.NDArray[np.bool_]) -> GridState:
        """The rows selected by an index or mask."""
        pos = np.flatnonzero(idx) if idx.dtype == np.bool_ else idx
        return GridState(
            level=self.level[pos],
            cell=self.cell[pos],
            day=self.day[pos],
            channel=self.channel[pos],
            n=self.n[pos],
            w=self.w[pos],
            q=self.q[pos],
            qx=self.qx[pos],
            qy=self.qy[pos],
            t_first=self.t_first[pos],
            t_last=self.t_last[pos],
            sample=[self.sample[i] for i in pos.tolist()],
        )


def empty_state() -> GridState:
    """A state without rows."""
    i8 = np.zeros(0, dtype=np.int8)
    f = np.zeros(0)
    i = np.zeros(0, dtype=np.int64)
    return GridState(
        level=i8, cell=i, day=np.zeros(0, dtype=np.int32), channel=i8.copy(), n=np.zeros(0, dtype=np.int32),
        w=f, q=f.copy(), qx=f.copy(), qy=f.copy(), t_first=i, t_last=i.copy(), sample=[],
    )  # fmt: skip


# -- projection and keys ----------------------------------------------------------------------------


def mercator(lon: Any, lat: Any) -> tuple[F64, F64]:
    """Web Mercator x, y (metres) of WGS84 positions; latitudes are clipped to ±85°.

    >>> x, y = mercator(np.array([0.0]), np.array([0.0]))
    >>> bool(abs(x[0]) < 1e-6 and abs(y[0]) < 1e-6)
    True
    >>> mercator(np.array([]), np.array([]))[0].shape
    (0,)
    """
    lam = np.radians(np.asarray(lon, dtype=np.float64))
    phi = np.radians(np.clip(np.asarray(lat, dtype=np.float64), -_MAX_LAT, _MAX_LAT))
    return R_MERC * lam, R_MERC * np.log(np.tan(np.pi / 4 + phi / 2))


def inverse_mercator(x: Any, y: Any) -> tuple[F64, F64]:
    """WGS84 lon, lat of Web Mercator x, y.

    >>> lon, lat = inverse_mercator(*mercator(np.array([-107.5]), np.array([25.25])))
    >>> round(float(lon[0]), 9), round(float(lat[0]), 9)
    (-107.5, 25.25)
    """
    xx = np.asarray(x, dtype=np.float64)
    yy = np.asarray(y, dtype=np.float64)
    return np.degrees(xx / R_MERC), np.degrees(2 * np.arctan(np.exp(yy / R_MERC)) - np.pi / 2)


def ground_scale(y: Any) -> F64:
    """Ground metres per projected metre at Mercator ``y`` (``cos(lat)``).

    >>> float(ground_scale(np.array([0.0]))[0])
    1.0
    """
    return 1.0 / np.cosh(np.asarray(y, dtype=np.float64) / R_MERC)


def cell_size(level: Any) -> F64:
    """Cell side in projected metres at ``level``.

    >>> cell_size(np.array([0, 1])).tolist()
    [80.0, 320.0]
    """
    return CELL_M * np.power(4.0, np.asarray(level, dtype=np.float64))


def cell_keys(x: Any, y: Any, level: Any) -> I64:
    """Cell key of Mercator points at a level (``row · ROW + column``, both offset to be positive).

    >>> k = cell_keys(np.array([0.0, 80.0, 0.0]), np.array([0.0, 0.0, 80.0]), 0)
    >>> (k[1] - k[0]).item(), (k[2] - k[0]).item()
    (1, 524288)
    """
    s = cell_size(level)
    ix = np.floor(np.asarray(x, dtype=np.float64) / s).astype(np.int64) + _OFF
    iy = np.floor(np.asarray(y, dtype=np.float64) / s).astype(np.int64) + _OFF
    return iy * ROW + ix


def cell_center(key: Any, level: Any) -> tuple[F64, F64]:
    """Mercator x, y of cell centres.

    >>> cell_center(cell_keys(np.array([10.0]), np.array([10.0]), 0), 0)
    (array([40.]), array([40.]))
    """
    k = np.asarray(key, dtype=np.int64)
    s = cell_size(level)
    ix = (k % ROW) - _OFF
    iy = (k // ROW) - _OFF
    return (ix + 0.5) * s, (iy + 0.5) * s


def level_for_sigma(sigma_m: Any) -> npt.NDArray[np.int8]:
    """Grid level for 1-sigma position errors (ground metres).

    >>> level_for_sigma(np.array([20.0, 300.0, 900.0, 8000.0])).tolist()
    [0, 1, 2, 3]
    """
    s = np.asarray(sigma_m, dtype=np.float64)
    return np.searchsorted(np.asarray(LEVEL_SIGMA_M), s, side="left").astype(np.int8)


# -- accumulation -----------------------------------------------------------------------------------


def _group_key(level: Any, cell: Any, day: Any, channel: Any) -> I64:
    d = np.asarray(day, dtype=np.int64)
    if d.size and (d.min() < 0 or d.max() >= 1 << _DAY_BITS):
        raise StoreError(
            "detection day outside 1970-2149", hint="check the time column (microseconds since the epoch, UTC)"
        )
    key: I64 = np.asarray(cell, dtype=np.int64) << (_DAY_BITS + _CH_BITS + _LEVEL_BITS)
    key |= d << (_CH_BITS + _LEVEL_BITS)
    key |= np.asarray(channel, dtype=np.int64) << _LEVEL_BITS
    key |= np.asarray(level, dtype=np.int64)
    return key


def _reduce(cols: dict[str, list[npt.NDArray[Any]]], sample: list[bytes | None], sample_w: F64 | None) -> GridState:
    """Group rows by their key: sums, min/max times, sample of the heaviest row.

    ``cols`` holds each row column (``level, cell, day, channel, n, w, q, qx,
    qy, t_first, t_last``) as a list of parts to concatenate. Columns are
    consumed one at a time (popped, concatenated, reduced, released), so a
    large reduction holds about one input column beside its outputs.
    ``sample_w`` (default ``q / n``) chooses the row whose sample a group keeps.
    """

    def pop(f: str) -> npt.NDArray[Any]:
        parts = cols.pop(f)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    level, cell, day, channel = pop("level"), pop("cell"), pop("day"), pop("channel")
    gkey = _group_key(level, cell, day, channel)
    if gkey.size == 0:
        return empty_state()
    # a stable sort keeps rows of equal keys in input order (concatenated sorted runs sort fast)
    order = np.argsort(gkey, kind="stable")
    k = gkey[order]
    del gkey
    brk = np.empty(k.size, dtype=bool)
    brk[0] = True
    np.not_equal(k[1:], k[:-1], out=brk[1:])
    del k
    start = np.flatnonzero(brk)
    del brk
    m = start.size
    first = order[start]
    out: dict[str, Any] = {"level": level[first], "cell": cell[first], "day": day[first], "channel": channel[first]}
    del level, cell, day, channel
    n = pop("n")
    if sample and sample.count(None) < len(sample):
        # the first row of each group holding the group's largest sample weight carries the sample
        q = pop("q")
        cols["q"] = [q]
        sw = (q / np.maximum(n, 1) if sample_w is None else sample_w)[order]
        size = np.diff(np.r_[start, order.size])
        is_max = sw == np.repeat(np.maximum.reduceat(sw, start), size)
        del sw
        idx = np.flatnonzero(is_max)
        grp = np.repeat(np.arange(m), size)[idx]
        take_sample = order[idx[np.r_[True, grp[1:] != grp[:-1]]]]
        samples = [sample[i] for i in take_sample.tolist()]
    else:
        samples = [None] * m
    out["n"] = np.add.reduceat(n[order], start).astype(np.int32)
    del n
    for f in ("w", "q", "qx", "qy"):
        out[f] = np.add.reduceat(pop(f)[order], start).astype(np.float64)
    out["t_first"] = np.minimum.reduceat(pop("t_first")[order], start)
    out["t_last"] = np.maximum.reduceat(pop("t_last")[order], start)
    return GridState(sample=samples, **out)


def accumulate(
    *,
    lon: Any,
    lat: Any,
    time_us: Any,
    channel: Any,
    weight: Any,
    sigma_m: Any,
    obs_id: list[bytes | None] | None = None,
) -> GridState:
    """Bin detections into grid rows (one per level, cell, day and channel).

    ``weight`` is the evidence a detection brings (e.g. its confidence);
    ``sigma_m`` its 1-sigma position error in ground metres, which chooses the
    level and the precision weight of its position. ``obs_id`` (16-byte ids)
    feeds the sample kept per row. Rows with a non-finite position or a
    non-positive weight are dropped.

    >>> empty = np.zeros(0)
    >>> accumulate(lon=empty, lat=empty, time_us=empty, channel=empty, weight=empty, sigma_m=empty).n_rows
    0
    """
    lon_a = np.asarray(lon, dtype=np.float64)
    lat_a = np.asarray(lat, dtype=np.float64)
    t = np.asarray(time_us, dtype=np.int64)
    ch = np.asarray(channel, dtype=np.int8)
    wt = np.asarray(weight, dtype=np.float64)
    sg = np.maximum(np.asarray(sigma_m, dtype=np.float64), 1.0)
    ok = np.isfinite(lon_a) & np.isfinite(lat_a) & (wt > 0) & np.isfinite(wt) & np.isfinite(sg)
    if not ok.all():
        keep = np.flatnonzero(ok)
        lon_a, lat_a, t, ch, wt, sg = lon_a[keep], lat_a[keep], t[keep], ch[keep], wt[keep], sg[keep]
        if obs_id is not None:
            obs_id = [obs_id[i] for i in keep.tolist()]
    x, y = mercator(lon_a, lat_a)
    lv = level_for_sigma(sg)
    cell = cell_keys(x, y, lv)
    day = (t // _US_PER_DAY).astype(np.int32)
    # precision in projected units: a ground sigma is sigma / cos(lat) projected metres
    sp = sg / ground_scale(y)
    q = wt / (sp * sp)
    cols: dict[str, list[npt.NDArray[Any]]] = {
        "level": [lv], "cell": [cell], "day": [day], "channel": [ch], "n": [np.ones(t.size, dtype=np.int32)],
        "w": [wt], "q": [q], "qx": [q * x], "qy": [q * y], "t_first": [t], "t_last": [t],
    }  # fmt: skip
    del lv, cell, day, ch, wt, x, y
    return _reduce(cols, list(obs_id) if obs_id is not None else [], q)


def merge(a: GridState, b: GridState) -> GridState:
    """Merge two states (the saved one and a new batch): rows with the same key are combined.

    >>> merge(empty_state(), empty_state()).n_rows
    0
    """
    return merge_many([a, b])


_FIELDS = ("level", "cell", "day", "channel", "n", "w", "q", "qx", "qy", "t_first", "t_last")


def merge_many(states: list[GridState]) -> GridState:
    """Merge any number of states in one reduction (rows with the same key are combined).

    The list is emptied as its states are consumed, so that the caller's
    references are the only ones left to keep them alive.

    >>> st = accumulate(lon=[-107.0], lat=[25.0], time_us=[0], channel=[1], weight=[1.0], sigma_m=[30.0])
    >>> merge_many([st, st, st]).n_rows, float(merge_many([st, st]).w.sum()), merge_many([]).n_rows
    (1, 2.0, 0)
    """
    parts = [s for s in states if s.n_rows]
    states.clear()
    if not parts:
        return empty_state()
    if len(parts) == 1:
        return parts[0]
    # the parts' columns are handed over as lists, so each is released once reduced
    cols = {f: [getattr(p, f) for p in parts] for f in _FIELDS}
    with_ids = any(p.sample.count(None) < len(p.sample) for p in parts)
    samples = [x for p in parts for x in p.sample] if with_ids else []
    del parts
    # the heaviest row keeps its sample: its mean precision (q / n) is the weight
    return _reduce(cols, samples, None)


# -- persistence ------------------------------------------------------------------------------------

_STATE_SCHEMA = pa.schema(
    [
        ("level", pa.int8()),
        ("cell", pa.int64()),
        ("day", pa.int32()),
        ("channel", pa.int8()),
        ("n", pa.int32()),
        ("w", pa.float64()),
        ("q", pa.float64()),
        ("qx", pa.float64()),
        ("qy", pa.float64()),
        ("t_first", pa.int64()),
        ("t_last", pa.int64()),
        ("sample", SAMPLE_TYPE),
    ]
)


def state_table(state: GridState) -> pa.Table:
    """The state as an Arrow table."""
    cols: dict[str, Any] = {f: getattr(state, f) for f in _STATE_SCHEMA.names if f != "sample"}
    cols["sample"] = pa.array(state.sample, type=SAMPLE_TYPE)
    return pa.table(cols, schema=_STATE_SCHEMA)


def state_from_table(table: pa.Table) -> GridState:
    """A state from its Arrow table (as written by :func:`write_state`)."""
    missing = [n for n in _STATE_SCHEMA.names if n not in table.column_names]
    if missing:
        raise StoreError(
            f"sites state lacks columns {missing}", hint="delete the state file and re-run the analysis from scratch"
        )

    def col(name: str, dtype: Any) -> Any:
        return table.column(name).to_numpy(zero_copy_only=False).astype(dtype, copy=False)

    return GridState(
        level=col("level", np.int8), cell=col("cell", np.int64), day=col("day", np.int32),
        channel=col("channel", np.int8), n=col("n", np.int32), w=col("w", np.float64), q=col("q", np.float64),
        qx=col("qx", np.float64), qy=col("qy", np.float64), t_first=col("t_first", np.int64),
        t_last=col("t_last", np.int64), sample=table.column("sample").to_pylist(),
    )  # fmt: skip


def write_state(path: Path, state: GridState, metadata: dict[str, str] | None = None) -> None:
    """Write the state atomically (temp file, fsync, rename) with string metadata in the Parquet footer."""
    table = state_table(state)
    if metadata:
        table = table.replace_schema_metadata({k.encode(): v.encode() for k, v in metadata.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    pq.write_table(table, tmp, compression="zstd")
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_state(path: Path) -> tuple[GridState, dict[str, str]]:
    """Read a state and its metadata; a missing file is an empty state."""
    if not path.exists():
        return empty_state(), {}
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as e:
        raise StoreError(
            f"cannot read sites state {path}: {e}",
            hint="delete it and re-run the analysis (it is rebuilt from the lake)",
        ) from e
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    return state_from_table(table), meta
