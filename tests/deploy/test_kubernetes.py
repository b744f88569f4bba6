"""The Kubernetes manifests: they render, every object fits its schema, and
they agree with what the workers do (groups, topics, ports, shutdown grace).

Each test runs for the base and for the production overlay.
"""

from __future__ import annotations

import copy

import jsonschema
import kubernetes_validate
import pytest

from tests.deploy.tooling import (
    KUBERNETES_VERSION,
    KUSTOMIZATIONS,
    WORKERS,
    Object,
    container_env,
    keda_schema,
    of_kind,
    render,
    settings_from,
    worker_of,
)
from workers.app import Process

KEDA_API = "keda.sh/v1alpha1"

kustomizations = pytest.mark.parametrize("name", KUSTOMIZATIONS)


def _workers(name: str) -> dict[str, tuple[Object, Object, Object]]:
    """Per worker: its Deployment, PodDisruptionBudget and ScaledObject."""
    objects = render(name)
    deployments = of_kind(objects, "Deployment")
    budgets = of_kind(objects, "PodDisruptionBudget")
    scalers = {
        s["spec"]["scaleTargetRef"]["name"]: s
        for s in of_kind(objects, "ScaledObject").values()
    }

    return {
        worker_of(d): (d, budgets[d_name], scalers[d_name])
        for d_name, d in deployments.items()
    }


def _kubernetes_errors(obj: Object) -> str | None:
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return f"{error.json_path}: {error.message}"

    return None


def _keda_errors(obj: Object) -> list[str]:
    validator = jsonschema.Draft7Validator(keda_schema())

    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(obj)]


@kustomizations
def test_every_object_fits_the_kubernetes_schema(name: str) -> None:
    """kubernetes-validate, strict: unknown fields are errors too."""
    objects = [o for o in render(name) if o["apiVersion"] != KEDA_API]
    failures = {
        f"{o['kind']}/{o['metadata']['name']}": error
        for o in objects
        if (error := _kubernetes_errors(o))
    }

    assert {"ConfigMap", "Deployment", "PodDisruptionBudget"} <= {
        o["kind"] for o in objects
    }
    assert {} == failures


@kustomizations
def test_every_scaled_object_fits_kedas_crd_schema(name: str) -> None:
    scalers = of_kind(render(name), "ScaledObject")
    failures = {n: errors for n, s in scalers.items() if (errors := _keda_errors(s))}

    assert len(WORKERS) == len(scalers)
    assert {} == failures


def test_the_validators_reject_a_misspelt_field() -> None:
    """Guards the two checks above against passing everything."""
    objects = render("base")
    deployment = copy.deepcopy(next(iter(of_kind(objects, "Deployment").values())))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbes"] = {}
    scaler = copy.deepcopy(next(iter(of_kind(objects, "ScaledObject").values())))
    scaler["spec"]["maxReplicas"] = 6

    assert _kubernetes_errors(deployment) is not None
    assert _keda_errors(scaler) != []


@kustomizations
def test_each_worker_has_a_deployment_a_budget_and_a_scaler(name: str) -> None:
    workers = _workers(name)

    assert set(WORKERS) == set(workers)
    for deployment, budget, _ in workers.values():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = budget["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items()
        assert deployment["spec"]["selector"]["matchLabels"] == selector


@kustomizations
def test_consumer_groups_and_topics_are_the_ones_the_workers_use(name: str) -> None:
    """KEDA must watch the lag of the group the worker really joins."""
    objects = render(name)
    for worker, (deployment, _, scaler) in _workers(name).items():
        settings = settings_from(container_env(objects, deployment))
        triggers = scaler["spec"]["triggers"]

        assert {"kafka"} == {t["type"] for t in triggers}
        assert {settings.group(worker)} == {
            t["metadata"]["consumerGroup"] for t in triggers
        }
        assert sorted(Process.topics_of(settings, worker)) == sorted(
            t["metadata"]["topic"] for t in triggers
        )
        assert {settings.kafka_bootstrap_servers} == {
            t["metadata"]["bootstrapServers"] for t in triggers
        }


@kustomizations
def test_replicas_never_exceed_the_partitions(name: str) -> None:
    objects = render(name)
    for deployment, _, scaler in _workers(name).values():
        settings = settings_from(container_env(objects, deployment))
        spec = scaler["spec"]

        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        assert spec["maxReplicaCount"] <= settings.partitions
        assert "replicas" not in deployment["spec"]


@kustomizations
def test_pods_outlive_the_shutdown_grace(name: str) -> None:
    """SIGKILL must not come before the in-flight batches had their grace."""
    objects = render(name)
    for deployment, _, _ in _workers(name).values():
        settings = settings_from(container_env(objects, deployment))
        pod = deployment["spec"]["template"]["spec"]

        assert pod["terminationGracePeriodSeconds"] >= settings.shutdown_grace_s + 10


@kustomizations
def test_probes_and_scraping_use_the_http_port(name: str) -> None:
    objects = render(name)
    for deployment, _, _ in _workers(name).values():
        settings = settings_from(container_env(objects, deployment))
        template = deployment["spec"]["template"]
        (container,) = template["spec"]["containers"]
        probes = {
            kind: container[kind]["httpGet"]
            for kind in ("startupProbe", "livenessProbe", "readinessProbe")
        }

        assert "0.0.0.0" == settings.http_host
        assert {settings.http_port} == {p["port"] for p in probes.values()}
        assert "/readyz" == probes["readinessProbe"]["path"]
        assert "/healthz" == probes["livenessProbe"]["path"]
        assert [settings.http_port] == [p["containerPort"] for p in container["ports"]]
        annotations = template["metadata"]["annotations"]
        assert str(settings.http_port) == annotations["prometheus.io/port"]
        assert "/metrics" == annotations["prometheus.io/path"]
        assert "true" == annotations["prometheus.io/scrape"]


@kustomizations
def test_workers_run_unprivileged_on_a_read_only_root(name: str) -> None:
    for deployment, _, _ in _workers(name).values():
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        context = container["securityContext"]
        resources = container["resources"]

        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert ["ALL"] == context["capabilities"]["drop"]
        assert {"cpu", "memory"} <= resources["requests"].keys()
        assert {"cpu", "memory"} <= resources["limits"].keys()


def test_the_mongodb_uri_comes_from_a_secret_in_every_variant() -> None:
    """Only the base carries a (credential-free) Secret; production's is its own."""
    for name in KUSTOMIZATIONS:
        for deployment, _, _ in _workers(name).values():
            (container,) = deployment["spec"]["template"]["spec"]["containers"]
            (uri,) = [e for e in container["env"] if e["name"] == "COURIER_MONGODB_URI"]
            assert {"name": "courier-mongodb", "key": "uri"} == uri["valueFrom"][
                "secretKeyRef"
            ]

    assert ["courier-mongodb"] == list(of_kind(render("base"), "Secret"))
    assert {} == of_kind(render("overlays/production"), "Secret")
