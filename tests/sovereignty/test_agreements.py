"""Agreements: schema validation with useful errors, YAML/JSON loading, versions, storage, CLI."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from atalaya.cli.cmd_compliance import agreements_cmd
from atalaya.cli.context import CliState
from atalaya.core.errors import ValidationError
from atalaya.core.markings import TLP
from atalaya.core.workspace import Workspace
from atalaya.scenario.config import get_config
from atalaya.scenario.sorties import agreements_record
from atalaya.sovereignty.agreements import (
    AgreementSet,
    agreement_schema,
    example_document,
    load_agreement,
    load_agreements,
    parse_agreement,
    store_agreements,
    stored_agreements,
    stored_status,
)
from atalaya.store.knowledge import KnowledgeStore


def doc(**top: Any) -> dict[str, Any]:
    d = example_document()
    d.update(top)
    return d


def test_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(agreement_schema())


def test_scenario_agreements_validate(tmp_path: Path) -> None:
    for d in agreements_record(get_config("demo")):
        p = tmp_path / f"{d['id']}.yaml"
        p.write_text(yaml.safe_dump(d, sort_keys=False))
        a = load_agreement(p)
        assert a.id == d["id"] and a.collection
        assert all(s.max_tlp is TLP.AMBER for s in a.sharing)


def test_example_parses() -> None:
    a = parse_agreement(example_document())
    item = a.collection[0]
    assert (item.host, item.collector, item.max_depth_km) == ("MEX", "USA", 60.0)
    assert item.time_windows[0].start == datetime(2026, 3, 1, tzinfo=UTC)
    assert a.item("AGR-X/C1") is item and a.item("nope") is None


@pytest.mark.parametrize(
    ("mutate", "field", "hint"),
    [
        (lambda d: d.pop("title"), "(document)", "add the missing field"),
        (lambda d: d["collection"][0].update(max_depth_km=-5), "collection[0].max_depth_km", "at least 0"),
        (lambda d: d["collection"][0].update(areas=[{"states": ["mx-son"]}]), "collection[0].areas[0]", "ISO 3166-2"),
        (lambda d: d["effective"].update({"from": "2026-03-01"}), "effective.from", "ISO 8601"),
        (lambda d: d["collection"][0].update(colour="red"), "collection[0]", "remove or rename"),
        (lambda d: d["sharing"][0].update(max_tlp="PURPLE"), "sharing[0].max_tlp", "use one of"),
        (lambda d: d.update(version="1"), "version", "type integer"),
    ],
)
def test_schema_errors_name_file_and_field(mutate: Any, field: str, hint: str) -> None:
    d = copy.deepcopy(example_document())
    mutate(d)
    with pytest.raises(ValidationError) as e:
        parse_agreement(d, source="agr.yaml")
    assert f"agr.yaml: {field}" in e.value.message
    assert e.value.hint is not None and hint in e.value.hint


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["effective"].update(to="2026-01-01T00:00:00Z"), "effective.to"),
        (lambda d: d["collection"][0]["altitude_m"].update(min=10000), "collection[0].altitude_m"),
        (lambda d: d["collection"][0].update(host="CAN"), "collection[0].host"),
        (lambda d: d["collection"].append(copy.deepcopy(d["collection"][0])), "collection[1].id"),
        (lambda d: d["sharing"][0].update(caveats=["MAYBE"]), "sharing[0].caveats"),
        (
            lambda d: d["collection"][0].update(
                areas=[{"polygon": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}}]
            ),
            "collection[0].areas[0].polygon",
        ),
    ],
)
def test_semantic_errors(mutate: Any, field: str) -> None:
    d = copy.deepcopy(example_document())
    mutate(d)
    with pytest.raises(ValidationError) as e:
        parse_agreement(d, source="x.json")
    assert f"x.json: {field}" in e.value.message


def test_yaml_unquoted_datetimes_and_json_give_same_hash(tmp_path: Path) -> None:
    text = yaml.safe_dump(example_document(), sort_keys=False).replace("'", "")
    assert "from: 2026-02-28T00:00:00Z" in text  # unquoted: YAML reads a datetime
    (tmp_path / "a.yaml").write_text(text)
    (tmp_path / "b.json").write_text(json.dumps(example_document()))
    a, b = load_agreement(tmp_path / "a.yaml"), load_agreement(tmp_path / "b.json")
    assert a.sha256 == b.sha256 and a.effective_from == b.effective_from


def test_syntax_errors_name_the_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("id: [unclosed\n")
    with pytest.raises(ValidationError, match=r"bad\.yaml: not valid YAML"):
        load_agreement(p)


def test_versions_supersede_from_their_effective_date() -> None:
    v1 = parse_agreement(doc())  # 2026-02-28 → 2026-06-30
    d2 = doc(version=2, effective={"from": "2026-04-01T00:00:00Z", "to": "2026-12-31T00:00:00Z"})
    v2 = parse_agreement(d2)
    s = AgreementSet([v2, v1])
    assert [a.version for a in s.history("AGR-X")] == [1, 2]
    assert s.in_force("AGR-X", datetime(2026, 3, 15, tzinfo=UTC)).version == 1  # type: ignore[union-attr]
    assert s.in_force("AGR-X", datetime(2026, 5, 1, tzinfo=UTC)).version == 2  # type: ignore[union-attr]
    assert s.in_force("AGR-X", datetime(2027, 1, 2, tzinfo=UTC)) is None
    assert s.latest("AGR-X") is v2
    # The same (id, version) with other content is refused.
    changed = parse_agreement(doc(title="Changed"))
    with pytest.raises(ValidationError, match="new version number"):
        s.add(changed)
    s.add(parse_agreement(doc()))  # identical content: fine


def test_store_keeps_history(store: KnowledgeStore) -> None:
    v1 = parse_agreement(doc())
    v2 = parse_agreement(doc(version=2, effective={"from": "2026-04-01T00:00:00Z", "to": None}))
    assert store_agreements(store, [v1]) == 1
    assert store_agreements(store, [v1]) == 0  # idempotent
    assert store_agreements(store, [v2]) == 1
    rows = stored_status(store)
    assert [(r["version"], r["status"]) for r in rows] == [(1, "superseded"), (2, "active")]
    assert all(len(r["sha256"]) == 64 for r in rows)
    back = stored_agreements(store)
    assert [a.sha256 for a in back.history("AGR-X")] == [v1.sha256, v2.sha256]
    with pytest.raises(ValidationError, match="already stored with other content"):
        store_agreements(store, [parse_agreement(doc(title="Edited"))])


def test_cli_validate_load_list_show(workspace: Workspace, tmp_path: Path) -> None:
    good = tmp_path / "agr"
    good.mkdir()
    (good / "a.yaml").write_text(yaml.safe_dump(example_document()))
    bad = tmp_path / "bad.json"
    d = example_document()
    d["collection"][0].pop("host")
    bad.write_text(json.dumps(d))
    runner = CliRunner()
    obj = CliState(workspace=workspace.root)
    r = runner.invoke(agreements_cmd, ["validate", str(good), str(bad)], obj=obj)
    assert r.exit_code == 1
    assert "ok    " in r.output and "bad.json: collection[0]" in r.output and "'host' is a required" in r.output
    r = runner.invoke(agreements_cmd, ["load", str(good)], obj=obj)
    assert r.exit_code == 0, r.output
    assert "1 new" in r.output
    r = runner.invoke(agreements_cmd, ["list", "--json"], obj=obj)
    assert json.loads(r.output)[0]["id"] == "AGR-X"
    r = runner.invoke(agreements_cmd, ["show", "AGR-X"], obj=obj)
    assert json.loads(r.output)["document"]["id"] == "AGR-X"
    assert load_agreements([good]).latest("AGR-X") is not None
