"""Society of the scenario: determinism, structure, name variants, ids, records and designations."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from atalaya.core.errors import ValidationError
from atalaya.scenario.names import (
    VARIANT_KINDS,
    PersonName,
    company_variant,
    name_similarity,
    random_company_name,
    random_person_name,
    random_variant,
    variant,
)
from atalaya.scenario.society import (
    CELL_KINDS,
    SITE_KINDS,
    SOURCES,
    SiteRef,
    Society,
    build_society,
    clabe_check_digit,
    clabe_is_valid,
    curp_check_digit,
    write_society,
)

START = datetime(2024, 3, 1)


def make_sites(per_kind: int = 3) -> list[SiteRef]:
    return [
        SiteRef(site_id=f"site-{kind}-{i}", kind=kind, lon=-107.4 + 0.1 * i, lat=24.8 + 0.05 * i)
        for kind in SITE_KINDS
        for i in range(per_kind)
    ]


@pytest.fixture(scope="module")
def society() -> Society:
    return build_society(seed=7, size="demo", sites=make_sites(), start=START, days=30)


@pytest.fixture(scope="module")
def written(society: Society, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("society")
    write_society(society, out)
    return out


def read_tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs(written: Path, tmp_path: Path) -> None:
    again = build_society(seed=7, size="demo", sites=make_sites(), start=START, days=30)
    write_society(again, tmp_path / "a")
    assert read_tree(tmp_path / "a") == read_tree(written)
    other = build_society(seed=8, size="demo", sites=make_sites(), start=START, days=30)
    write_society(other, tmp_path / "b")
    tree_b = read_tree(tmp_path / "b")
    assert tree_b.keys() == read_tree(written).keys()
    assert tree_b["truth/network.json"] != read_tree(written)["truth/network.json"]


def test_sizes_scale() -> None:
    demo = build_society(seed=1, size="demo", sites=[], start=START, days=10)
    small = build_society(seed=1, size="small", sites=make_sites(), start=START, days=10)
    assert 2 <= len(demo.organisations) <= 3
    assert 40 <= len(demo.people) <= 100
    assert len(small.organisations) == 5
    assert 200 <= len(small.people) <= 400


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValidationError, match="size"):
        build_society(seed=1, size="huge", sites=[], start=START, days=10)
    with pytest.raises(ValidationError, match="site kinds"):
        build_society(seed=1, size="demo", sites=[SiteRef(site_id="x", kind="farm", lon=0, lat=0)], start=START, days=3)
    with pytest.raises(ValidationError, match="days"):
        build_society(seed=1, size="demo", sites=[], start=START, days=0)


def test_organisations_have_leaders_cells_and_brokers(society: Society) -> None:
    people = {p.person_id: p for p in society.people}
    cells = {c.cell_id: c for c in society.cells}
    for org in society.organisations:
        assert org.leader_ids
        assert all(people[pid].role == "leader" and people[pid].org_id == org.org_id for pid in org.leader_ids)
        kinds = {cells[cid].kind for cid in org.cell_ids}
        assert kinds == set(CELL_KINDS)
        for cid in org.cell_ids:
            cell = cells[cid]
            assert cell.lieutenant_id in cell.member_ids
            assert people[cell.lieutenant_id].role == "lieutenant"
        assert org.broker_ids
        for bid in org.broker_ids:
            broker = people[bid]
            assert len(broker.cell_ids) == 2  # a broker links two cells
            assert all(bid in cells[c].member_ids for c in broker.cell_ids)
        assert org.company_ids


def test_sites_are_dealt_to_matching_cells(society: Society) -> None:
    kind_of = {s.site_id: s.kind for s in make_sites()}
    dealt = [sid for c in society.cells for sid in c.site_ids]
    assert sorted(dealt) == sorted(set(dealt))  # each site to one cell
    for c in society.cells:
        for sid in c.site_ids:
            if c.kind == "production":
                assert kind_of[sid] == "lab"
            else:
                assert kind_of[sid] != "lab"
    assert {kind_of[s] for s in dealt} == set(SITE_KINDS)


def test_owners_and_holders_exist(society: Society) -> None:
    people = {p.person_id for p in society.people}
    companies = {c.company_id for c in society.companies}
    sites = {s.site_id for s in make_sites()}
    for ph in society.phones:
        assert ph.owner_id in people
        assert ph.site_id is None or ph.site_id in sites
        assert len(ph.phone_id) == 15
        assert ph.phone_id.startswith("334")
    assert any(ph.site_id is not None for ph in society.phones)
    assert len({ph.phone_id for ph in society.phones}) == len(society.phones)
    for v in society.vehicles:
        assert v.owner_id in people | companies
        assert v.kind in ("car", "pickup", "truck")
        assert v.site_id is None or v.site_id in sites
    assert len({v.plate for v in society.vehicles}) == len(society.vehicles)
    for a in society.accounts:
        assert a.holder_id in people | companies
    for lk in society.links:
        society.entity(lk.source_id)
        if lk.kind != "Membership":
            society.entity(lk.target_id)


def test_clabe_and_curp_check_digits(society: Society) -> None:
    assert clabe_check_digit("03218000011835971") == 9  # the published example CLABE 032180000118359719
    assert all(clabe_is_valid(a.account_id) for a in society.accounts)
    assert not clabe_is_valid("12345")
    bad = society.accounts[0].account_id[:17] + str((int(society.accounts[0].account_id[17]) + 1) % 10)
    assert not clabe_is_valid(bad)
    for p in society.people:
        assert len(p.curp) == 18
        assert curp_check_digit(p.curp[:17]) == p.curp[17]
        assert p.rfc[:10] == p.curp[:10]
    for c in society.companies:
        assert len(c.rfc) == 12


def test_every_record_maps_to_a_true_entity(society: Society) -> None:
    record_ids = {r.record_id for r in society.records}
    assert len(record_ids) == len(society.records)
    for r in society.records:
        true = society.entity(r.entity_id)
        assert true is not None
        for key in ("owner", "asset", "director", "organization", "person", "relative", "associate", "member"):
            for ref in dict(r.properties).get(key, ()):
                if r.schema not in ("Person", "Company", "Organization", "Vehicle", "BankAccount"):
                    assert ref in record_ids


def test_people_appear_in_several_sources_under_variant_names(society: Society) -> None:
    sources: dict[str, set[str]] = defaultdict(set)
    names: dict[str, list[str]] = defaultdict(list)
    for r in society.records:
        if r.schema == "Person":
            sources[r.entity_id].add(r.source)
            names[r.entity_id].extend(dict(r.properties)["name"])
    for p in society.people:
        assert len(sources[p.person_id]) >= 2, p
    spellings = [(p.name.full, n) for p in society.people for n in names[p.person_id]]
    differing = [(c, n) for c, n in spellings if n != c]
    assert len(differing) > 0.5 * len(spellings)
    for canonical, n in differing:
        assert name_similarity(canonical, n) >= 0.5, (canonical, n)


def test_ftm_lines_parse_with_required_fields(written: Path) -> None:
    files = sorted((written / "records" / "entities").glob("*.jsonl"))
    assert {f.stem for f in files} == set(SOURCES)
    schemas = set()
    for f in files:
        for line in f.read_text(encoding="utf-8").splitlines():
            obj = json.loads(line)
            assert set(obj) == {"id", "schema", "properties", "datasets"}
            assert obj["datasets"] == [f.stem]
            assert all(isinstance(v, list) and v for v in obj["properties"].values())
            if obj["schema"] in ("Person", "Company", "Organization"):
                assert obj["properties"]["name"]
            schemas.add(obj["schema"])
    assert {"Person", "Company", "Organization", "Vehicle", "BankAccount", "Ownership", "Directorship"} <= schemas
    assert {"Family", "Associate", "Membership"} & schemas


def test_truth_maps_every_record(written: Path, society: Society) -> None:
    truth = json.loads((written / "truth" / "network.json").read_text(encoding="utf-8"))
    mapped = {r["record_id"]: r["entity_id"] for r in truth["records"]}
    written_ids = {
        json.loads(line)["id"]
        for f in (written / "records" / "entities").glob("*.jsonl")
        for line in f.read_text(encoding="utf-8").splitlines()
    }
    assert written_ids == set(mapped)
    assert len(truth["organisations"]) == len(society.organisations)
    for org in truth["organisations"]:
        assert org["leaders"]
        assert {c["kind"] for c in org["cells"]} == set(CELL_KINDS)
    assert truth["site_links"]


def test_designations_hold_true_leaders_and_decoys(written: Path, society: Society) -> None:
    with (written / "records" / "designations.csv").open(encoding="utf-8") as fh:
        rows = {int(r["ent_num"]): r for r in csv.DictReader(fh)}
    with (written / "truth" / "designation_matches.csv").open(encoding="utf-8") as fh:
        matches = list(csv.DictReader(fh))
    assert set(rows) == {int(m["ent_num"]) for m in matches}
    assert {r["type"] for r in rows.values()} <= {"individual", "entity"}
    true = [m for m in matches if m["is_match"] == "1"]
    leaders = {pid for o in society.organisations for pid in o.leader_ids}
    assert {m["entity_id"] for m in true} & leaders
    assert any(m["entity_kind"] == "company" for m in true)
    assert any(m["note"] == "unrelated" for m in matches)
    assert any(m["note"].startswith("namesake") for m in matches)
    for m in true:
        ent = society.entity(m["entity_id"])
        listed = rows[int(m["ent_num"])]["name"]
        canonical = ent.name.full if m["entity_kind"] == "person" else ent.full_name
        assert name_similarity(canonical, listed) >= 0.5, (canonical, listed)
        assert "a.k.a." in rows[int(m["ent_num"])]["remarks"] or m["entity_kind"] == "company"


NAME = PersonName(given=("José", "Luis"), paternal="Hernández", maternal="Núñez")


@pytest.mark.parametrize("kind", VARIANT_KINDS)
def test_each_variant_kind_differs_but_stays_close(kind: str) -> None:
    out = variant(NAME, kind, np.random.default_rng(3))
    assert out != NAME.full
    assert name_similarity(out, NAME.full) >= 0.5


def test_random_variants_differ_and_stay_close() -> None:
    rng = np.random.default_rng(11)
    for i in range(400):
        name = random_person_name(rng, gender="M" if i % 2 else "F")
        out = random_variant(name, rng)
        assert out != name.full
        assert name_similarity(out, name.full) >= 0.5, (name.full, out)
        cname, form = random_company_name(rng)
        cv = company_variant(cname, form, rng)
        assert cv != f"{cname} {form}"
        assert name_similarity(cv, f"{cname} {form}") >= 0.5


def test_unknown_variant_kind_raises() -> None:
    with pytest.raises(ValidationError, match="variant"):
        variant(NAME, "reverse")
