"""Dry runs are an admin tool (issue 10, item 1): a reader or an anonymous caller of a guarded hub
is refused; a rule that could cost too much is refused with a 422 naming the problem; and while the
heaviest rule the hub accepts runs over the most glints a dry run may examine, the hub still
answers /healthz."""

from __future__ import annotations

import threading

import pytest
import requests

from tests.support import ServerProcess

from .conftest import ADMIN, PUBLISH, READ, bearer
from .figures import record

DRY_RUN = "/api/rituals/archival/dry-run"
# The rule from the report: exists() inside exists() over list literals, about 400 characters;
# it held the worker for seconds before rules had a bounded cost.
LIST = "[" + ",".join(str(n) for n in range(44)) + "]"
PATHOLOGICAL = f"{LIST}.exists(a, {LIST}.exists(b, {LIST}.exists(c, a + b + c == -1)))"
# The heaviest kind the hub accepts: one comprehension over a list literal as long as a rule may be.
HEAVY = "[" + ",".join(str(n) for n in range(250)) + "].exists(x, x == size(module) + 1000)"


@pytest.mark.parametrize(
    "headers, status",
    [
        pytest.param({}, 401, id="anonymous"),
        pytest.param(bearer(READ["watcher"]), 403, id="read-token"),
        pytest.param(bearer(PUBLISH["alpha"]), 403, id="publish-token"),
        pytest.param(bearer(ADMIN), 200, id="admin-token"),
    ],
)
def test_only_admin_may_dry_run_on_a_guarded_hub(guarded, headers, status):
    resp = guarded.test_client().post(DRY_RUN, json={"rule": 'module == "a.b"'}, headers=headers)
    assert resp.status_code == status, resp.get_json()
    if status != 200:
        assert resp.get_json()["error"] in ("unauthorized", "forbidden")
        assert "admin" in resp.get_json()["message"]


def test_a_costly_rule_is_refused_naming_the_problem(guarded):
    client = guarded.test_client()
    assert len(PATHOLOGICAL) >= 400
    resp = client.post(DRY_RUN, json={"rule": PATHOLOGICAL, "last": 1000}, headers=bearer(ADMIN))
    assert resp.status_code == 422
    body = resp.get_json()
    assert body["error"] == "invalid_rule"
    assert body["details"] == [{"field": "rule", "problem": body["message"].removeprefix("rule: ")}]
    assert "at most one level" in body["message"]
    too_many = client.post(DRY_RUN, json={"last": 1001}, headers=bearer(ADMIN))
    assert too_many.status_code == 422 and too_many.get_json()["details"][0]["field"] == "last"
    assert client.get("/healthz").status_code == 200


def test_the_openapi_document_says_dry_run_needs_admin(guarded):
    doc = guarded.test_client().get("/api/openapi.json").get_json()
    operation = doc["paths"]["/api/rituals/{name}/dry-run"]["post"]
    assert operation["security"] == [{"adminToken": []}]
    assert {"401", "403"} <= set(operation["responses"])


def test_the_hub_answers_while_the_heaviest_dry_runs_go_on(tmp_path):
    """Four dry runs of the heaviest accepted rule over 1,000 glints at once, against a real
    server: every /healthz asked meanwhile is answered, and the costly rule is still refused."""
    server = ServerProcess(
        tmp_path / "server",
        env={"SPIRAL_ADMIN_TOKEN": ADMIN, "SPIRAL_SOURCE_RATE": "0"},
    ).start()
    try:
        http = requests.Session()
        http.headers.update(bearer(ADMIN))
        for n in range(1000):
            body = {"module": f"load.m{n % 7}", "context": {"n": n, "pad": "x" * 200}}
            assert http.post(server.url + "/stream/glint", json=body, timeout=10).status_code == 201
        answers: list[int] = []

        def dry_run() -> None:
            resp = requests.post(
                server.url + DRY_RUN,
                json={"rule": HEAVY, "last": 1000},
                headers=bearer(ADMIN),
                timeout=60,
            )
            answers.append(resp.status_code)

        runs = [threading.Thread(target=dry_run) for _ in range(4)]
        for run in runs:
            run.start()
        health = []
        while any(run.is_alive() for run in runs) or not health:
            health.append(requests.get(server.url + "/healthz", timeout=10).status_code)
        for run in runs:
            run.join()
        record(
            "dry_run_load",
            dry_runs=4,
            glints_each=1000,
            rule_chars=len(HEAVY),
            healthz_answered_meanwhile=health.count(200),
            healthz_asked=len(health),
        )
        assert answers == [200] * 4
        assert health and set(health) == {200}
        refused = http.post(server.url + DRY_RUN, json={"rule": PATHOLOGICAL}, timeout=10)
        assert refused.status_code == 422 and refused.json()["error"] == "invalid_rule"
        assert requests.get(server.url + "/healthz", timeout=10).status_code == 200
    finally:
        server.stop()
