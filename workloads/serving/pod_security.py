"""Hardening of the model pods: the restricted Pod Security Standard, a read-only root
filesystem with writable emptyDirs where vLLM writes, and no Kubernetes API token.

Kept apart from the Deployment renderer (``workloads.serving.vllm``) so other volumes
(a compile cache, for one) are added next to these without touching them.

What the image needs, from its upstream source (``docker/Dockerfile`` and
``vllm/envs.py`` in vllm-project/vllm):

- The ``vllm-openai`` image has no ``USER``: it runs as root with ``HOME=/root`` and
  ``WORKDIR /vllm-workspace``. Any non-root uid works once ``HOME`` points at a writable
  directory, so the pod picks a uid and gives it a home of its own.
- Everything vLLM and its libraries write by default lives under ``HOME`` or the temp
  directory: ``VLLM_CACHE_ROOT`` (``~/.cache/vllm``: torch.compile artefacts, assets),
  ``VLLM_CONFIG_ROOT`` (``~/.config/vllm``: usage stats), the Hugging Face cache
  (``~/.cache/huggingface``: tokenizer files), Triton's kernel cache (``~/.triton``),
  FlashInfer's JIT cache (``~/.cache/flashinfer``), outlines' cache
  (``~/.cache/outlines``), the CUDA JIT cache (``~/.nv``); TorchInductor's cache
  (``/tmp/torchinductor_<user>``), the engine's IPC sockets (``VLLM_RPC_BASE_PATH``,
  ``tempfile.gettempdir()``) and Python's temp files under ``/tmp``. Hence two
  emptyDirs: ``HOME`` and ``/tmp``.
- TorchInductor names its cache after ``getpass.getuser()``, which raises for a uid
  without a passwd entry unless ``USER`` (or ``LOGNAME``) is set: ``USER`` is set.

Service-account token: the model server and the weights gate never call the Kubernetes
API, so the API token is not mounted. EKS Pod Identity keeps working: its webhook adds
its own projected token volume (audience ``pods.eks.amazonaws.com``) and the
``AWS_CONTAINER_*`` variables to every container, init containers included, whatever
``automountServiceAccountToken`` says (aws/amazon-eks-pod-identity-webhook,
``pkg/handler``, testdata ``containercredentials/rawPodWithoutVolumes.pod.yaml``).
"""

from __future__ import annotations

from typing import Any, Final

RUN_AS_USER: Final = 1000
"""uid (and gid) of the model containers: not root, not one the image defines."""
HOME: Final = "/home/vllm"
TMP: Final = "/tmp"
USER: Final = "vllm"
WRITABLE_DIRS: Final = {"home": (HOME, "20Gi"), "tmp": (TMP, "10Gi")}
"""Volume name -> (mount path, size limit) of each writable emptyDir. The caches under
``HOME`` hold compiled kernels and graphs (a few GB); a limit keeps a runaway writer
from filling the node's root volume (the kubelet evicts the pod instead)."""

POD_SECURITY_LABEL_PREFIX: Final = "pod-security.kubernetes.io"
POD_SECURITY_LEVEL: Final = "restricted"


def pod_security_context() -> dict[str, Any]:
    """Pod-level settings the restricted Pod Security Standard asks for, plus the uid."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        # emptyDirs are group-owned by fsGroup, so the uid can write them.
        "fsGroup": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    """Every container of a model pod (server and init): nothing beyond its own files."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }


def writable_volumes() -> list[dict[str, Any]]:
    """The emptyDirs of :data:`WRITABLE_DIRS`."""
    return [
        {"name": name, "emptyDir": {"sizeLimit": size}}
        for name, (_path, size) in WRITABLE_DIRS.items()
    ]


def writable_mounts() -> list[dict[str, Any]]:
    return [{"name": name, "mountPath": path} for name, (path, _size) in WRITABLE_DIRS.items()]


def writable_env() -> list[dict[str, str]]:
    """``HOME`` on its emptyDir (every ``~`` cache follows it) and ``USER`` for
    ``getpass.getuser()``."""
    return [{"name": "HOME", "value": HOME}, {"name": "USER", "value": USER}]


def harden_container(container: dict[str, Any]) -> dict[str, Any]:
    """``container`` with the security context, writable mounts and their env added."""
    return {
        **container,
        "securityContext": container_security_context(),
        "env": [*container.get("env", []), *writable_env()],
        "volumeMounts": [*container.get("volumeMounts", []), *writable_mounts()],
    }


def harden_pod_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """A model pod spec with every container hardened and the writable volumes added."""
    return {
        **spec,
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(),
        "initContainers": [harden_container(c) for c in spec.get("initContainers", [])],
        "containers": [harden_container(c) for c in spec["containers"]],
        "volumes": [*spec.get("volumes", []), *writable_volumes()],
    }


def harden_deployment(deployment: dict[str, Any]) -> dict[str, Any]:
    """``deployment`` with its pod template spec hardened (:func:`harden_pod_spec`)."""
    template = deployment["spec"]["template"]
    return {
        **deployment,
        "spec": {
            **deployment["spec"],
            "template": {**template, "spec": harden_pod_spec(template["spec"])},
        },
    }


def namespace_labels(kubernetes_version: str) -> dict[str, str]:
    """Labels the Pod Security admission controller reads: enforce (and audit, warn)
    the restricted level, pinned to the cluster's minor so an upgrade cannot tighten
    the rules under running pods unannounced
    (https://kubernetes.io/docs/concepts/security/pod-security-admission/)."""
    version = f"v{kubernetes_version}"
    labels: dict[str, str] = {}
    for mode in ("enforce", "audit", "warn"):
        labels[f"{POD_SECURITY_LABEL_PREFIX}/{mode}"] = POD_SECURITY_LEVEL
        labels[f"{POD_SECURITY_LABEL_PREFIX}/{mode}-version"] = version
    return labels
