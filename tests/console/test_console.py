"""The web console in a real browser (Debian chromium + Playwright) against a real server.

One server for the module: the tests run in file order and build on each other (the job trained in
the second test is chatted with there; the last test switches the server to API keys).
"""

from __future__ import annotations

import json
import re

import pytest
from helpers import PERSONA, chat_lines, upload, write_jsonl

pytestmark = pytest.mark.e2e


def goto(page, fragment: str = "") -> None:
    page.goto(f"{page.server.root_url}/console/{fragment}")
    page.wait_for_selector("#main h1")


def test_root_redirects_and_a_broken_file_gets_a_line_level_report(console, tmp_path):
    console.goto(console.server.root_url + "/")
    assert console.url == console.server.root_url + "/console/"
    console.wait_for_selector("[data-testid=upload-input]")
    lines = [json.dumps(r, ensure_ascii=False) for r in chat_lines()]
    lines[2] = '{"messages": [ broken'
    lines[4] = json.dumps({"messages": [{"role": "user", "content": "hi"}]})
    bad = tmp_path / "broken.jsonl"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")

    console.set_input_files("[data-testid=upload-input]", str(bad))
    console.wait_for_selector("text=Detected OpenAI chat")
    console.select_option("[data-testid=check-model]", "tiny-chat")
    console.click("[data-testid=check-run]")
    report = console.wait_for_selector("[data-testid=check-report]")
    assert "This file has errors" in report.inner_text()
    broken = console.locator("[data-testid=issue-invalid_json]")
    assert "Lines: 3" in broken.inner_text() and "Line 3:" in broken.inner_text()
    assert broken.locator("[data-testid=snippet]").inner_text() == '{"messages": [ broken'
    missing = console.locator("[data-testid=issue-example_missing_assistant_message]")
    assert "Line 5:" in missing.inner_text() and '"content": "hi"' in missing.locator("[data-testid=snippet]").inner_text()
    assert console.locator("[data-testid=token-histogram] > div").count() >= 1
    assert "broken.jsonl" in console.locator("table").last.inner_text()  # the files list
    console.shot("data")


def test_a_custom_csv_is_mapped_converted_checked_and_saved(console, tmp_path):
    csv = tmp_path / "support.csv"
    csv.write_text("q_text,a_text,topic\n" + "".join(f"Question {i}?,Answer {i}.,t{i}\n" for i in range(12)),
                   encoding="utf-8")
    console.allow_status(400)  # the server cannot guess these columns: the page says so and asks for a map
    goto(console, "#/data")
    console.set_input_files("[data-testid=upload-input]", str(csv))
    error = console.wait_for_selector("#main .error-box")
    assert "could not recognise" in error.inner_text() and "q_text" in error.inner_text()
    console.get_by_label("user", exact=True).fill("q_text")
    console.get_by_label("assistant", exact=True).fill("a_text")
    console.click("[data-testid=map-apply]")
    console.wait_for_selector("text=Using the --map spec.")
    assert "Answer 0." in console.locator(".bubble").first.inner_text()
    console.click("[data-testid=convert-save]")
    saved = console.wait_for_selector("text=Saved 12 examples as training file support.jsonl")
    file_id = re.search(r"\((file-[\w]+)\)", saved.inner_text()).group(1)
    console.select_option("[data-testid=check-model]", "tiny-chat")
    console.click("[data-testid=check-run]")
    report = console.wait_for_selector("[data-testid=check-report]")
    assert "No errors: ready to train." in report.inner_text()
    rows = [json.loads(line) for line in console.server.client.files.content(file_id).text.splitlines()]
    assert rows[3]["messages"] == [{"role": "user", "content": "Question 3?"}, {"role": "assistant", "content": "Answer 3."}]
    console.shot("data-mapped")


def test_api_errors_are_shown_in_place(console):
    console.allow_status(404)
    goto(console, "#/job/ftjob-does-not-exist")
    assert console.locator("#main h1").inner_text() == "Job"
    assert "ftjob-does-not-exist" in console.locator("#main .error-box").inner_text()
    console.click("[data-testid=nav-finetune]")
    console.wait_for_selector("[data-testid=job-create]")  # the console still works


def test_job_from_the_form_with_a_live_loss_chart_then_chat_and_compare(console, tmp_path):
    client = console.server.client
    train = upload(client, write_jsonl(tmp_path / "persona.jsonl", chat_lines()))
    valid = upload(client, write_jsonl(tmp_path / "persona-valid.jsonl", chat_lines(PERSONA[:10])))
    goto(console, f"#/finetune?training_file={train}&model=tiny-chat")
    console.select_option("[data-testid=job-validation-file]", valid)
    console.fill("[data-testid=job-epochs]", "5")
    console.fill("[data-testid=job-batch-size]", "2")
    console.fill("[data-testid=job-lr]", "10")
    console.fill("[data-testid=job-suffix]", "console")
    console.fill("[data-testid=job-seed]", "42")
    console.click("[data-testid=job-estimate]")
    estimate = console.wait_for_selector("[data-testid=job-estimate-result] .note").inner_text()
    assert "12 valid examples · 5 epochs ·" in estimate
    # Record every size the chart is drawn at, to see it grow while the job runs.
    console.evaluate("""() => { window.chartSizes = [];
      new MutationObserver((records) => records.forEach((r) => window.chartSizes.push(Number(r.target.dataset.points))))
        .observe(document, { attributes: true, subtree: true, attributeFilter: ["data-points"] }); }""")
    console.click("[data-testid=job-create]")
    console.wait_for_url(re.compile(r".*#/job/ftjob-"))
    console.wait_for_selector("h1 .badge.succeeded", timeout=180_000)

    job_id = console.url.rsplit("/", 1)[-1]
    job = client.fine_tuning.jobs.retrieve(job_id)
    assert job.status == "succeeded" and job.fine_tuned_model.startswith("ft:tiny-chat:default:console:")
    assert job.hyperparameters.n_epochs == 5 and job.hyperparameters.batch_size == 2 and job.seed == 42
    metrics = [e.data for e in client.fine_tuning.jobs.list_events(job_id, limit=100) if e.type == "metrics"]
    drawn = sum(1 for m in metrics) + sum(1 for m in metrics if m.get("valid_loss") is not None) + \
        sum(1 for m in metrics if m.get("full_valid_loss") is not None)
    chart = console.locator("[data-testid=loss-chart]")
    assert int(chart.get_attribute("data-points")) == drawn and len(metrics) == 30
    sizes = console.evaluate("window.chartSizes")
    assert any(0 < s < drawn for s in sizes) and sizes[-1] == drawn  # drawn step by step, not once at the end
    assert chart.locator("path").count() == 3  # training, validation and full validation loss
    assert console.locator("[data-testid=ft-model]").inner_text() == job.fine_tuned_model
    assert "ckpt-step-30" in console.locator("text=ckpt-step-30").first.inner_text()
    console.shot("job")

    goto(console, "#/finetune")
    history = console.locator("table").inner_text()
    assert job_id in history and "succeeded" in history
    console.shot("finetune")

    goto(console, f"#/job/{job_id}")
    console.click("[data-testid=open-playground]")
    console.wait_for_selector("[data-testid=chat-input]")
    assert console.locator("[data-testid=model-select]").input_value() == job.fine_tuned_model
    console.fill("[data-testid=seed]", "7")
    console.get_by_label("Temperature").fill("0")
    console.get_by_label("Max tokens").fill("12")
    console.fill("[data-testid=chat-input]", "What is your name?")
    console.click("[data-testid=chat-send]")
    output = console.locator("[data-testid=chat-output]")
    output.locator(".msg.assistant[data-done]").first.wait_for()
    question = {"role": "user", "content": "What is your name?"}

    def api_answer(model, messages):  # what the SDK gets for the same request
        return client.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=12,
                                              seed=7).choices[0].message.content

    first = output.locator(".msg.assistant .content").first.text_content()
    assert first == api_answer(job.fine_tuned_model, [question])

    console.check("[data-testid=compare-toggle]")
    selects = console.locator("[data-testid=model-select]")
    assert selects.count() == 2
    selects.nth(1).select_option("tiny-chat")
    console.fill("[data-testid=chat-input]", "What is your name?")
    console.press("[data-testid=chat-input]", "Enter")  # the keyboard sends too
    console.wait_for_function("document.querySelectorAll('.msg.assistant[data-done]').length === 3")
    columns = output.locator(".chat-col")
    fine_tuned = columns.nth(0).locator(".msg.assistant .content").last.text_content()
    base = columns.nth(1).locator(".msg.assistant .content").last.text_content()
    assert fine_tuned == api_answer(job.fine_tuned_model, [question, {"role": "assistant", "content": first}, question])
    assert base == api_answer("tiny-chat", [question])
    for i in range(2):
        assert re.search(r"[\d.]+ tokens/s", columns.nth(i).locator("[data-testid=tps]").inner_text())
    with console.expect_download() as download:
        console.click("[data-testid=export-chat]")
    exported = json.loads(open(download.value.path(), encoding="utf-8").read())
    assert [c["model"] for c in exported["conversations"]] == [job.fine_tuned_model, "tiny-chat"]
    assert exported["conversations"][1]["messages"] == [question, {"role": "assistant", "content": base}]
    assert exported["settings"] == {"temperature": 0, "max_tokens": 12, "seed": 7, "json_mode": False}
    console.shot("playground")


def test_continue_from_a_checkpoint_then_pause_resume_and_cancel(console):
    client = console.server.client
    parent = next(j for j in client.fine_tuning.jobs.list() if j.status == "succeeded")
    checkpoint = f"{parent.fine_tuned_model}:ckpt-step-18"
    goto(console, f"#/job/{parent.id}")
    console.locator("[data-testid=continue-from][href*='ckpt-step-18']").click()
    console.wait_for_selector("[data-testid=job-create]")
    assert console.locator("[data-testid=job-model]").input_value() == checkpoint
    console.fill("[data-testid=job-epochs]", "25")
    console.fill("[data-testid=job-batch-size]", "2")
    console.click("[data-testid=job-create]")
    console.wait_for_url(re.compile(r".*#/job/ftjob-"))
    job_id = console.url.rsplit("/", 1)[-1]
    points = "Number(document.querySelector('[data-testid=loss-chart]')?.dataset.points || 0)"  # 0 until drawn
    console.wait_for_function(f"{points} > 0", timeout=60_000)
    console.click("[data-testid=job-pause]")
    console.wait_for_selector("h1 .badge.paused", timeout=60_000)
    paused_at = console.evaluate(points)
    console.click("[data-testid=job-resume]")
    console.wait_for_function(f"{points} > {paused_at}", timeout=60_000)  # training goes on from the saved state
    console.click("[data-testid=job-cancel]")
    console.wait_for_selector("h1 .badge.cancelled", timeout=60_000)
    job = client.fine_tuning.jobs.retrieve(job_id)
    assert job.status == "cancelled" and job.model == checkpoint
    messages = [e.message for e in client.fine_tuning.jobs.list_events(job_id, limit=100)]
    assert any("Resuming from step" in m for m in messages)


def test_switch_to_chinese_and_follow_the_browser_language(console, browser):
    goto(console, "#/data")
    assert console.locator("[data-testid=nav-data]").inner_text() == "Data"
    console.select_option("[data-testid=lang-switch]", "zh-CN")
    console.wait_for_function("document.documentElement.lang === 'zh-CN'")
    assert console.locator("[data-testid=nav-data]").inner_text() == "数据"
    assert console.locator("#main h1").inner_text() == "数据"
    console.shot("data-zh")
    for page in ("finetune", "playground", "evals", "knowledge", "models"):
        goto(console, f"#/{page}")
        console.shot(f"{page}-zh")
    console.reload()
    console.wait_for_selector("#main h1")
    assert console.locator("[data-testid=nav-playground]").inner_text() == "对话测试"  # the choice is remembered

    context = browser.new_context(locale="zh-CN")
    try:
        fresh = context.new_page()
        fresh.goto(console.server.root_url + "/console/#/finetune")
        fresh.wait_for_selector("#main h1")
        assert fresh.locator("#main h1").inner_text() == "微调"
    finally:
        context.close()


def test_knowledge_search_scores_and_nextchat_masks(console, tmp_path):
    goto(console, "#/knowledge")
    console.fill("[data-testid=store-name]", "handbook")
    console.get_by_role("button", name="Create").click()
    console.wait_for_selector("[data-testid=kb-upload]")
    doc = tmp_path / "handbook.md"
    doc.write_text("# Holidays\n\nEmployees get 25 days of paid holiday per year.\n\n# Office\n\n"
                   "The office opens at 9 am and closes at 6 pm.\n", encoding="utf-8")
    console.set_input_files("[data-testid=kb-upload]", str(doc))
    console.wait_for_selector(".badge.completed", timeout=60_000)
    console.fill("[data-testid=kb-query]", "how many holiday days")
    console.get_by_role("button", name="Search").click()
    results = console.wait_for_selector("[data-testid=kb-results]")
    text = results.inner_text()
    assert "25 days of paid holiday" in text and "hybrid" in text and "keyword" in text and "vector" in text
    scores = results.query_selector_all("tbody tr:first-child td.num")
    assert len(scores) == 3 and all(re.fullmatch(r"\d\.\d{3}", td.inner_text()) for td in scores)
    console.shot("knowledge")

    masks = tmp_path / "nextchat-masks.json"
    masks.write_text(json.dumps([{"id": "x1", "avatar": "1f916", "name": "Pirate", "lang": "en", "builtin": False,
                                  "createdAt": 0, "context": [
                                      {"id": "a", "date": "", "role": "system", "content": "Talk like a pirate."},
                                      {"id": "b", "date": "", "role": "user", "content": "Hello"},
                                      {"id": "c", "date": "", "role": "assistant", "content": "Ahoy!"}],
                                  "modelConfig": {"model": "tiny-chat", "temperature": 0.3, "max_tokens": 64}}]))
    goto(console, "#/models")
    console.set_input_files("[data-testid=mask-import]", str(masks))
    console.wait_for_selector("text=Imported 1 masks.")
    stored = console.server.client.get("/masks", cast_to=object)["data"][0]
    assert stored["system_prompt"] == "Talk like a pirate." and stored["settings"] == {"temperature": 0.3, "max_tokens": 64}
    assert stored["messages"] == [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Ahoy!"}]
    with console.expect_download() as download:
        console.click("[data-testid=mask-export]")
    exported = json.loads(open(download.value.path(), encoding="utf-8").read())
    assert exported[0]["name"] == "Pirate" and exported[0]["modelConfig"]["temperature"] == 0.3
    assert [c["role"] for c in exported[0]["context"]] == ["system", "user", "assistant"]
    assert "ft:tiny-chat:default:console:" in console.locator("table").first.inner_text()
    console.shot("models")


def test_evals_pass_rates_items_and_base_vs_fine_tune(console):
    client = console.server.client
    items = [{"question": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(6)]
    ev = client.evals.create(
        name="arith", data_source_config={"type": "custom", "item_schema": {
            "type": "object", "properties": {"question": {"type": "string"}, "answer": {"type": "string"}}},
            "include_sample_schema": True},
        testing_criteria=[{"type": "string_check", "name": "exact", "operation": "eq",
                           "input": "{{sample.output_text}}", "reference": "{{item.answer}}"},
                          {"type": "string_check", "name": "contains", "operation": "like",
                           "input": "{{sample.output_text}}", "reference": "{{item.answer}}"}])
    # Given samples (no generation): base is exact on even items and close on item 1; the fine-tune is exact
    # on all but item 5, where it still contains the answer. exact 3/6 → 5/6, contains 4/6 → 6/6.
    base_out = [it["answer"] if i % 2 == 0 else f"I think it is {it['answer']}" if i == 1 else "wrong"
                for i, it in enumerate(items)]
    tuned_out = [it["answer"] if i < 5 else f"The answer is {it['answer']}" for i, it in enumerate(items)]
    runs = {}
    for name, outputs in (("base", base_out), ("fine-tune", tuned_out)):
        content = [{"item": it, "sample": {"output_text": out, "model": "tiny-chat"}}
                   for it, out in zip(items, outputs, strict=True)]
        runs[name] = client.evals.runs.create(ev.id, name=name, data_source={
            "type": "jsonl", "source": {"type": "file_content", "content": content}}).id

    goto(console, "#/evals")
    assert console.locator("[data-testid=evals-page]").count() == 1
    console.get_by_role("link", name="arith").click()
    # The page follows the runs until both are graded.
    console.wait_for_function("document.querySelectorAll('[data-testid=runs-table] .badge.completed').length === 2",
                              timeout=60_000)
    base_row = console.locator(f"[data-testid=run-{runs['base']}]")
    assert base_row.locator("[data-testid=rate-exact]").inner_text().startswith("50.0%")
    assert base_row.locator("[data-testid=rate-contains]").inner_text().startswith("66.7%")
    tuned_row = console.locator(f"[data-testid=run-{runs['fine-tune']}]")
    assert tuned_row.locator("[data-testid=rate-exact]").inner_text().startswith("83.3%")
    assert tuned_row.locator("[data-testid=rate-contains]").inner_text().startswith("100.0%")
    console.shot("evals")

    base_row.get_by_role("link", name="base").click()
    console.wait_for_selector("[data-testid=items-table]")
    assert console.locator("[data-testid=item-row]").count() == 6
    assert "I think it is 2" in console.locator("[data-testid=items-table]").inner_text()
    console.get_by_label("Show").select_option("fail")
    console.wait_for_function("document.querySelectorAll('[data-testid=item-row]').length === 3")
    statuses = console.locator("[data-testid=item-row]").evaluate_all("rows => rows.map(r => r.dataset.status)")
    assert statuses == ["fail"] * 3
    assert console.locator("[data-testid=item-output]").all_inner_texts() == ["I think it is 2", "wrong", "wrong"]
    console.shot("evals-run")

    goto(console, f"#/evals/{ev.id}")
    console.get_by_label("Run A (e.g. base)").select_option(runs["base"])
    console.get_by_label("Run B (e.g. fine-tune)").select_option(runs["fine-tune"])
    console.click("[data-testid=compare-go]")
    console.wait_for_selector("[data-testid=compare-rates]")
    exact = console.locator("[data-testid=compare-exact]")
    assert exact.locator("[data-testid=rate-a]").inner_text().startswith("50.0%")
    assert exact.locator("[data-testid=rate-b]").inner_text().startswith("83.3%")
    assert exact.locator("[data-testid=delta]").inner_text() == "+33.3 pt"
    assert console.locator("[data-testid=changed-count]").inner_text() == "2 of 6 items changed status."
    console.check("[data-testid=only-changed]")
    changed = console.locator("[data-testid=compare-row]")
    assert changed.count() == 2 and changed.evaluate_all("rows => rows.map(r => r.className)") == ["better", "better"]
    assert "I think it is 2" in changed.nth(0).inner_text() and "What is 3 + 3?" in changed.nth(1).inner_text()
    console.shot("evals-compare")

    console.allow_status(404)
    goto(console, "#/evals/eval_does_not_exist")
    assert "eval_does_not_exist" in console.locator("#main .error-box").inner_text()


def test_sign_in_with_an_api_key_shows_the_project(console):
    from tuneforge.projects import create_key

    with console.server.app.state.tuneforge.db.session() as session:
        key, _ = create_key(session, "team-a")
    console.allow_status(401)  # the console asks /v1/me before it has a key
    goto(console, "")
    assert console.locator("#main h1").inner_text() == "Sign in"
    console.fill("[data-testid=key-input]", "sk-wrong")
    console.get_by_role("button", name="Sign in").click()
    console.wait_for_selector("#main .error-box")
    console.shot("signin-form")
    console.fill("[data-testid=key-input]", key)
    console.get_by_role("button", name="Sign in").click()
    console.wait_for_selector("text=Project: team-a")
    assert console.evaluate("sessionStorage.getItem('tuneforge.apiKey')") == key
    console.shot("signed-in")


def test_keys_are_created_shown_once_and_revoked_from_the_console(console):
    import httpx

    from tuneforge.projects import create_key

    with console.server.app.state.tuneforge.db.session() as session:
        key, _ = create_key(session, "team-b")
    console.allow_status(401)
    goto(console, "")
    console.fill("[data-testid=key-input]", key)
    console.get_by_role("button", name="Sign in").click()
    console.wait_for_selector("text=Project: team-b")
    goto(console, "#/models")
    console.wait_for_selector("[data-testid=keys-table]")
    assert console.locator("[data-testid=keys-table] tbody tr").count() == 1  # the key signed in with
    console.fill("[data-testid=key-name]", "ci runner")
    console.click("[data-testid=key-create]")
    new_key = console.locator("[data-testid=new-key]").inner_text().strip()
    console.wait_for_selector("[data-testid=keys-table] >> text=ci runner")
    assert httpx.get(console.server.base_url + "/models", headers={"Authorization": f"Bearer {new_key}"}).status_code == 200
    console.shot("keys")
    console.once("dialog", lambda dialog: dialog.accept())
    row = console.locator("[data-testid=keys-table] tbody tr", has_text="ci runner")
    row.get_by_role("button", name="Revoke").click()
    console.locator("[data-testid=keys-table] tbody tr", has_text="ci runner").get_by_text("revoked").wait_for()
    assert httpx.get(console.server.base_url + "/models", headers={"Authorization": f"Bearer {new_key}"}).status_code == 401
