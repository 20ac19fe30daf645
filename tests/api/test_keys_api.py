"""/v1/keys (tuneforge extension): a project manages its own API keys; others' keys are not found."""

from __future__ import annotations

import openai
import pytest


def test_first_key_turns_auth_on_and_keys_stay_in_their_project(sdk):
    open_client = sdk("anything")
    created = open_client.post("/keys", body={"name": "laptop"}, cast_to=object)
    assert created["key"].startswith(created["prefix"]) and created["name"] == "laptop"
    with pytest.raises(openai.AuthenticationError):  # authentication is on from now on
        open_client.models.list()

    default = sdk(created["key"])
    listed = default.get("/keys", cast_to=object)["data"]
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0] and created["key"] not in str(listed)  # shown once only

    second = default.post("/keys", body={}, cast_to=object)
    other = sdk(created["key"]).post("/keys", body={"name": "x"}, cast_to=object)
    assert {second["id"], other["id"]} <= {k["id"] for k in default.get("/keys", cast_to=object)["data"]}

    # another project sees none of these keys and cannot revoke them
    from tuneforge.db.session import Database
    from tuneforge.projects import create_key

    db = Database(sdk.settings.resolved_database_url)
    with db.session() as session:
        beta_key, _ = create_key(session, "beta")
    db.dispose()
    beta = sdk(beta_key)
    assert created["id"] not in {k["id"] for k in beta.get("/keys", cast_to=object)["data"]}
    with pytest.raises(openai.NotFoundError):
        beta.delete(f"/keys/{created['id']}", cast_to=object)

    revoked = default.delete(f"/keys/{second['id']}", cast_to=object)
    assert revoked["revoked_at"] is not None
    with pytest.raises(openai.AuthenticationError):
        sdk(second["key"]).models.list()
    assert default.models.list().data  # the other keys still work


def test_create_key_rejects_unknown_fields(sdk):
    with pytest.raises(openai.BadRequestError) as err:
        sdk("anything").post("/keys", body={"project": "someone-else"}, cast_to=object)
    assert err.value.param == "project"
