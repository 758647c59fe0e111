"""Write the world admin-0 and extra admin-1 layers bundled in ``atalaya/geo/data`` from the shared sources.

    .venv/bin/python scripts/make_world_layers.py /work/shared/data

Coordinates are rounded to 1e-5° (≈ 1.1 m, well under the 1:10m data's own accuracy of some 100 m) and only
the properties Atalaya reads are kept; rings that rounding collapses are dropped. Output is gzip level 9 with
a zero mtime, so the files are reproducible byte for byte.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any

DIGITS = 5
ADMIN0_KEEP = ("adm0_a3", "iso_a3", "name", "admin", "sovereignt", "sov_a3", "type")
ADMIN1_KEEP = ("name", "iso_3166_2", "adm0_a3", "admin")
ADMIN1_COUNTRIES = ("BRA", "CAN", "AUS")


def _ring(r: list[list[float]]) -> list[list[float]] | None:
    out: list[list[float]] = []
    for x, y in r:
        p = [round(x, DIGITS), round(y, DIGITS)]
        if not out or out[-1] != p:
            out.append(p)
    return out if len(out) >= 4 and out[0] == out[-1] else None


def _geometry(g: dict[str, Any]) -> dict[str, Any] | None:
    polys = [g["coordinates"]] if g["type"] == "Polygon" else g["coordinates"]
    kept = []
    for poly in polys:
        rings = [_ring(r) for r in poly]
        if rings[0] is None:
            continue
        kept.append([rings[0], *[r for r in rings[1:] if r is not None]])
    if not kept:
        return None
    return (
        {"type": "Polygon", "coordinates": kept[0]} if len(kept) == 1 else {"type": "MultiPolygon", "coordinates": kept}
    )


def _write(features: list[dict[str, Any]], keep: tuple[str, ...], path: Path) -> None:
    out = []
    for f in features:
        g = _geometry(f["geometry"])
        if g is not None:
            p = f["properties"]
            out.append({"type": "Feature", "properties": {k: p.get(k) for k in keep}, "geometry": g})
    text = json.dumps({"type": "FeatureCollection", "features": out}, separators=(",", ":"))
    path.write_bytes(gzip.compress(text.encode(), compresslevel=9, mtime=0))
    print(f"{path}: {len(out)} features, {path.stat().st_size / 1e6:.2f} MB")


def main(src: Path) -> None:
    dst = Path(__file__).resolve().parent.parent / "atalaya" / "geo" / "data"
    world = json.loads((src / "ne_10m_admin_0_countries.geojson").read_text(encoding="utf-8"))["features"]
    _write(world, ADMIN0_KEEP, dst / "ne_10m_admin_0_countries_world.geojson.gz")
    adm1 = json.loads((src / "ne_50m_admin_1_states_provinces.geojson").read_text(encoding="utf-8"))["features"]
    for f in adm1:  # NE 50m admin-1 spells its keys in lower case except a few; normalise the ones kept
        f["properties"] = {k.lower(): v for k, v in f["properties"].items()}
    picked = [f for f in adm1 if f["properties"].get("adm0_a3") in ADMIN1_COUNTRIES]
    _write(picked, ADMIN1_KEEP, dst / "ne_50m_admin_1_bra_can_aus.geojson.gz")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data"))
