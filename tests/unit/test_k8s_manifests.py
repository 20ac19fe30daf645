"""The example Kubernetes manifests (deploy/k8s/*.yaml) against the API models of the official `kubernetes`
Python client, offline: every field must exist in the schema (no typo or wrong nesting passes silently),
scalars must have the schema's type, and required fields must be there. The KubeRay RayCluster (a custom
resource the client does not know) has its pod templates checked the same way."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")
k8s = pytest.importorskip("kubernetes.client")

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
KINDS = {("v1", "Service"), ("v1", "PersistentVolumeClaim"), ("v1", "Secret"), ("v1", "ConfigMap"),
         ("apps/v1", "Deployment"), ("apps/v1", "StatefulSet")}
SCALARS = {"str": str, "int": int, "bool": bool, "float": (int, float)}


def _docs() -> list[tuple[str, dict]]:
    out = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc is not None:
                out.append((f"{path.name}:{doc.get('kind')}/{doc.get('metadata', {}).get('name')}", doc))
    return out


def check(value, type_name: str, where: str) -> list[str]:
    """Problems of ``value`` against the client's type string (``V1Container``, ``list[V1EnvVar]``, ...)."""
    if value is None:
        return []
    listed = re.fullmatch(r"(?:list|List)\[(.*)\]", type_name)  # the client's spelling changed across versions
    if listed:
        if not isinstance(value, list):
            return [f"{where}: expected a list"]
        return [p for i, item in enumerate(value) for p in check(item, listed.group(1), f"{where}[{i}]")]
    mapped = re.fullmatch(r"(?:dict\(str, (.*)\)|Dict\[str, (.*)\])", type_name)
    if mapped:
        if not isinstance(value, dict):
            return [f"{where}: expected a mapping"]
        inner = mapped.group(1) or mapped.group(2)
        return [p for k, item in value.items() for p in check(item, inner, f"{where}.{k}")]
    if type_name in SCALARS:
        ok = isinstance(value, SCALARS[type_name]) and not (type_name != "bool" and isinstance(value, bool))
        return [] if ok else [f"{where}: expected {type_name}, got {value!r}"]
    if type_name in ("object", "datetime"):  # int-or-string, free-form; set by the server
        return []
    model = getattr(k8s, type_name)
    if not isinstance(value, dict):
        return [f"{where}: expected a {type_name} mapping"]
    by_key = {key: attr for attr, key in model.attribute_map.items()}
    problems = [f"{where}.{key}: not a field of {type_name}" for key in value if key not in by_key]
    for key, item in value.items():
        if key in by_key:
            problems += check(item, model.openapi_types[by_key[key]], f"{where}.{key}")
    return problems


def required(value, type_name: str) -> None:
    """The client's models refuse a missing required field (``ValueError``) when built."""
    k8s.ApiClient()._ApiClient__deserialize(value, type_name)


MANIFESTS = _docs()


def test_there_are_manifests_for_tuneforge_postgres_ray_and_vllm():
    kinds = {(name.split(":")[0], doc["kind"]) for name, doc in MANIFESTS}
    assert {("tuneforge.yaml", "Deployment"), ("tuneforge.yaml", "PersistentVolumeClaim"),
            ("postgres.yaml", "StatefulSet"), ("raycluster.yaml", "RayCluster"), ("vllm.yaml", "Deployment")} <= kinds


@pytest.mark.parametrize("name,doc", MANIFESTS, ids=[m[0] for m in MANIFESTS])
def test_manifest_matches_the_kubernetes_schema(name, doc):
    if doc["kind"] == "RayCluster":
        assert doc["apiVersion"] == "ray.io/v1"
        spec = doc["spec"]
        problems = check(doc["metadata"], "V1ObjectMeta", "metadata")
        groups = [("headGroupSpec", spec["headGroupSpec"])]
        groups += [(f"workerGroupSpecs[{i}]", g) for i, g in enumerate(spec["workerGroupSpecs"])]
        for where, group in groups:
            problems += check(group["template"], "V1PodTemplateSpec", f"{where}.template")
            required(group["template"], "V1PodTemplateSpec")
            assert all(isinstance(v, str) for v in group["rayStartParams"].values())
        for group in spec["workerGroupSpecs"]:
            assert isinstance(group["groupName"], str)
            assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        assert problems == []
        return
    assert (doc["apiVersion"], doc["kind"]) in KINDS, f"{name}: add its kind to KINDS to check it"
    type_name = f"V1{doc['kind']}"
    assert check(doc, type_name, doc["kind"]) == []
    required(doc, type_name)


def test_selectors_match_their_pod_labels_and_services_find_pods():
    pods = []
    for name, doc in MANIFESTS:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert doc["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
            ports = {p["name"] for c in doc["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
            pods.append((labels, ports))
    for name, doc in MANIFESTS:
        if doc["kind"] == "Service":
            selector = doc["spec"]["selector"]
            matching = [ports for labels, ports in pods if selector.items() <= labels.items()]
            assert matching, f"{name}: selects no pod"
            assert all(p["targetPort"] in matching[0] for p in doc["spec"]["ports"]), name


def test_the_tuneforge_deployment_sets_only_real_settings():
    from tuneforge.settings import Settings

    doc = next(d for n, d in MANIFESTS if n.startswith("tuneforge.yaml:Deployment"))
    container = doc["spec"]["template"]["spec"]["containers"][0]
    names = {e["name"] for e in container["env"]}
    fields = {f"TUNEFORGE_{f.upper()}" for f in Settings.model_fields}
    assert names <= fields, names - fields
    assert container["args"][0] == "serve"
    claims = {v["persistentVolumeClaim"]["claimName"] for v in doc["spec"]["template"]["spec"]["volumes"]}
    pvcs = {d["metadata"]["name"]: d for _, d in MANIFESTS if d["kind"] == "PersistentVolumeClaim"}
    assert claims <= pvcs.keys() and all("ReadWriteMany" in pvcs[c]["spec"]["accessModes"] for c in claims)
