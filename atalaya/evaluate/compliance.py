"""Compliance verdicts scored against the scenario's compliance truth (``truth/compliance.json``).

The truth lists, per sortie, the expected status (``compliant``, ``violation`` or ``no-host``: never in
foreign territory), the rules broken (ids of :data:`atalaya.sovereignty.compliance.RULES`) and which of
them were planted on purpose. Verdicts are the dicts of ``SortieVerdict.to_dict()`` (``sortie_id``,
``hosts``, ``violations`` with a ``rule`` each) or flat rows with ``sortie_id``, ``status`` and ``rules``.

Per rule, a true positive is a sortie whose verdict and truth both carry the rule. Status accuracy is the
share of truth sorties whose verdict status is the expected one (a sortie without a verdict counts as wrong).

>>> truth = [{"sortie_id": "A", "status": "violation", "rules": ["depth"], "planted": ["depth"]},
...          {"sortie_id": "B", "status": "compliant", "rules": [], "planted": []}]
>>> verdicts = [{"sortie_id": "A", "hosts": ["MEX"], "violations": [{"rule": "depth"}]},
...             {"sortie_id": "B", "hosts": ["MEX"], "violations": []}]
>>> f = score_compliance(verdicts, truth)
>>> f["status_accuracy"], f["rules"]["depth"]["recall"], f["planted_found"], f["compliant_flagged"]
(1.0, 1.0, 1, 0)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


def verdict_status(v: Mapping[str, Any]) -> tuple[str, set[str]]:
    """``(status, rules)`` of one verdict dict (either shape, see the module docstring)."""
    if "status" in v and "violations" not in v:
        rules = {str(r) for r in v.get("rules") or []}
        return str(v["status"]), rules
    rules = {str(x["rule"]) for x in v.get("violations") or []}
    if not v.get("hosts"):
        return "no-host", rules
    return ("violation" if rules else "compliant"), rules


def _ratio(a: int, b: int) -> float:
    return round(a / b, 4) if b else 1.0


def score_compliance(verdicts: Iterable[Mapping[str, Any]], truth: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Per-rule precision and recall, per-sortie status accuracy, planted violations found, compliant flagged.

    Returns ``sorties``, ``status_accuracy``, ``compliant_share`` (of the truth), ``planted``,
    ``planted_found`` (planted rules the verdicts carry), ``compliant_flagged`` (truth-compliant or
    no-host sorties given a violation), ``missing`` (truth sorties without a verdict), ``confusion``
    (``truth status -> verdict status -> count``) and ``rules`` (``rule -> tp/fp/fn/precision/recall``).
    """
    got = {str(v["sortie_id"]): verdict_status(v) for v in verdicts}
    rows = list(truth)
    per_rule: dict[str, dict[str, int]] = {}
    confusion: dict[str, dict[str, int]] = {}
    right = planted = found = flagged = missing = compliant = 0

    def bump(rule: str, key: str) -> None:
        per_rule.setdefault(rule, {"tp": 0, "fp": 0, "fn": 0})[key] += 1

    for t in rows:
        sid = str(t["sortie_id"])
        want_status = str(t["status"])
        want = {str(r) for r in t.get("rules") or []}
        compliant += want_status == "compliant"
        status, rules = got.get(sid, ("missing", set()))
        missing += sid not in got
        right += status == want_status
        confusion.setdefault(want_status, {}).setdefault(status, 0)
        confusion[want_status][status] += 1
        if want_status in ("compliant", "no-host") and rules:
            flagged += 1
        for r in t.get("planted") or []:
            planted += 1
            found += str(r) in rules
        for r in want & rules:
            bump(r, "tp")
        for r in rules - want:
            bump(r, "fp")
        for r in want - rules:
            bump(r, "fn")
    out_rules = {
        r: {**c, "precision": _ratio(c["tp"], c["tp"] + c["fp"]), "recall": _ratio(c["tp"], c["tp"] + c["fn"])}
        for r, c in sorted(per_rule.items())
    }
    return {
        "sorties": len(rows),
        "status_accuracy": _ratio(right, len(rows)),
        "compliant_share": _ratio(compliant, len(rows)),
        "planted": planted,
        "planted_found": found,
        "compliant_flagged": flagged,
        "missing": missing,
        "confusion": confusion,
        "rules": out_rules,
    }


def load_compliance_truth(truth_dir: Path) -> list[dict[str, Any]]:
    """``truth/compliance.json`` of a scenario (``[]`` when the scenario predates it)."""
    p = Path(truth_dir) / "compliance.json"
    if not p.exists():
        return []
    data: list[dict[str, Any]] = json.loads(p.read_text(encoding="utf-8"))
    return data
