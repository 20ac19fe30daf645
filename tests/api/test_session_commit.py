"""A write is committed before its response leaves: the next request sees it at once."""

import httpx

from tuneforge.testing import LiveServer


def test_objects_are_visible_to_the_very_next_request(tmp_path):
    from tuneforge.settings import Settings

    server = LiveServer(Settings(data_dir=tmp_path / "data", worker_in_process=False)).start()
    try:
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            for i in range(40):
                mask = client.post("/masks", json={"name": f"m{i}", "system_prompt": "Be brief."})
                assert mask.status_code == 200, mask.text
                got = client.get(f"/masks/{mask.json()['id']}")
                assert got.status_code == 200, (i, got.text)
                thread = client.post("/threads", json={})
                assert client.get(f"/threads/{thread.json()['id']}").status_code == 200, i
    finally:
        server.stop()
