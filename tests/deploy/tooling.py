"""Where the deployment checks find their tools and schemas, and how they read
the rendered manifests.

kustomize and the compose and KEDA schemas come from ``deploy/tools.sh``
(``make deploy-tools``; ``make test`` runs it), hadolint and the Kubernetes
schemas from the dev extras in the virtual environment. A missing one fails
the test that needs it with the command that installs it: these checks never
skip.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from workers.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / ".local"
KUSTOMIZE = LOCAL / "bin" / "kustomize"
COMPOSE_SCHEMA = LOCAL / "schemas" / "compose-spec.json"
KEDA_CRD = LOCAL / "schemas" / "keda.sh_scaledobjects.yaml"
HADOLINT = Path(sys.executable).parent / "hadolint"

DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
COMPOSE_FILE = ROOT / "deploy" / "docker" / "compose.yaml"
DOCKERIGNORE = ROOT / ".dockerignore"
K8S = ROOT / "deploy" / "k8s"
KUSTOMIZATIONS = ("base", "overlays/production")

KUBERNETES_VERSION = "1.33"
"""The oldest Kubernetes release the manifests promise to fit."""

WORKERS = ("directory", "status", "enrichment")

Object = dict[str, Any]


def require(path: Path, installer: str) -> Path:
    """``path``, or a test failure that names the command that makes it."""
    if not path.exists():
        pytest.fail(
            f"{path.relative_to(ROOT)} is missing: run `{installer}` "
            "(`make test` does it too).",
            pytrace=False,
        )

    return path


@functools.cache
def render(kustomization: str) -> tuple[Object, ...]:
    """Every object ``kustomize build`` renders from ``deploy/k8s/<name>``."""
    kustomize = require(KUSTOMIZE, "make deploy-tools")
    done = subprocess.run(
        [str(kustomize), "build", str(K8S / kustomization)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        pytest.fail(
            f"kustomize build deploy/k8s/{kustomization} failed:\n{done.stderr}",
            pytrace=False,
        )

    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def of_kind(objects: tuple[Object, ...], kind: str) -> dict[str, Object]:
    """The objects of one kind, by name."""
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def worker_of(deployment: Object) -> str:
    """The worker a Deployment runs: the first argument to `courier run`."""
    name: str = deployment["spec"]["template"]["spec"]["containers"][0]["args"][0]
    return name


def container_env(objects: tuple[Object, ...], deployment: Object) -> dict[str, str]:
    """The literal COURIER_* variables the worker container starts with."""
    maps = of_kind(objects, "ConfigMap")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(maps[source["configMapRef"]["name"]]["data"])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]

    return env


class _Given(Settings):
    """Settings from the given values alone, not from this test's environment."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def settings_from(env: dict[str, str]) -> Settings:
    """The Settings a worker builds from these variables (and no others)."""
    fields = {
        key.removeprefix("COURIER_").lower(): value
        for key, value in env.items()
        if key.startswith("COURIER_")
    }

    return _Given.model_validate(fields)


@functools.cache
def keda_schema() -> Object:
    """KEDA's ScaledObject schema, with every object closed to unknown fields.

    The API server silently drops a field that a CRD's schema does not know,
    so the schema leaves them open; closed, a misspelt field fails here
    instead of vanishing in the cluster.
    """
    crd = yaml.safe_load(require(KEDA_CRD, "make deploy-tools").read_text())
    (version,) = (v for v in crd["spec"]["versions"] if v["storage"])
    schema: Object = version["schema"]["openAPIV3Schema"]

    return _closed(schema)


def _closed(schema: Object) -> Object:
    closed = dict(schema)
    if "properties" in schema:
        closed["properties"] = {
            name: _closed(sub) for name, sub in schema["properties"].items()
        }
        closed.setdefault("additionalProperties", False)
    if isinstance(schema.get("additionalProperties"), dict):
        closed["additionalProperties"] = _closed(schema["additionalProperties"])
    if isinstance(schema.get("items"), dict):
        closed["items"] = _closed(schema["items"])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in schema:
            closed[key] = [_closed(sub) for sub in schema[key]]

    return closed


@functools.cache
def compose_schema() -> Object:
    """The Compose Specification's JSON schema, as compose-go ships it."""
    path = require(COMPOSE_SCHEMA, "make deploy-tools")
    schema: Object = json.loads(path.read_text())

    return schema
