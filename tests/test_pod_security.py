"""Model pods are hardened: restricted Pod Security, read-only root with writable
emptyDirs where vLLM writes, no API token; the serving namespace enforces restricted."""

from __future__ import annotations

from typing import Any

from tests.harness import find_all, typed_config
from tests.test_vllm import REGION, STARTUP
from tests.test_vllm import _model as model_config
from tools.mock_runtime import Recorded
from workloads.serving.config import ServingConfig
from workloads.serving.pod_security import (
    HOME,
    RUN_AS_USER,
    TMP,
    container_security_context,
    namespace_labels,
    pod_security_context,
)
from workloads.serving.vllm import render_deployment

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
DAEMON_SET = "kubernetes:apps/v1:DaemonSet"
NAMESPACE = "kubernetes:core/v1:Namespace"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"


def _pod() -> dict[str, Any]:
    model = model_config(tensorParallelSize=2)
    spec: dict[str, Any] = render_deployment(
        model, ServingConfig(), "b", "vllm-m", STARTUP, region=REGION
    )["spec"]
    return spec["template"]["spec"]


def test_pod_runs_as_a_non_root_uid_with_the_runtime_seccomp_profile() -> None:
    assert _pod()["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "fsGroup": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert RUN_AS_USER != 0


def test_every_container_init_included_is_locked_down() -> None:
    pod = _pod()
    containers = pod["initContainers"] + pod["containers"]
    assert [c["name"] for c in containers] == ["weights", "vllm"]
    for c in containers:
        assert c["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
        }, c["name"]


def test_vllm_writes_only_to_its_emptydirs() -> None:
    pod = _pod()
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["home"] == {"name": "home", "emptyDir": {"sizeLimit": "20Gi"}}
    assert volumes["tmp"] == {"name": "tmp", "emptyDir": {"sizeLimit": "10Gi"}}
    assert volumes["shm"]["emptyDir"]["medium"] == "Memory"  # tensor parallel 2
    for c in pod["initContainers"] + pod["containers"]:
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        assert (mounts[HOME], mounts[TMP]) == ("home", "tmp"), c["name"]
        env = {e["name"]: e.get("value") for e in c["env"]}
        # Every ~ cache (vLLM, HF, Triton, FlashInfer, outlines, CUDA) follows HOME;
        # TorchInductor's getpass.getuser() needs USER for a uid without passwd entry.
        assert (env["HOME"], env["USER"]) == (HOME, "vllm"), c["name"]
    assert TMP == "/tmp" and HOME.startswith("/home/")


def test_no_kubernetes_api_token_is_mounted() -> None:
    assert _pod()["automountServiceAccountToken"] is False


def test_namespace_labels_enforce_restricted_at_the_cluster_minor() -> None:
    assert namespace_labels("1.31") == {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "v1.31",
        "pod-security.kubernetes.io/audit": "restricted",
        "pod-security.kubernetes.io/audit-version": "v1.31",
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/warn-version": "v1.31",
    }


def test_rendered_stack_hardens_its_model_pods(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    cfg = typed_config(fixture_stack)
    (namespace,) = [
        n
        for n in find_all(fixture_resources, NAMESPACE)
        if n.inputs["metadata"]["name"] == cfg.serving.namespace
    ]
    assert namespace.inputs["metadata"]["labels"] == namespace_labels(cfg.cluster.version)
    workloads = [
        w
        for kind in (DEPLOYMENT, DAEMON_SET)
        for w in find_all(fixture_resources, kind)
        if w.inputs["metadata"]["namespace"] == cfg.serving.namespace
    ]
    models = [w for w in workloads if w.name.startswith("model-")]
    assert len(models) == len(cfg.enabled_models) > 0
    # Model pods, the image pre-pull and warm-slot placeholders: all pass restricted.
    for w in workloads:
        pod = w.inputs["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False, w.name
        assert pod["securityContext"] == pod_security_context(), w.name
        for c in pod.get("initContainers", []) + pod["containers"]:
            assert c["securityContext"] == container_security_context(), (w.name, c["name"])
    accounts = [
        a
        for a in find_all(fixture_resources, SERVICE_ACCOUNT)
        if a.inputs["metadata"]["namespace"] == cfg.serving.namespace
    ]
    assert accounts and all(a.inputs["automountServiceAccountToken"] is False for a in accounts)
