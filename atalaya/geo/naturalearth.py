"""Loader for the Natural Earth layers bundled with the package (public domain).

See ``atalaya/geo/data/SOURCES.md`` for provenance and attribution.

>>> feats = load_layer("admin0_region")
>>> any(p["adm0_a3"] == "MEX" for p, _ in feats)
True
"""

from __future__ import annotations

import gzip
import json
from functools import cache
from importlib import resources
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

LAYERS: dict[str, str] = {
    "admin0_region": "ne_10m_admin_0_countries_mexico_region.geojson.gz",
    "admin0_world": "ne_10m_admin_0_countries_world.geojson.gz",
    "admin1": "ne_10m_admin_1_mex_usa_gtm_blz.geojson.gz",
    "admin1_bra_can_aus": "ne_50m_admin_1_bra_can_aus.geojson.gz",
    "boundary_lines_land": "ne_10m_admin_0_boundary_lines_land.geojson.gz",
    "airports": "ne_10m_airports.geojson.gz",
    "ports": "ne_10m_ports.geojson.gz",
}
"""Bundled layers by short name → file in ``atalaya/geo/data``."""

ATTRIBUTION = "Made with Natural Earth. Free vector and raster map data @ naturalearthdata.com."


def layer_bytes(name: str) -> bytes:
    """The decompressed GeoJSON text of a bundled layer."""
    try:
        fname = LAYERS[name]
    except KeyError:
        raise KeyError(f"unknown Natural Earth layer {name!r}; known: {', '.join(LAYERS)}") from None
    data = resources.files("atalaya.geo").joinpath("data", fname).read_bytes()
    return gzip.decompress(data)


@cache
def load_layer(name: str) -> tuple[tuple[dict[str, Any], BaseGeometry], ...]:
    """Features of a bundled layer as ``(properties, shapely geometry)`` pairs (cached, read-only)."""
    doc = json.loads(layer_bytes(name))
    out = []
    for f in doc["features"]:
        geom = shapely.from_geojson(json.dumps(f["geometry"]))
        out.append((dict(f.get("properties") or {}), geom))
    return tuple(out)
