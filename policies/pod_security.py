"""GPU pod hardening rules: the restricted Pod Security Standard, a read-only root
filesystem, no Kubernetes API token, images pinned by digest, and a namespace that
enforces the restricted level.

The restricted profile's controls are the ones of
https://kubernetes.io/docs/concepts/security/pod-security-standards/ (host namespaces,
privileged, capabilities, volume types, host ports, seccomp, privilege escalation,
non-root); every container counts, init containers included. A Deployment is checked
when one of its containers uses GPUs (``policies.workloads``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from policies.core import Props, Resource, ResourceRule, Settings, StackRule, at, items
from policies.workloads import DEPLOYMENT, POD, gpu_containers

NAMESPACE = "kubernetes:core/v1:Namespace"
ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
RESTRICTED_VOLUME_TYPES = (
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
)
SECCOMP_TYPES = ("RuntimeDefault", "Localhost")
ADDABLE_CAPABILITIES = ("NET_BIND_SERVICE",)
_KINDS = (("initContainers", "initContainers"), ("containers", "containers"))


def _all_containers(props: Props) -> list[tuple[str, dict[str, Any]]]:
    """``(label, container)`` of every container and init container of the pod."""
    return [
        (f"spec.template.spec.{key}[{i}] ({at(c, 'name')})", c)
        for key, _ in _KINDS
        for i, c in enumerate(items(props, *POD, key))
    ]


def _pod_problems(props: Props) -> list[str]:
    pod = at(props, *POD) or {}
    problems = [
        f"spec.template.spec.{key} is true: shares the node's namespaces"
        for key in ("hostNetwork", "hostPID", "hostIPC")
        if at(pod, key) is True
    ]
    for i, volume in enumerate(items(props, *POD, "volumes")):
        kinds = [k for k in volume if k != "name"]
        bad = [k for k in kinds if k not in RESTRICTED_VOLUME_TYPES]
        if bad:
            problems.append(
                f"spec.template.spec.volumes[{i}] ({at(volume, 'name')}) is a {bad[0]} "
                f"volume; allowed: {', '.join(RESTRICTED_VOLUME_TYPES)}"
            )
    return problems


def _container_problems(pod: Any, label: str, c: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    sc = at(c, "securityContext") or {}
    if at(sc, "privileged") is True:
        problems.append(f"{label}: securityContext.privileged is true")
    if at(sc, "allowPrivilegeEscalation") is not False:
        problems.append(f"{label}: securityContext.allowPrivilegeEscalation is not false")
    drop = [str(x) for x in items(sc, "capabilities", "drop")]
    if "ALL" not in drop:
        problems.append(f'{label}: securityContext.capabilities.drop does not include "ALL"')
    added = [str(x) for x in items(sc, "capabilities", "add") if x not in ADDABLE_CAPABILITIES]
    if added:
        problems.append(
            f"{label}: securityContext.capabilities.add has {', '.join(added)} "
            f"(only {', '.join(ADDABLE_CAPABILITIES)} allowed)"
        )
    non_root = at(sc, "runAsNonRoot")
    if non_root is False or (
        non_root is None and at(pod, "securityContext", "runAsNonRoot") is not True
    ):
        problems.append(f"{label}: runAsNonRoot is not true (container or pod securityContext)")
    user = at(sc, "runAsUser")
    user = user if user is not None else at(pod, "securityContext", "runAsUser")
    if user is not None and int(user) == 0:
        problems.append(f"{label}: runAsUser is 0 (root)")
    seccomp = at(sc, "seccompProfile", "type") or at(
        pod, "securityContext", "seccompProfile", "type"
    )
    if seccomp not in SECCOMP_TYPES:
        problems.append(
            f"{label}: seccompProfile.type is {seccomp or 'not set'} (container or pod); "
            f"allowed: {', '.join(SECCOMP_TYPES)}"
        )
    problems += [
        f"{label}: ports[{i}] sets hostPort {at(p, 'hostPort')}"
        for i, p in enumerate(items(c, "ports"))
        if at(p, "hostPort")
    ]
    return problems


def check_restricted(_t: str, props: Props, _s: Settings) -> list[str] | None:
    if not gpu_containers(props):
        return None
    pod = at(props, *POD) or {}
    problems = _pod_problems(props)
    for label, c in _all_containers(props):
        problems += _container_problems(pod, label, c)
    return problems


def check_read_only_root(_t: str, props: Props, _s: Settings) -> list[str] | None:
    if not gpu_containers(props):
        return None
    return [
        f"{label}: securityContext.readOnlyRootFilesystem is not true"
        for label, c in _all_containers(props)
        if at(c, "securityContext", "readOnlyRootFilesystem") is not True
    ]


def check_no_api_token(_t: str, props: Props, _s: Settings) -> list[str] | None:
    if not gpu_containers(props):
        return None
    if at(props, *POD, "automountServiceAccountToken") is False:
        return []
    return [
        "spec.template.spec.automountServiceAccountToken is not false: the pod gets a "
        "Kubernetes API token it does not use (EKS Pod Identity projects its own)"
    ]


def check_image_digest(_t: str, props: Props, settings: Settings) -> list[str] | None:
    if not gpu_containers(props):
        return None
    if not settings["requireImageDigest"]:
        return []
    return [
        f"{label}: image {at(c, 'image')} is not pinned by digest (<image>:<tag>@sha256:<digest>)"
        for label, c in _all_containers(props)
        if "@sha256:" not in str(at(c, "image"))
    ]


def check_namespace_enforces(resources: Sequence[Resource], _s: Settings) -> list[str]:
    """Every namespace with GPU Deployments enforces the restricted level."""
    labels = {
        str(at(r.props, "metadata", "name")): at(r.props, "metadata", "labels") or {}
        for r in resources
        if r.type == NAMESPACE
    }
    wanted = sorted(
        {
            str(at(r.props, "metadata", "namespace") or "default")
            for r in resources
            if r.type == DEPLOYMENT and gpu_containers(r.props)
        }
    )
    problems = []
    for namespace in wanted:
        if namespace not in labels:
            problems.append(
                f"namespace {namespace} (GPU Deployments) is not created by the stack: its "
                f"{ENFORCE_LABEL} label cannot be verified"
            )
        elif labels[namespace].get(ENFORCE_LABEL) != "restricted":
            problems.append(
                f"namespace {namespace} (GPU Deployments): label {ENFORCE_LABEL} = "
                f"{labels[namespace].get(ENFORCE_LABEL) or '(not set)'}; must be restricted"
            )
    return problems


def _rule(name: str, description: str, check: Any, **settings: Any) -> ResourceRule:
    return ResourceRule(
        name=name,
        description=description,
        default_level="mandatory",
        settings=settings,
        types=frozenset({DEPLOYMENT}),
        check=check,
    )


RULES = (
    _rule(
        "gpu-pod-restricted-pod-security",
        "Pods with GPU containers pass the restricted Pod Security Standard (every "
        "container, init containers too).",
        check_restricted,
    ),
    _rule(
        "gpu-container-read-only-root-filesystem",
        "Every container of a GPU pod has a read-only root filesystem.",
        check_read_only_root,
    ),
    _rule(
        "gpu-pod-no-api-token",
        "GPU pods do not mount a Kubernetes API token (automountServiceAccountToken false).",
        check_no_api_token,
    ),
    _rule(
        "gpu-container-image-pinned-by-digest",
        "Every image of a GPU pod is pinned by digest next to its tag (where the "
        "environment requires it).",
        check_image_digest,
        requireImageDigest={"type": "boolean"},
    ),
    StackRule(
        name="gpu-namespace-enforces-restricted",
        description="Namespaces running GPU Deployments enforce the restricted Pod "
        "Security Standard.",
        default_level="mandatory",
        types=frozenset({DEPLOYMENT, NAMESPACE}),
        check=check_namespace_enforces,
    ),
)
