"""Friendly and neutral units reported over CoT are context, never suspected sites (DESIGN §8)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from atalaya.core.workspace import Workspace
from atalaya.fusion.sites import _without_context, run_sites
from atalaya.geo.matching import match_points
from atalaya.store.knowledge import KnowledgeStore, schema


def _events(aff: str, lon0: float, lat0: float, seed: int) -> list[str]:
    """A command post and the vehicles coming and going from it, night and day, over six days."""
    rng = np.random.default_rng(seed)
    out = []
    for day in range(6):
        for hour in (2, 9, 14, 22):
            for k in range(6):
                lon = lon0 + rng.normal(0, 0.0002)
                lat = lat0 + rng.normal(0, 0.0002)
                ctype = f"a-{aff}-G-I-B" if k == 0 else f"a-{aff}-G-E-V-C"
                t = f"2024-05-{day + 1:02d}T{hour:02d}:{k * 7:02d}:00Z"
                out.append(
                    f'<event version="2.0" uid="{aff}-{k}" type="{ctype}" time="{t}" start="{t}" stale="{t}" '
                    f'how="m-g"><point lat="{lat:.6f}" lon="{lon:.6f}" hae="9999999" ce="10" le="9999999"/>'
                    f'<detail><contact callsign="{aff.upper()}-{k}"/><track speed="0" course="0"/></detail></event>'
                )
    return out


def test_friendly_command_post_is_not_a_suspected_site(workspace: Workspace, tmp_path: Path) -> None:
    from atalaya.ingest.pipeline import ingest_paths

    hostile, friendly, neutral = (-107.40, 25.10), (-107.10, 25.40), (-106.80, 25.70)
    path = tmp_path / "units.cot"
    path.write_text(
        "\n".join(_events("h", *hostile, seed=1) + _events("f", *friendly, seed=2) + _events("n", *neutral, seed=3))
    )
    store = KnowledgeStore.open(workspace.db_url)
    ingest_paths(workspace, [path], store=store)
    run_sites(workspace, store)
    with store.engine.connect() as conn:
        sites = conn.execute(schema.sites.select()).all()
    lon = np.array([s.lon for s in sites], dtype=np.float64)
    lat = np.array([s.lat for s in sites], dtype=np.float64)

    def near(p: tuple[float, float]) -> bool:
        return match_points(lon, lat, np.array([p[0]]), np.array([p[1]]), radius_m=2000.0).tp > 0

    assert near(hostile)  # the same reports on a hostile unit make a site
    assert not near(friendly)
    assert not near(neutral)


def test_context_rows_are_dropped_by_affiliation() -> None:
    tb = pa.table(
        {
            "x": [1, 2, 3, 4, 5, 6],
            "attrs": [
                '{"affiliation":"f","type":"a-f-G-I"}',
                '{"affiliation":"n","type":"a-n-G"}',
                '{"affiliation":"a","type":"a-a-G"}',
                '{"affiliation":"h","type":"a-h-G-I"}',
                '{"affiliation":null,"type":"b-m-p"}',
                None,
            ],
        }
    )
    out = _without_context(tb)
    assert out.column_names == ["x"]
    assert out.column("x").to_pylist() == [4, 5, 6]
