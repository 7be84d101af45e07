"""A lineage deeper than any reader (or JSON encoder) can nest is cut and says so, never a 500."""

from __future__ import annotations

from spiral_web.engine.lineage import MAX_DEPTH


def test_a_chain_deeper_than_the_bound_answers_a_cut_tree(client):
    parent = None
    ids = []
    for i in range(140):  # 127 levels made orjson give up: a 500 before the bound
        body = {"module": "chain.link", "id": f"link-{i}", "context": {"i": i}}
        if parent:
            body["parent_id"] = parent
        resp = client.post("/stream/glint", json=body)
        assert resp.status_code == 201, resp.get_json()
        parent = body["id"]
        ids.append(parent)
    resp = client.get(f"/api/glints/{ids[0]}/lineage")
    assert resp.status_code == 200
    found = resp.get_json()
    assert found["truncated"] is True
    depth, node = 0, {"children": found["descendants"]}
    while node["children"]:
        node = node["children"][0]
        depth += 1
    assert depth == MAX_DEPTH  # the tree stops at the bound
    assert node["id"] == ids[MAX_DEPTH]
    # from the far end, the ancestors are a flat list: all of them up to the bound of 200
    up = client.get(f"/api/glints/{ids[-1]}/lineage").get_json()
    assert [g["id"] for g in up["ancestors"]][:3] == [ids[-2], ids[-3], ids[-4]]
    assert len(up["ancestors"]) == 139 and up["truncated"] is False
    page = client.get(f"/dashboard/glints/{ids[0]}")
    assert page.status_code == 200
