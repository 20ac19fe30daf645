"""`tuneforge migrate openai` end to end: a second real tuneforge server plays the provider (OpenAI).

On the provider: files uploaded, a supervised and a DPO job run to success (tiny model), one job
cancelled. Then the CLI lists, dry-runs, migrates (files copied, jobs recreated on another base model,
compared through the local server's upstream gateway) and a re-run skips what is already home.
"""

from __future__ import annotations

import json

import openai
import pytest
from helpers import PERSONA, chat_lines, dpo_lines, register_tiny, upload, wait_for, write_jsonl
from typer.testing import CliRunner

from tuneforge.cli.main import app
from tuneforge.training import migrate as mig

SFT_HP = {"n_epochs": 1, "batch_size": 4, "learning_rate_multiplier": 10}
DPO_HP = {"n_epochs": 1, "batch_size": 4, "beta": 0.5}


@pytest.fixture
def local_server(make_settings, live_server, tiny_model_dir, tmp_path, tiny_server):
    """The user's own tuneforge: ``tiny-local`` as the open base model, and the provider's ft: models
    reachable through its upstream gateway (as OpenAI's would be with TUNEFORGE_UPSTREAMS)."""
    _, provider = tiny_server
    upstreams = [{"name": "openai", "models": ["ft:tiny-chat:*"], "base_url": provider.base_url,
                  "api_key": "sk-provider"}]
    settings = make_settings(data_dir=tmp_path / "local-data", worker_poll_s=0.2, train_threads=1,
                             upstreams=json.dumps(upstreams), upstream_timeout_s=60)
    with live_server(settings) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-local", max_retries=0)
        register_tiny(client, tiny_model_dir, name="tiny-local")
        yield client, server


def _provider_jobs(client, tmp_path) -> tuple:
    train = upload(client, write_jsonl(tmp_path / "train.jsonl", chat_lines()))
    valid = upload(client, write_jsonl(tmp_path / "valid.jsonl", chat_lines(PERSONA[:10])))
    prefs = upload(client, write_jsonl(tmp_path / "prefs.jsonl", dpo_lines()))
    sft = client.fine_tuning.jobs.create(model="tiny-chat", training_file=train, validation_file=valid,
                                         suffix="persona", seed=7, metadata={"team": "a"},
                                         method={"type": "supervised", "supervised": {"hyperparameters": SFT_HP}})
    dpo = client.fine_tuning.jobs.create(model="tiny-chat", training_file=prefs, suffix="prefs", seed=8,
                                         method={"type": "dpo", "dpo": {"hyperparameters": DPO_HP}})
    dropped = client.fine_tuning.jobs.create(model="tiny-chat", training_file=train, suffix="dropped")
    client.fine_tuning.jobs.cancel(dropped.id)
    sft, dpo = wait_for(client, sft.id, timeout=120), wait_for(client, dpo.id, timeout=120)
    assert sft.status == dpo.status == "succeeded", (sft.error, dpo.error)
    return sft, dpo, dropped


def _migrate(server_url: str, provider_url: str, *args: str):
    result = CliRunner().invoke(app, ["migrate", "openai", "--base-model", "tiny-local", "--json",
                                      "--provider-base-url", provider_url, "--provider-api-key", "sk-provider",
                                      "--base-url", server_url, "--api-key", "sk-local", *args])
    return result, (json.loads(result.stdout) if result.stdout.strip().startswith("{") else None)


def test_migrate_openai_jobs_home(tiny_server, local_server, tmp_path):
    provider, provider_server = tiny_server
    local, local_srv = local_server
    sft, dpo, dropped = _provider_jobs(provider, tmp_path)

    # --dry-run: both succeeded jobs planned (oldest first), the cancelled one not listed, nothing created
    result, out = _migrate(local_srv.base_url, provider_server.base_url, "--dry-run")
    assert result.exit_code == 0, result.output
    assert out["dry_run"] is True
    assert [(j["source_job"], j["action"], j["method"]) for j in out["jobs"]] == [
        (sft.id, "create", "supervised"), (dpo.id, "create", "dpo")]
    assert out["jobs"][0]["hyperparameters"] == SFT_HP and out["jobs"][1]["hyperparameters"] == {
        "n_epochs": 1, "batch_size": 4, "learning_rate_multiplier": 1.0, "beta": 0.5}  # resolved "auto"
    assert list(local.fine_tuning.jobs.list()) == [] and list(local.files.list()) == []

    # the migration, waiting for the local jobs and comparing old and new models on the validation file
    result, out = _migrate(local_srv.base_url, provider_server.base_url, "--compare", "--max-tokens", "8")
    assert result.exit_code == 0, result.output
    plans = {j["source_job"]: j for j in out["jobs"]}
    assert set(plans) == {sft.id, dpo.id} and all(j["action"] == "created" for j in plans.values())
    for source in (sft, dpo):
        plan = plans[source.id]
        job = local.fine_tuning.jobs.retrieve(plan["local_job"])
        assert job.status == "succeeded", job.error
        assert job.model == "tiny-local" and job.user_provided_suffix == source.user_provided_suffix
        assert job.seed == source.seed and job.method.type == source.method.type
        assert job.fine_tuned_model == plan["local_model"]
        assert job.fine_tuned_model.startswith(f"ft:tiny-local:default:{source.user_provided_suffix}:")
        assert job.metadata[mig.SOURCE_JOB_KEY] == source.id
        assert job.metadata[mig.SOURCE_MODEL_KEY] == source.fine_tuned_model
        assert job.metadata[mig.SOURCE_BASE_KEY] == "tiny-chat"
        for src_file, dst_file in ((source.training_file, job.training_file),
                                   (source.validation_file, job.validation_file)):
            if src_file is None:
                assert dst_file is None
                continue
            assert provider.files.content(src_file).read() == local.files.content(dst_file).read()
            assert local.files.retrieve(dst_file).purpose == "fine-tune"
    local_sft = local.fine_tuning.jobs.retrieve(plans[sft.id]["local_job"])
    assert local_sft.metadata["team"] == "a"  # the job's own metadata travels too
    assert local_sft.method.supervised.hyperparameters.model_dump(exclude_none=True) == SFT_HP
    local_dpo = local.fine_tuning.jobs.retrieve(plans[dpo.id]["local_job"])
    assert local_dpo.method.dpo.hyperparameters.beta == 0.5 and local_dpo.hyperparameters.n_epochs == 1

    # --compare ran `eval compare`: A = the provider's model (through the upstream gateway), B = the new one
    comparison = plans[sft.id]["comparison"]
    assert comparison["model_a"] == sft.fine_tuned_model and comparison["model_b"] == local_sft.fine_tuned_model
    assert comparison["n"] == 10 and 0 <= comparison["mean_a"] <= 1 and "verdict" in comparison
    assert all(r.status == "completed" for r in local.evals.runs.list(comparison["eval_id"]))
    assert "not compared" in plans[dpo.id]["comparison"]["error"]

    # a re-run skips both (found through the metadata) and creates nothing
    files_before = len(list(local.files.list()))
    result, out = _migrate(local_srv.base_url, provider_server.base_url)
    assert result.exit_code == 0, result.output
    assert [(j["action"], j["local_job"]) for j in out["jobs"]] == [
        ("skip", plans[sft.id]["local_job"]), ("skip", plans[dpo.id]["local_job"])]
    assert "already migrated" in out["jobs"][0]["reason"]
    assert len(list(local.fine_tuning.jobs.list())) == 2 and len(list(local.files.list())) == files_before

    # an explicitly named job is taken whatever its status; the readable table on stdout
    result = CliRunner().invoke(app, ["migrate", "openai", "-m", "tiny-local", "--dry-run", "--job", dropped.id,
                                      "--provider-base-url", provider_server.base_url, "--base-url",
                                      local_srv.base_url])
    assert result.exit_code == 0, result.output
    assert "1 provider job(s): 1 to create (dry run: nothing created)" in result.stdout
    result, out = _migrate(local_srv.base_url, provider_server.base_url, "--dry-run", "--job", dropped.id)
    assert [(j["source_job"], j["source_status"], j["action"]) for j in out["jobs"]] == [
        (dropped.id, "cancelled", "create")]


def test_unknown_base_model_copies_nothing(tiny_server, local_server, tmp_path):
    provider, provider_server = tiny_server
    local, local_srv = local_server
    upload(provider, write_jsonl(tmp_path / "train.jsonl", chat_lines()))
    result = CliRunner().invoke(app, ["migrate", "openai", "-m", "no-such-model", "--provider-base-url",
                                      provider_server.base_url, "--base-url", local_srv.base_url])
    assert result.exit_code == 1 and "no-such-model" in result.output
    assert list(local.files.list()) == []
    same = CliRunner().invoke(app, ["migrate", "openai", "-m", "tiny-local", "--provider-base-url",
                                    local_srv.base_url, "--base-url", local_srv.base_url])
    assert same.exit_code == 1 and "same URL" in same.output


def test_plan_and_provider_resolution():
    job = {"id": "ftjob-r", "status": "succeeded", "model": "o4-mini", "fine_tuned_model": "ft:o4-mini:org::x",
           "training_file": "file-a", "method": {"type": "reinforcement", "reinforcement": {}}}
    plan = mig.plan_job(job)
    assert plan.action == "skip" and "reinforcement" in plan.reason and "not supported" in plan.reason
    legacy = {"id": "ftjob-l", "status": "succeeded", "model": "gpt-3.5-turbo", "training_file": "file-a",
              "hyperparameters": {"n_epochs": 3, "batch_size": "auto", "learning_rate_multiplier": 2},
              "metadata": {f"k{i}": "v" for i in range(16)}}
    plan = mig.plan_job(legacy, existing={"ftjob-x": {"id": "ftjob-local"}})
    assert plan.action == "create" and plan.method == "supervised"
    assert plan.hyperparameters == {"n_epochs": 3, "batch_size": "auto", "learning_rate_multiplier": 2}
    assert len(plan.metadata) == 15 and plan.metadata[mig.SOURCE_JOB_KEY] == "ftjob-l"  # 16 max, no ft: model yet
    assert mig.plan_job(legacy, keep_hyperparameters=False).hyperparameters == {}
    done = mig.plan_job(legacy, existing={"ftjob-l": {"id": "ftjob-local", "status": "running"}})
    assert done.action == "skip" and done.local_job == "ftjob-local"

    upstreams = json.dumps([{"name": "acme", "models": ["x-*"], "base_url": "https://acme/v1", "api_key": "k1"},
                            {"name": "openai", "models": ["gpt-*"], "base_url": "https://proxy/v1",
                             "api_key_env": "MY_KEY"}])
    env = {"OPENAI_API_KEY": "k-env", "MY_KEY": "k2", "TUNEFORGE_UPSTREAMS": upstreams}
    assert mig.resolve_provider(environ=env).base_url == "https://proxy/v1"
    acme = mig.resolve_provider(upstream="acme", environ=env)
    assert (acme.base_url, acme.api_key) == ("https://acme/v1", "k1") and "k1" not in repr(acme)
    plain = mig.resolve_provider(environ={"OPENAI_API_KEY": "k-env"})
    assert (plain.base_url, plain.api_key) == ("https://api.openai.com/v1", "k-env")
    assert mig.resolve_provider("http://p/v1", "k", environ={}).base_url == "http://p/v1"
    with pytest.raises(mig.MigrationError, match="OPENAI_API_KEY"):
        mig.resolve_provider(environ={})
    with pytest.raises(mig.MigrationError, match="acme, openai"):
        mig.resolve_provider(upstream="nope", environ=env)


def test_files_dir_copies_and_refused_downloads(tiny_server, tmp_path):
    client, _ = tiny_server  # one server plays both sides: this is about the copying only
    file_id = upload(client, write_jsonl(tmp_path / "train.jsonl", chat_lines()))
    saved = tmp_path / "saved"
    saved.mkdir()
    write_jsonl(saved / "train.jsonl", chat_lines(PERSONA[:10]))  # the user's own copy, by file name
    copier = mig.FileCopier(client, client, files_dir=saved, keep=True)
    local_id, digest = copier.copy(file_id)
    assert client.files.content(local_id).read() == (saved / "train.jsonl").read_bytes() == copier.kept[file_id]
    assert copier.copy(file_id) == (local_id, digest)  # copied once
    with pytest.raises(mig.MigrationError, match="refused file file-nope.*--files-dir"):
        mig.FileCopier(client, client).copy("file-nope")
