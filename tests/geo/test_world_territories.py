"""World territories: every country with its territorial sea, loaded per tile, per-tile grids, on-disk cache."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import shapely

from atalaya.geo import world
from atalaya.geo.kernels import WGS84
from atalaya.geo.territories import Territories, cache_dir, depth_upper_bound, label_points
from atalaya.geo.tiles import CELL_DEG

# Western Europe, 0°–10° E and 40°–60° N: France, the Benelux, western Germany, the North Sea.
EUROPE_TILES = (13 * 36 + 18, 14 * 36 + 18)


@pytest.fixture(scope="module")
def eu() -> Territories:
    return world.load_world(tiles=EUROPE_TILES)


def _label(t: Territories, pts: list[tuple[float, float]], level: str = "country") -> list[str]:
    x, y = np.array(pts, dtype=np.float64).T
    return [str(i) for i in t.id_of(label_points(t, x, y, level))]


def test_european_cities_and_the_land_border(eu: Territories) -> None:
    # Paris, Cologne, Brussels, Amsterdam, London; Strasbourg and Kehl on either side of the Rhine.
    pts = [(2.3522, 48.8566), (6.9603, 50.9375), (4.3517, 50.8503), (4.9041, 52.3676), (-0.1276, 51.5072)]
    assert _label(eu, pts[:4]) == ["FRA", "DEU", "BEL", "NLD"]
    assert _label(eu, [(7.7507, 48.5818), (7.8150, 48.5750)]) == ["FRA", "DEU"]
    # London lies west of 0°, outside the tiles loaded for these points
    assert bool(
        world.outside_loaded_tiles(eu, [pts[4][0], pts[0][0]], [pts[4][1], pts[0][1]]).tolist() == [True, False]
    )


def test_france_is_keyed_by_adm0_a3_not_its_iso_code(eu: Territories) -> None:
    data = resources.files("atalaya.geo").joinpath("data", "ne_10m_admin_0_countries_world.geojson.gz").read_bytes()
    feats = json.loads(gzip.decompress(data))["features"]
    fra = [f["properties"] for f in feats if f["properties"]["adm0_a3"] == "FRA"]
    assert len(fra) == 1 and fra[0]["iso_a3"] == "-99"  # Natural Earth's quirk
    i = eu.index_of("FRA")
    assert eu.levels[i] == "country" and eu.owners[i] == "FRA" and eu.names[i] == "France"
    assert len({str(x) for x in eu.ids}) == len(eu)


def _west_coast(t: Territories, code: str, lat: float) -> float:
    """The westernmost land longitude of ``code`` at ``lat`` (its land: the bundled layer)."""
    land = world._land().land[world._land().codes.index(code)]
    line = shapely.LineString([(-10.0, lat), (10.0, lat)])
    return float(shapely.intersection(land, line).bounds[0])


def test_territorial_sea_off_the_dutch_coast(eu: Territories) -> None:
    lat = 52.37
    x0 = _west_coast(eu, "NLD", lat)
    pts = []
    for km in (10.0, 20.0, 30.0, 40.0):
        x, y, _ = WGS84.fwd(x0, lat, 270.0, km * 1000.0)
        pts.append((float(x), float(y)))
    # 12 nm = 22.2 km from the nearest coast: inside at 10 and 20 km, outside at 30 and 40 km (the open North Sea)
    assert _label(eu, pts) == ["NLD", "NLD", "INTL", "INTL"]


def test_neighbours_seas_neither_overlap_nor_cover_foreign_land(eu: Territories) -> None:
    g = {c: eu.geoms[eu.index_of(c)] for c in ("FRA", "BEL", "NLD", "DEU", "GBR")}
    for a, b in (("FRA", "BEL"), ("BEL", "NLD"), ("NLD", "DEU"), ("FRA", "GBR")):
        assert shapely.intersection(g[a], g[b]).area < 1e-7, (a, b)
    # The overlap of the French and British seas in the Strait of Dover is split, not left out: mid-strait
    # points are one or the other, never international.
    x = np.linspace(1.35, 1.75, 9)
    y = np.linspace(51.0, 50.93, 9)
    got = set(_label(eu, list(zip(x.tolist(), y.tolist(), strict=True))))
    assert got <= {"FRA", "GBR"} and got == {"FRA", "GBR"}


def test_tile_grid_labels_equal_exact_point_in_polygon(eu: Territories) -> None:
    rng = np.random.default_rng(5)
    n = 60_000
    # Half spread over the tiles, half near coasts and borders (where the grid defers to exact tests)
    x = np.r_[rng.uniform(0.0, 10.0, n // 2), rng.uniform(1.0, 8.0, n // 2)]
    y = np.r_[rng.uniform(40.0, 60.0, n // 2), rng.uniform(48.5, 53.5, n // 2)]
    for level in ("country", "state"):
        got = label_points(eu, x, y, level)
        want = np.full(len(x), -1, dtype=np.int64)
        for i in eu.level_indices(level).tolist():
            want[shapely.contains_xy(eu.geoms[i], x, y)] = i
        assert np.array_equal(got, want), level
    assert 0.3 < float(np.mean(label_points(eu, x, y) >= 0)) < 0.9  # land and sea both sampled


def test_depth_bounds_hold_for_the_world_set(eu: Territories) -> None:
    rng = np.random.default_rng(2)
    x, y = rng.uniform(0.0, 10.0, 3000), rng.uniform(40.0, 60.0, 3000)
    lab = label_points(eu, x, y)
    ub = depth_upper_bound(eu, x, y, lab)
    inside = np.flatnonzero(lab >= 0)
    bnd = shapely.boundary(eu.geoms[lab[inside]])
    # distance in degrees ≤ km / (km per degree of longitude at the point's latitude) is implied by any true bound
    deg = shapely.distance(bnd, shapely.points(x[inside], y[inside]))
    lower_km = deg * 111.32 * np.cos(np.radians(np.abs(y[inside]) + 1.0)) * 0.98
    assert np.all(ub[inside] >= lower_km)
    assert np.all(np.isinf(ub[lab < 0]))


def test_bundled_states_of_brazil_canada_australia() -> None:
    pts = [(-47.93, -15.78), (-75.70, 45.42), (151.21, -33.87), (-99.13, 19.43)]
    t = world.load_world(lon=[p[0] for p in pts], lat=[p[1] for p in pts])
    assert _label(t, pts) == ["BRA", "CAN", "AUS", "MEX"]
    assert _label(t, pts, "state") == ["BRA-DF", "CAN-ON", "AUS-NSW", "MEX-CMX"]


def test_a_users_admin1_file_adds_states(tmp_path: Path, eu: Territories) -> None:
    idf = shapely.box(1.4, 48.1, 3.6, 49.3)  # a stand-in for Île-de-France
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"adm0_a3": "FRA", "iso_3166_2": "FR-IDF", "name": "Île-de-France"},
                "geometry": json.loads(shapely.to_geojson(idf)),
            }
        ],
    }
    p = tmp_path / "admin1.geojson"
    p.write_text(json.dumps(doc), encoding="utf-8")
    t = world.load_world(tiles=EUROPE_TILES, admin1=p)
    assert _label(t, [(2.3522, 48.8566), (6.9603, 50.9375)], "state") == ["FRA-IDF", "INTL"]
    assert _label(t, [(2.3522, 48.8566)]) == ["FRA"]
    assert len(t) == len(eu) + 1


# --------------------------------------------------------------------------- on-disk cache

_PROBE = """
import hashlib, json, sys
import numpy as np
from atalaya.geo import world
from atalaya.geo.territories import label_points, depth_upper_bound

t = world.load_world(tiles=TILES)
rng = np.random.default_rng(4)
x, y = rng.uniform(0.0, 10.0, 200_000), rng.uniform(40.0, 60.0, 200_000)
out = {"derived": world._land.cache_info().currsize, "ids": [str(i) for i in t.ids]}
for level in ("country", "state"):
    lab = label_points(t, x, y, level)
    ub = depth_upper_bound(t, x, y, lab, level)
    out[level] = hashlib.sha256(lab.tobytes() + ub.tobytes()).hexdigest()
json.dump(out, sys.stdout)
""".replace("TILES", repr(EUROPE_TILES))


def _probe(cache: Path) -> dict[str, object]:
    env = {**os.environ, "ATALAYA_CACHE_DIR": str(cache)}
    done = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True)
    out: dict[str, object] = json.loads(done.stdout)
    return out


def _files(cache: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(cache.glob("*.npz"))}


@pytest.fixture(scope="module")
def seeded(eu: Territories, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder holding only the derived countries (copied from this process's cache): no grid, no set."""
    cache = tmp_path_factory.mktemp("world-cache")
    for p in cache_dir().glob("*.npz"):
        if p.name.startswith(("wcountry-", "world-index-", "wstates-")):
            shutil.copy2(p, cache / p.name)
    return cache


def test_a_new_process_reuses_the_cache_with_identical_labels(seeded: Path, eu: Territories) -> None:
    first = _probe(seeded)
    assert first["derived"] == 0  # every country came from the cache: the world layer was not even parsed
    assert first["ids"] == [str(i) for i in eu.ids]
    kinds = {n.rsplit("-", 1)[0] for n in _files(seeded)}
    assert {
        "wterritories",
        "field-country-524288",
        "field-state-524288",
        "wtile-country-486",
        "wtile-state-522",
    } <= kinds
    before = _files(seeded)
    second = _probe(seeded)
    assert second == first
    assert _files(seeded) == before  # nothing rebuilt, nothing rewritten


def test_damaged_cache_files_are_rebuilt(seeded: Path) -> None:
    first = _probe(seeded)
    files = _files(seeded)
    tile = next(seeded / n for n in files if n.startswith("wtile-country-522-"))
    data = bytearray(tile.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tile.write_bytes(bytes(data))
    nld = next(seeded / n for n in files if n.startswith("wcountry-NLD-"))
    nld.write_bytes(nld.read_bytes()[:200])
    sets = [seeded / n for n in files if n.startswith("wterritories-")]
    for p in sets:
        p.write_bytes(b"not a cache file")
    again = _probe(seeded)
    assert again["derived"] == 1  # NLD was derived again (the layer parsed once)
    assert {k: v for k, v in again.items() if k != "derived"} == {k: v for k, v in first.items() if k != "derived"}
    after = _files(seeded)
    for p in (tile, nld, *sets):
        assert after[p.name] != files[p.name]
    assert hashlib.sha256(nld.read_bytes()).hexdigest() != hashlib.sha256(b"").hexdigest()


def test_tiles_and_cells_are_consistent(eu: Territories) -> None:
    assert world.tiles_of([2.35, 2.36, 4.9], [48.86, 48.87, 52.37]).tolist() == [13 * 36 + 18, 14 * 36 + 18]
    assert CELL_DEG * 256 == 10.0
