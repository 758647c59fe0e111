"""The partner report: what was flown over the partner's territory, and whether it complied.

Three files, consistent with each other and with the verdicts:

* ``report.csv`` — one row per sortie × territory of the partner (country and
  state level): hours, km, max depth, entries, exits, and the sortie's verdict;
* ``report.json`` — the same rows, totals, and every verdict with its evidence;
* ``report.html`` — self-contained (inline CSS and SVG, no script, no network):
  a map of the partner's territory with the tracks coloured by compliance, bar
  charts of hours, km and max depth per day and per platform type, and the
  violations table.
"""

from __future__ import annotations

import csv
import html
import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from atalaya.geo.territories import Territories
from atalaya.sovereignty.accounting import Accounting
from atalaya.sovereignty.compliance import SortieVerdict, TrackArrays

CSV_COLUMNS: tuple[str, ...] = (
    "sortie_id", "day", "platform_id", "platform_type", "agreement_id", "collection_id", "level", "territory_id",
    "hours", "km", "max_depth_km", "entries", "exits", "status", "compliant", "violations", "worst",
)  # fmt: skip
"""Columns of ``report.csv``."""

COLOURS: dict[str, str] = {
    "compliant": "#2a9d8f",
    "minor": "#e9c46a",
    "major": "#f4a261",
    "critical": "#d62828",
}
"""Track colour by verdict (worst severity)."""

MAX_TRACK_POINTS = 1500
"""Track points drawn per sortie on the map (thinned evenly)."""


def report_rows(partner: str, verdicts: Sequence[SortieVerdict], accounting: Accounting) -> list[dict[str, Any]]:
    """Per sortie × partner territory figures (from the accounting) with each sortie's verdict."""
    by_id = {v.sortie.sortie_id: v for v in verdicts}
    rows = []
    for r in accounting.summary.to_pylist():
        v = by_id.get(r["track_id"])
        if v is None or r["owner"] != partner:
            continue
        rows.append(
            {
                "sortie_id": v.sortie.sortie_id,
                "day": v.sortie.takeoff.strftime("%Y-%m-%d"),
                "platform_id": v.sortie.platform_id,
                "platform_type": v.sortie.platform_type,
                "agreement_id": v.sortie.agreement_id or "",
                "collection_id": v.collection_id or v.sortie.authorisation_id or "",
                "level": r["level"],
                "territory_id": r["territory_id"],
                "hours": round(float(r["time_s"]) / 3600.0, 4),
                "km": round(float(r["distance_km"]), 3),
                "max_depth_km": round(float(r["max_depth_km"] or 0.0), 3),
                "entries": int(r["entries"]),
                "exits": int(r["exits"]),
                "status": v.status,
                "compliant": v.compliant,
                "violations": len(v.violations),
                "worst": v.worst.value if v.worst else "",
            }
        )
    rows.sort(key=lambda d: (d["sortie_id"], d["level"] != "country", d["territory_id"]))
    return rows


def _group(rows: Sequence[dict[str, Any]], key: str) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = defaultdict(lambda: {"hours": 0.0, "km": 0.0, "max_depth_km": 0.0})
    for r in rows:
        if r["level"] != "country":
            continue
        g = out[str(r[key])]
        g["hours"] += r["hours"]
        g["km"] += r["km"]
        g["max_depth_km"] = max(g["max_depth_km"], r["max_depth_km"])
    return {k: {m: round(v, 3) for m, v in out[k].items()} for k in sorted(out)}


def build_report(
    *, partner: str, verdicts: Sequence[SortieVerdict], accounting: Accounting, generated_at: datetime | None = None
) -> dict[str, Any]:
    """The report's data (what ``report.json`` holds)."""
    rows = report_rows(partner, verdicts, accounting)
    over = [v for v in verdicts if partner in v.hosts]
    unverifiable = [v for v in verdicts if v.status == "unverifiable"]
    country_rows = [r for r in rows if r["level"] == "country"]
    return {
        "partner": partner,
        "as_of": (generated_at or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
        "totals": {
            "sorties": len(verdicts),
            "sorties_over_partner": len(over),
            "compliant_over_partner": sum(v.compliant for v in over),
            "unverifiable": len(unverifiable),
            "violations": sum(len([x for x in v.violations if x.host == partner]) for v in over),
            "hours": round(sum(r["hours"] for r in country_rows), 3),
            "km": round(sum(r["km"] for r in country_rows), 3),
            "max_depth_km": round(max((r["max_depth_km"] for r in country_rows), default=0.0), 3),
        },
        "by_day": _group(rows, "day"),
        "by_platform_type": _group(rows, "platform_type"),
        "rows": rows,
        "verdicts": [v.to_dict() for v in [*over, *unverifiable]],
    }


# --------------------------------------------------------------------------- HTML


class _Proj:
    """Lon/lat → SVG pixels: equirectangular scaled by cos(mid-latitude), fitted to the box."""

    def __init__(self, bounds: tuple[float, float, float, float], width: int, height: int) -> None:
        x0, y0, x1, y1 = bounds
        self.k = float(np.cos(np.radians(0.5 * (y0 + y1))))
        sx = width / max((x1 - x0) * self.k, 1e-9)
        sy = height / max(y1 - y0, 1e-9)
        self.s = min(sx, sy)
        self.x0, self.y1 = x0, y1

    def __call__(self, lon: Any, lat: Any) -> tuple[Any, Any]:
        return (np.asarray(lon) - self.x0) * self.k * self.s, (self.y1 - np.asarray(lat)) * self.s


def _path(xs: Any, ys: Any) -> str:
    return "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))


def _map_svg(partner: str, verdicts: Sequence[SortieVerdict], tracks: TrackArrays, territories: Territories) -> str:
    w, h = 900, 620
    geom = territories.geoms[territories.index_of(partner)]
    ranges = tracks.ranges()
    over = [v for v in verdicts if partner in v.hosts]
    b = list(geom.bounds)
    for v in over:
        a, e = ranges.get(v.sortie.sortie_id, (0, 0))
        if e > a:
            b = [min(b[0], float(tracks.lon[a:e].min())), min(b[1], float(tracks.lat[a:e].min())),
                 max(b[2], float(tracks.lon[a:e].max())), max(b[3], float(tracks.lat[a:e].max()))]  # fmt: skip
    pad = 0.02 * max(b[2] - b[0], b[3] - b[1])
    proj = _Proj((b[0] - pad, b[1] - pad, b[2] + pad, b[3] + pad), w, h)
    parts = []
    simple = shapely.simplify(geom, 0.02)
    for poly in shapely.get_parts(simple):
        for ring in [poly.exterior, *poly.interiors]:
            c = np.asarray(ring.coords)
            xs, ys = proj(c[:, 0], c[:, 1])
            parts.append(_path(xs, ys) + "Z")
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
        f'aria-label="Map of {html.escape(partner)} with sortie tracks">',
        f'<rect width="{w}" height="{h}" fill="#eef4f8"/>',
        f'<path d="{" ".join(parts)}" fill="#fdfcf7" stroke="#555" stroke-width="1" fill-rule="evenodd"/>',
    ]
    for v in over:
        a, e = ranges.get(v.sortie.sortie_id, (0, 0))
        if e - a < 2:
            continue
        idx = np.unique(np.linspace(a, e - 1, min(MAX_TRACK_POINTS, e - a)).astype(np.int64))
        xs, ys = proj(tracks.lon[idx], tracks.lat[idx])
        colour = COLOURS[v.worst.value if v.worst else "compliant"]
        title = html.escape(
            f"{v.sortie.sortie_id} {v.sortie.platform_type}: " + (v.worst.value if v.worst else "compliant")
        )
        out.append(
            f'<path d="{_path(xs, ys)}" fill="none" stroke="{colour}" stroke-width="1.6" stroke-opacity="0.85">'
            f"<title>{title}</title></path>"
        )
    for i, (name, fill) in enumerate(COLOURS.items()):
        out.append(f'<rect x="12" y="{12 + 18 * i}" width="12" height="12" fill="{fill}"/>')
        out.append(f'<text x="30" y="{22 + 18 * i}" font-size="12">{name}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _bars_svg(title: str, data: dict[str, dict[str, float]], metric: str, unit: str) -> str:
    labels = list(data)
    vals = [data[k][metric] for k in labels]
    w, bar, gap, left = 420, 16, 6, 110
    h = 30 + len(labels) * (bar + gap) + 10
    top = max(vals, default=0.0) or 1.0
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
        f'aria-label="{html.escape(title)}">',
        f'<text x="0" y="16" font-size="13" font-weight="bold">{html.escape(title)}</text>',
    ]
    for i, (lab, val) in enumerate(zip(labels, vals, strict=True)):
        y = 28 + i * (bar + gap)
        bw = (w - left - 70) * val / top
        out.append(f'<text x="{left - 6}" y="{y + 12}" font-size="11" text-anchor="end">{html.escape(lab)}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{bw:.1f}" height="{bar}" fill="#457b9d"/>')
        out.append(f'<text x="{left + bw + 4:.1f}" y="{y + 12}" font-size="11">{val:.1f} {unit}</text>')
    out.append("</svg>")
    return "\n".join(out)


_METRICS: tuple[tuple[str, str, str], ...] = (("hours", "h", "Hours"), ("km", "km", "Distance"),
                                             ("max_depth_km", "km", "Max depth"))  # fmt: skip

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1d3557;background:#fff}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}
table{border-collapse:collapse;font-size:12px;margin-top:8px}
th,td{border:1px solid #ccd;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#e8eef4}.critical{color:#d62828;font-weight:bold}.major{color:#c26a12}.minor{color:#8a6d00}
.charts{display:flex;flex-wrap:wrap;gap:18px}.totals td{font-size:13px}
"""


def render_html(data: dict[str, Any], verdicts: Sequence[SortieVerdict], tracks: TrackArrays,
                territories: Territories) -> str:  # fmt: skip
    """The self-contained HTML page of a report built by :func:`build_report`."""
    e = html.escape
    p = data["partner"]
    t = data["totals"]
    charts = []
    for group, name in (("by_day", "day"), ("by_platform_type", "platform type")):
        for metric, unit, label in _METRICS:
            charts.append(_bars_svg(f"{label} over {p} per {name}", data[group], metric, unit))
    vrows = []
    for v in verdicts:
        for x in v.violations:
            if x.host != p:
                continue
            seg = x.segments[0] if x.segments else None
            where = (
                f"{e(seg.entry_time)} ({seg.entry_lon:.4f}, {seg.entry_lat:.4f}) → {e(seg.exit_time)} "
                f"({seg.exit_lon:.4f}, {seg.exit_lat:.4f}); {seg.distance_km:.1f} km, depth {seg.max_depth_km:.1f} km"
                + (f"; +{len(x.segments) - 1} more" if len(x.segments) > 1 else "")
                if seg
                else ""
            )
            vrows.append(
                f"<tr><td>{e(v.sortie.sortie_id)}</td><td>{e(v.sortie.platform_type)}</td>"
                f'<td class="{e(x.severity.value)}">{e(x.severity.value)}</td><td>{e(x.rule)}</td>'
                f"<td>{e(x.message)}</td><td>{where}</td></tr>"
            )
    srows = []
    for r in data["rows"]:
        if r["level"] != "country":
            continue
        cls = r["worst"] or ""
        srows.append(
            f"<tr><td>{e(r['sortie_id'])}</td><td>{e(r['day'])}</td><td>{e(r['platform_type'])}</td>"
            f"<td>{e(r['agreement_id'])}</td><td>{r['hours']:.2f}</td><td>{r['km']:.1f}</td>"
            f"<td>{r['max_depth_km']:.1f}</td><td>{r['entries']}</td>"
            f'<td class="{e(cls)}">{"compliant" if r["compliant"] else e(cls)}</td></tr>'
        )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Overflight report for {e(p)}</title>
<style>{_CSS}</style></head><body>
<h1>Overflight and compliance report for {e(p)}</h1>
<p>Figures as of {e(data["as_of"])} (the latest flown fix).</p>
<table class="totals"><tr><th>sorties over {e(p)}</th><th>compliant</th><th>violations</th><th>hours</th>
<th>km</th><th>max depth km</th></tr>
<tr><td>{t["sorties_over_partner"]}</td><td>{t["compliant_over_partner"]}</td><td>{t["violations"]}</td>
<td>{t["hours"]:.2f}</td><td>{t["km"]:.1f}</td><td>{t["max_depth_km"]:.1f}</td></tr></table>
<h2>Map</h2>
{_map_svg(p, verdicts, tracks, territories)}
<h2>Charts</h2>
<div class="charts">{"".join(charts)}</div>
<h2>Sorties over {e(p)}</h2>
<table><tr><th>sortie</th><th>day</th><th>platform type</th><th>agreement</th><th>hours</th><th>km</th>
<th>max depth km</th><th>entries</th><th>verdict</th></tr>
{"".join(srows)}</table>
<h2>Violations</h2>
<table><tr><th>sortie</th><th>platform type</th><th>severity</th><th>rule</th><th>what</th><th>evidence</th></tr>
{"".join(vrows) or '<tr><td colspan="6">none</td></tr>'}</table>
</body></html>
"""


def write_report(
    out_dir: Path | str,
    *,
    partner: str,
    verdicts: Sequence[SortieVerdict],
    accounting: Accounting,
    tracks: TrackArrays,
    territories: Territories,
    generated_at: datetime | None = None,
) -> dict[str, Path]:
    """Write ``report.html``, ``report.csv`` and ``report.json`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = build_report(partner=partner, verdicts=verdicts, accounting=accounting, generated_at=generated_at)
    paths = {"html": out / "report.html", "csv": out / "report.csv", "json": out / "report.json"}
    paths["json"].write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False), encoding="utf-8")
    with paths["csv"].open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(CSV_COLUMNS))
        w.writeheader()
        for r in data["rows"]:
            w.writerow({k: r[k] for k in CSV_COLUMNS})
    paths["html"].write_text(render_html(data, verdicts, tracks, territories), encoding="utf-8")
    return paths
