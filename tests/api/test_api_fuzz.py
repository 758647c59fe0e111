"""API fuzzing with Schemathesis against the OpenAPI document: no input, as an analyst or a partner's liaison,
makes the server fail (5xx).

Every operation is exercised with a bounded number of generated requests (``ATALAYA_FUZZ_EXAMPLES``, default
12; derandomised, so a run is repeatable), each sent once with an analyst's bearer token and once with a MEX
liaison's, over a workspace holding sites, sorties, verdicts, an agreement and a signed log. Operations that
end the test's own credentials (logout, password, disable, revoke) are fuzzed by their own tests instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from atalaya.api.app import create_app
from atalaya.api.users import add_user
from atalaya.core.workspace import init_workspace
from atalaya.sovereignty.agreements import example_document, parse_agreement, store_agreements
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks
from atalaya.store.translog.node import log_signer, open_log

EXAMPLES = int(os.environ.get("ATALAYA_FUZZ_EXAMPLES", "12"))
REL = "TLP:AMBER;REL:MEX,USA;ORIG:USA"
SKIP = r"^/api/(auth/(logout|password)|users/\{username\}/(disable|revoke|password))$"
CALLS: dict[str, int] = {"requests": 0, "5xx": 0}


@pytest.fixture(scope="module")
def fuzz_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    ws = init_workspace(tmp_path_factory.mktemp("fuzz") / "ws", party="USA")
    store = KnowledgeStore.open(ws.db_url)
    add_user(store, "ana", "analyst-pass", party="USA", role="analyst")
    add_user(store, "lia", "liaison-pass", party="MEX", role="liaison")
    doc = {**example_document(), "id": "usa-mex-2026",
           "effective": {"from": "2026-01-01T00:00:00Z", "to": "2030-01-01T00:00:00Z"}}  # fmt: skip
    store_agreements(store, [parse_agreement(doc)])
    t0 = datetime(2026, 3, 1, 10, tzinfo=UTC)
    with store.begin() as conn:
        conn.execute(ks.sites.insert(), [{"id": "site--a", "kind": "lab", "lon": -107.0, "lat": 25.0, "score": 0.9,
                                          "marking": REL}])  # fmt: skip
        sortie = {"id": "S-1", "platform_type": "MQ-9", "party_id": "USA", "takeoff": t0, "landing": t0,
                  "agreement_id": "usa-mex-2026", "marking": REL}  # fmt: skip
        conn.execute(ks.sorties.insert(), [sortie])
    with open_log(ws) as log:
        log.append({"kind": "agreement", "id": "usa-mex-2026", "version": 1, "parties": ["MEX", "USA"]})
        log.checkpoint(log_signer(ws))
    app = create_app(ws, store=store)
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        tokens = {
            who: c.post("/api/auth/login", json={"username": who, "password": pw}).json()["token"]
            for who, pw in (("ana", "analyst-pass"), ("lia", "liaison-pass"))
        }
    yield {"app": app, "tokens": tokens, "root": Path(ws.root)}
    store.close()


def test_no_input_makes_the_server_fail(fuzz_env: dict[str, Any]) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_env["app"]).exclude(path_regex=SKIP)
    failures: list[str] = []
    ops = 0
    for result in schema.get_all_operations():
        op = result.ok()
        ops += 1

        @given(
            case=op.as_strategy(generation_mode=GenerationMode.POSITIVE)
            | op.as_strategy(generation_mode=GenerationMode.NEGATIVE)
        )
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def run(case: schemathesis.Case) -> None:
            for who, token in fuzz_env["tokens"].items():
                r = case.call(headers={**(case.headers or {}), "Authorization": f"Bearer {token}"})
                CALLS["requests"] += 1
                if r.status_code >= 500:
                    CALLS["5xx"] += 1
                    failures.append(f"{case.method} {case.formatted_path} {case.query} as {who}: "
                                    f"{r.status_code} {r.text[:200]}")  # fmt: skip

        run()
    print(f"schemathesis: {ops} operations, {CALLS['requests']} requests, {CALLS['5xx']} answered 5xx")
    assert ops >= 30 and CALLS["requests"] >= ops * 2
    assert not failures, "\n".join(failures[:20])
