"""Territories: territorial sea, states, user GeoJSON and point labelling."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from shapely.geometry import box

from atalaya.core.errors import ValidationError
from atalaya.geo.kernels import WGS84
from atalaya.geo.territories import (
    INTL,
    Territories,
    depth_upper_bound,
    label_points,
    load_territories,
    territories_from_geometries,
)

NM = 1852.0


@pytest.fixture(scope="module")
def terr():  # type: ignore[no-untyped-def]  # pytest fixture
    return load_territories()


def _ids(t: Territories, lab: Any) -> list[str]:
    return [str(x) for x in t.id_of(np.asarray(lab))]


def test_ids_levels_owners(terr) -> None:  # type: ignore[no-untyped-def]
    assert len(terr.ids) == len(terr.names) == len(terr.levels) == len(terr.owners) == len(terr.geoms)
    for cid in ("MEX", "USA", "BLZ", "GTM", "CUB"):
        i = terr.index_of(cid)
        assert terr.levels[i] == "country"
        assert terr.owners[i] == cid
    for sid, owner in (("MEX-SON", "MEX"), ("USA-AZ", "USA"), ("USA-TX", "USA"), ("MEX-CMX", "MEX")):
        i = terr.index_of(sid)
        assert terr.levels[i] == "state"
        assert terr.owners[i] == owner
    assert len(terr.level_indices("state")) == 112
    assert set(terr.country_index()) >= {"MEX", "USA"}
    with pytest.raises(KeyError):
        terr.index_of("XXX")


def _offshore(lon: float, lat: float, az: float, dist_nm: float) -> tuple[float, float]:
    x, y, _ = WGS84.fwd(lon, lat, az, dist_nm * NM)
    return float(x), float(y)


def test_territorial_sea_mexico(terr) -> None:  # type: ignore[no-untyped-def]
    # Coast of Veracruz near (-96.1, 19.2); open Gulf to the east. Find the coast point along the parallel.
    mex = terr.geoms[terr.index_of("MEX")]
    land = shapely.get_parts(mex)  # includes sea; use the admin-0 coast instead:
    assert len(land) >= 1
    from atalaya.geo.naturalearth import load_layer

    mex_land = next(g for p, g in load_layer("admin0_region") if p["adm0_a3"] == "MEX")
    coast = shapely.intersection(mex_land.boundary, shapely.LineString([(-97.0, 19.5), (-95.0, 19.5)]))
    cx = max(p.x for p in shapely.get_parts(coast))
    lon10, lat10 = _offshore(cx, 19.5, 90.0, 10.0)
    lon14, lat14 = _offshore(cx, 19.5, 90.0, 14.0)
    lab = label_points(terr, [lon10, lon14, -90.0, cx - 0.05], [lat10, lat14, 25.0, 19.5])
    assert _ids(terr, lab) == ["MEX", "INTL", "INTL", "MEX"]


def test_land_points(terr) -> None:  # type: ignore[no-untyped-def]
    lon = np.array([-99.13, -95.37, -88.19, -90.51, -110.97, -111.89, -106.49])
    lat = np.array([19.43, 29.76, 17.50, 14.63, 29.07, 33.45, 31.69])
    assert _ids(terr, label_points(terr, lon, lat)) == ["MEX", "USA", "BLZ", "GTM", "MEX", "USA", "MEX"]
    st = label_points(terr, lon, lat, level="state")
    assert _ids(terr, st) == ["MEX-CMX", "USA-TX", "BLZ-BZ", "GTM-GU", "MEX-SON", "USA-AZ", "MEX-CHH"]


def test_seas_do_not_cover_foreign_land(terr) -> None:  # type: ignore[no-untyped-def]
    # Brownsville TX is within 12 nm of Mexican land but is US land.
    assert _ids(terr, label_points(terr, [-97.45], [25.96])) == ["USA"]
    # Countries at one level do not overlap (beyond slivers).
    idx = terr.level_indices("country")
    g = terr.geoms[idx]
    a, b = shapely.STRtree(g).query(g, predicate="intersects")
    for i, j in zip(a, b, strict=True):
        if i < j:
            assert shapely.intersection(g[i], g[j]).area < 1e-6


def test_grid_matches_exact(terr) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    x = rng.uniform(-120, -75, 200_000)
    y = rng.uniform(10, 35, 200_000)
    for level in ("country", "state"):
        fast = label_points(terr, x, y, level=level)
        exact = np.full(len(x), INTL)
        for i in terr.level_indices(level):
            exact[shapely.contains_xy(terr.geoms[i], x, y)] = i
        assert np.array_equal(fast, exact)


def test_empty_and_bad_input(terr) -> None:  # type: ignore[no-untyped-def]
    assert label_points(terr, np.array([]), np.array([])).shape == (0,)
    with pytest.raises(ValidationError):
        label_points(terr, [1.0, 2.0], [1.0])
    assert label_points(terr, [np.nan], [10.0]).tolist() == [INTL]


def test_user_territories(tmp_path: Path) -> None:
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"id": "ZONE-1", "name": "Zone 1", "level": "state", "owner": "MEX"},
                "geometry": shapely.geometry.mapping(box(-100.0, 20.0, -99.0, 21.0)),
            }
        ],
    }
    p = tmp_path / "zones.geojson"
    p.write_text(json.dumps(doc))
    t = load_territories(extra=p)
    i = t.index_of("ZONE-1")
    assert t.owners[i] == "MEX"
    assert t.levels[i] == "state"
    bad = tmp_path / "bad.geojson"
    doc["features"][0]["properties"] = {"id": "X"}  # type: ignore[index]  # constructed test document
    bad.write_text(json.dumps(doc))
    with pytest.raises(ValidationError, match="lacks properties"):
        load_territories(extra=bad)


def test_constructed() -> None:
    t = territories_from_geometries(ids=["A", "B"], geoms=[box(0, 0, 1, 1), box(1, 0, 2, 1)])
    lab = label_points(t, [0.5, 1.5, 2.5, 0.25], [0.5, 0.5, 0.5, 0.999])
    assert lab.tolist() == [0, 1, -1, 0]


def test_depth_upper_bound_on_a_box() -> None:
    # On the equator the nearest point of the meridian λ = 0 is on the equator: depth = a · Δλ.
    t = territories_from_geometries(ids=["A"], geoms=[box(0.0, -5.0, 4.0, 5.0)])
    x = np.linspace(0.01, 1.99, 50)
    ub = depth_upper_bound(t, x, np.zeros(50), np.zeros(50, dtype=np.int64))
    exact = 6378.137 * np.radians(x)
    assert np.all(ub >= exact)
    assert np.all(ub - exact < 5.0)
    outside = depth_upper_bound(t, [1.0, 9.0], [0.0, 0.0], [-1, 0])
    assert outside.tolist() == [np.inf, np.inf]


def test_depth_upper_bound_real_map(terr) -> None:  # type: ignore[no-untyped-def]
    from atalaya.sovereignty.accounting import _depth_exact

    rng = np.random.default_rng(3)
    x = rng.uniform(-118, -80, 3_000)
    y = rng.uniform(12, 34, 3_000)
    for level in ("country", "state"):
        lab = label_points(terr, x, y, level)
        k = lab >= 0
        ub = depth_upper_bound(terr, x[k], y[k], lab[k], level)
        d = _depth_exact(terr, level, x[k], y[k], lab[k], np.full(int(k.sum()), np.inf))
        # A bound: measured depths exceed it only by the measurement's own error (tens of metres).
        assert np.all(ub >= d - 0.05 - 1e-3 * d)
        # And a close one: within a few km for nearly all points.
        assert np.percentile(ub - d, 90) < 5.0


# --------------------------------------------------------------------------- on-disk cache

_PROBE = """
import hashlib, json, sys
import numpy as np
import shapely
from atalaya.geo import territories as tm

t = tm.load_territories()
rng = np.random.default_rng(9)
x, y = rng.uniform(-125, -60, 300_000), rng.uniform(-5, 49, 300_000)
wkb = [hashlib.sha256(b).hexdigest() for b in shapely.to_wkb(t.geoms)]
out = {"built": tm._bundled.cache_info().currsize, "wkb": wkb}
for level in ("country", "state"):
    lab = tm.label_points(t, x, y, level)
    ub = tm.depth_upper_bound(t, x, y, lab, level)
    out[level] = hashlib.sha256(lab.tobytes() + ub.tobytes()).hexdigest()
json.dump(out, sys.stdout)
"""


def _probe(cache: Path) -> dict[str, object]:
    """Load the bundled territories in a fresh process using ``cache``; digests of geometries, labels and bounds."""
    env = {**os.environ, "ATALAYA_CACHE_DIR": str(cache)}
    done = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True)
    out: dict[str, object] = json.loads(done.stdout)
    return out


def _files(cache: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(cache.glob("*.npz"))}


@pytest.fixture(scope="module")
def cold(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    cache = tmp_path_factory.mktemp("cache")
    return cache, _probe(cache)


def test_cache_is_reused_by_a_new_process_with_identical_results(cold, terr) -> None:  # type: ignore[no-untyped-def]
    cache, first = cold
    assert first["built"] == 1
    kinds = sorted(name.rsplit("-", 1)[0] for name in _files(cache))
    assert kinds == [
        "field-country-524288",
        "field-state-524288",
        "grid-country-16777216",
        "grid-state-16777216",
        "territories",
    ]
    before = _files(cache)
    second = _probe(cache)
    # Nothing was derived again: the countries were not built and no cache file was rewritten.
    assert second["built"] == 0
    assert _files(cache) == before
    assert second == {**first, "built": 0}
    # The same geometries as derived in this process.
    assert second["wkb"] == [hashlib.sha256(b).hexdigest() for b in shapely.to_wkb(terr.geoms)]


def test_damaged_cache_files_are_rebuilt(cold) -> None:  # type: ignore[no-untyped-def]
    cache, first = cold
    files = {name.rsplit("-", 1)[0]: cache / name for name in _files(cache)}
    grid = files["grid-state-16777216"]
    data = bytearray(grid.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the label array
    grid.write_bytes(bytes(data))
    files["field-country-524288"].write_bytes(files["field-country-524288"].read_bytes()[:1000])  # truncated
    files["territories"].write_bytes(b"not a cache file")
    before = _files(cache)
    again = _probe(cache)
    assert again["built"] == 1
    assert again == first
    after = _files(cache)
    for kind in ("grid-state-16777216", "field-country-524288", "territories"):
        assert after[files[kind].name] != before[files[kind].name]
    assert after[files["grid-country-16777216"].name] == before[files["grid-country-16777216"].name]


def test_extra_territories_change_the_cache_key(tmp_path: Path) -> None:
    from atalaya.geo.territories import _source_key

    p = tmp_path / "zones.geojson"
    feature = {
        "type": "Feature",
        "properties": {"id": "ZONE-1", "name": "Zone 1", "level": "state", "owner": "MEX"},
        "geometry": shapely.geometry.mapping(box(-100.0, 20.0, -99.0, 21.0)),
    }
    p.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    bundled, one = _source_key(None), _source_key(str(p))
    feature["geometry"] = shapely.geometry.mapping(box(-100.0, 20.0, -99.0, 21.5))
    p.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    two = _source_key(str(p))
    assert len({bundled, one, two}) == 3
    assert _source_key(str(tmp_path / "missing.geojson")) is None  # not cached; loading reports the missing file


def test_depth_cell_bound_covers_the_point_bound(terr) -> None:  # type: ignore[no-untyped-def]
    from atalaya.geo.territories import depth_cell_bound

    rng = np.random.default_rng(4)
    x = rng.uniform(-125, -59, 200_000)
    y = rng.uniform(-5, 49, 200_000)
    for level in ("country", "state"):
        lab = label_points(terr, x, y, level)
        ub = depth_upper_bound(terr, x, y, lab, level)
        cub = depth_cell_bound(terr, x, y, lab, level)
        fin = np.isfinite(ub)
        assert np.array_equal(fin, np.isfinite(cub))
        assert np.all(cub[fin] >= ub[fin])
        assert np.all(cub[fin] - ub[fin] < 25.0)  # about a cell's diagonal (~0.09°) at most


def test_cache_keeps_the_most_recent_files_of_a_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from atalaya.geo.territories import CACHE_KEEP, _cache_read, _cache_write

    monkeypatch.setenv("ATALAYA_CACHE_DIR", str(tmp_path))
    keys = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(CACHE_KEEP + 3)]
    for i, key in enumerate(keys):
        _cache_write("probe", key, {"a": np.arange(3) + i})
        os.utime(next(tmp_path.glob(f"probe-{key[:32]}.npz")), (1e9 + i, 1e9 + i))
    _cache_write("other", keys[0], {"a": np.arange(2)})
    assert len(list(tmp_path.glob("probe-*.npz"))) == CACHE_KEEP
    assert _cache_read("probe", keys[0]) is None  # the oldest were removed
    got = _cache_read("probe", keys[-1])
    assert got is not None
    assert got["a"].tolist() == [len(keys) - 1, len(keys), len(keys) + 1]
    assert _cache_read("probe", keys[-2][:-1] + "f") is None  # same file name, another key
    assert list(tmp_path.glob("other-*.npz"))
    assert not list(tmp_path.glob("*.tmp"))


def test_cached_arrays_builds_once_per_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from atalaya.geo.territories import cached_arrays

    monkeypatch.setenv("ATALAYA_CACHE_DIR", str(tmp_path))
    calls: list[int] = []

    def build() -> dict[str, np.ndarray]:
        calls.append(1)
        return {"xy": np.arange(6.0).reshape(3, 2)}

    dep = tmp_path / "builder.py"
    dep.write_text("v1")
    a = cached_arrays("thing", build, depends_on=(str(dep),))
    b = cached_arrays("thing", build, depends_on=(str(dep),))
    assert len(calls) == 1 and np.array_equal(a["xy"], b["xy"])
    dep.write_text("v2")  # the code that builds it changed: rebuilt
    cached_arrays("thing", build, depends_on=(str(dep),))
    assert len(calls) == 2
