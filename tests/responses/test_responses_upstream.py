"""/v1/responses on upstream models: a second tuneforge on loopback plays the provider. Creation (plain
and streamed) is forwarded, the ids it creates stay owned by the calling project, and local context
(previous responses, conversations) is sent along."""

from __future__ import annotations

import json

import openai
import pytest

from tuneforge.testing import LiveServer, start_keyed_server

UP = "up-tiny"


@pytest.fixture(scope="module")
def pair(tmp_path_factory, models_cache, tiny_model_dir):
    from tuneforge.db.session import Database
    from tuneforge.projects import create_key
    from tuneforge.settings import Settings

    up_settings = Settings(data_dir=tmp_path_factory.mktemp("upstream") / "data", models_cache_dir=models_cache)
    upstream, up_key = start_keyed_server(up_settings, {UP: str(tiny_model_dir)})
    config = [{"name": "loopback", "models": ["up-*"], "base_url": upstream.base_url, "api_key": up_key}]
    main_settings = Settings(data_dir=tmp_path_factory.mktemp("main") / "data", models_cache_dir=models_cache,
                             upstreams=json.dumps(config), upstream_timeout_s=30)
    main_settings.ensure_dirs()
    db = Database(main_settings.resolved_database_url)
    db.migrate()
    with db.session() as session:
        key_a, _ = create_key(session, "alpha")
        key_b, _ = create_key(session, "beta")
    db.dispose()
    main = LiveServer(main_settings).start()
    try:
        yield main, upstream, up_key, key_a, key_b
    finally:
        main.stop()
        upstream.stop()


def test_responses_are_forwarded_and_owned_by_the_project(pair):
    main, upstream, up_key, key_a, key_b = pair
    a = openai.OpenAI(base_url=main.base_url, api_key=key_a, max_retries=0)
    b = openai.OpenAI(base_url=main.base_url, api_key=key_b, max_retries=0)
    direct = openai.OpenAI(base_url=upstream.base_url, api_key=up_key, max_retries=0)
    kwargs = dict(model=UP, input="Hello upstream", max_output_tokens=6, temperature=0)
    via = a.responses.create(**kwargs)
    ref = direct.responses.create(**kwargs)
    assert via.model == UP and via.output_text == ref.output_text and via.usage == ref.usage
    assert direct.responses.retrieve(via.id).id == via.id  # it lives on the upstream
    assert a.responses.retrieve(via.id).output_text == via.output_text  # forwarded for its owner
    assert [i.content[0].text for i in a.responses.input_items.list(via.id)] == ["Hello upstream"]
    with pytest.raises(openai.NotFoundError):
        b.responses.retrieve(via.id)  # another project: not even forwarded

    deltas = []
    with a.responses.stream(**kwargs) as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
            last = event
    assert "".join(deltas) == ref.output_text and last.type == "response.incomplete"
    streamed_id = last.response.id
    assert a.responses.retrieve(streamed_id).output_text == ref.output_text  # ownership recorded mid-stream

    follow = a.responses.create(model=UP, input="And then?", previous_response_id=via.id, max_output_tokens=2)
    assert follow.previous_response_id == via.id and follow.usage.input_tokens > via.usage.input_tokens

    a.responses.delete(via.id)
    with pytest.raises(openai.NotFoundError):
        direct.responses.retrieve(via.id)


def test_local_conversations_work_with_upstream_models(pair):
    main, _upstream, _key, key_a, _key_b = pair
    a = openai.OpenAI(base_url=main.base_url, api_key=key_a, max_retries=0)
    conv = a.conversations.create(items=[{"role": "user", "content": "The code word is PLOVER."}])
    r = a.responses.create(model=UP, input="What is the code word?", conversation=conv.id, max_output_tokens=3,
                           temperature=0)
    alone = a.responses.create(model=UP, input="What is the code word?", max_output_tokens=3, temperature=0)
    assert r.conversation.id == conv.id and r.usage.input_tokens > alone.usage.input_tokens
    items = a.conversations.items.list(conv.id, order="asc").data
    assert [i.role for i in items] == ["user", "user", "assistant"] and items[2].content[0].text == r.output_text
    with pytest.raises(openai.BadRequestError) as err:  # the upstream's own errors come back as they are
        a.responses.create(model=UP, input="x", temperature=5)
    assert err.value.status_code == 400
