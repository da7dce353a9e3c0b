"""The serving sections: ``serving`` (shared by every model) and ``models``."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import Field

from infra.core.conventions import PLATFORM_NAMESPACES
from infra.core.schema import ContainerResources, DnsLabel, PositiveInt, Section
from workloads.serving.gpu_memory import ModelShape


class ReplicaRange(Section):
    """Replicas of a model: KEDA scales between ``min`` and ``max``."""

    min: PositiveInt = 1
    """Replicas that always run (default 1)."""
    max: PositiveInt = 1
    """Most replicas the queue may scale to (default 1)."""
    allow_unschedulable_max: bool = False
    """Accept a ``max`` the GPU pool cannot hold with the other models at their minimum
    (the plan prints a warning instead of failing); default false."""


class ModelConfig(Section):
    """One vLLM-served model (``models:`` list)."""

    name: DnsLabel
    """Kubernetes name and S3 prefix (``models/<name>/``) of the model."""
    served_model_name: Annotated[str, Field(min_length=1)]
    """Name clients send in the OpenAI ``model`` field, e.g. ``Qwen/Qwen2.5-3B-Instruct``."""
    revision: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    """Weights revision served, e.g. the Hugging Face commit or a date (``2024-09-19``):
    replicas load ``models/<name>/<revision>/`` and start only once
    ``tools models sync`` finished it. Changing it is a zero-downtime rolling update;
    setting the previous value back is the rollback."""
    enabled: bool = True
    """Serve the model (default true); a disabled entry keeps its config and weights."""
    gpu_pool: DnsLabel
    """Name of the GPU pool (``gpuPools[].name``) the model runs on."""
    parameters_billions: Annotated[float, Field(gt=0, le=2000)]
    """Model size in billions of parameters (the GPU memory fit check and the startup
    window derive from it)."""
    num_layers: PositiveInt
    """Transformer layers (``num_hidden_layers`` in the model's config.json)."""
    num_kv_heads: PositiveInt
    """KV heads (``num_key_value_heads`` in config.json)."""
    head_dim: PositiveInt
    """Attention head size (``head_dim``, or hidden size / attention heads)."""
    dtype: Literal["bfloat16", "float16"] = "bfloat16"
    """Weights and activations dtype (vLLM ``--dtype``; default bfloat16)."""
    quantization: Literal["awq", "gptq", "fp8"] | None = None
    """Quantization of the checkpoint (vLLM ``--quantization``; default none)."""
    tensor_parallel_size: Literal[1, 2, 4, 8] = 1
    """GPUs per replica (vLLM ``--tensor-parallel-size``; default 1)."""
    replicas: ReplicaRange = ReplicaRange()
    max_model_len: Annotated[int, Field(ge=256, le=1_048_576)] = 8192
    """Longest context in tokens (vLLM ``--max-model-len``; default 8192)."""
    gpu_memory_utilization: Annotated[float, Field(ge=0.5, le=0.95)] = 0.90
    """Share of each GPU vLLM takes for weights and KV cache (default 0.90)."""
    max_num_seqs: Annotated[int, Field(ge=1, le=4096)] = 64
    """Sequences a replica runs at once (vLLM ``--max-num-seqs``; default 64)."""
    extra_args: tuple[str, ...] = ()
    """Further ``vllm serve`` flags, e.g. ``[--enable-prefix-caching]``."""
    resources: ContainerResources | None = None
    """CPU and memory of the server container; default 3 vCPU per GPU and the memory the
    server needs while loading (``workloads.serving.host_memory``: 12Gi for one GPU with the
    default streamer buffer). A smaller memory is rejected: the pod would be OOM-killed
    while streaming weights."""

    @property
    def shape(self) -> ModelShape:
        """What the GPU memory fit check needs (``workloads.serving.gpu_memory``)."""
        return ModelShape(
            parameters_billions=self.parameters_billions,
            num_layers=self.num_layers,
            num_kv_heads=self.num_kv_heads,
            head_dim=self.head_dim,
            dtype=self.dtype,
            quantization=self.quantization,
            tensor_parallel_size=self.tensor_parallel_size,
            max_model_len=self.max_model_len,
            max_num_seqs=self.max_num_seqs,
            gpu_memory_utilization=self.gpu_memory_utilization,
        )

    def check(self, at: str) -> list[str]:
        if self.replicas.min <= self.replicas.max:
            return []
        replicas = {"min": self.replicas.min, "max": self.replicas.max}
        return [f"{at}.replicas = {json.dumps(replicas)}: min must be <= max"]


class ServingConfig(Section):
    """Settings shared by every served model."""

    namespace: DnsLabel = "inference"
    """Namespace of the model servers (default ``inference``)."""
    vllm_image: Annotated[
        str, Field(pattern=r"^[\w./-]+:v\d+\.\d+\.\d+(@sha256:[0-9a-f]{64})?$")
    ] = "vllm/vllm-openai:v0.33.0"
    """vLLM OpenAI server image, pinned to a release tag (default ``v0.33.0``: the flags
    ``--shutdown-timeout`` and ``--load-format runai_streamer`` are used), optionally
    with its digest after the tag (``...:v0.33.0@sha256:<64 hex>``, written by
    ``python -m tools pin-image <stack>``): required for a data volume
    snapshot, which must hold exactly that image; the policy setting
    ``requireImageDigest`` makes it mandatory."""
    keda_version: Annotated[str, Field(pattern=r"^\d+\.\d+\.\d+$")] = "2.20.2"
    """KEDA chart version (default ``2.20.2``)."""
    drain_seconds: Annotated[int, Field(ge=5, le=600)] = 60
    """How long a stopping replica finishes in-flight requests (vLLM ``--shutdown-timeout``);
    the preStop delay and the pod's termination grace period derive from it (default 60)."""
    streamer_buffer_gib: Annotated[int, Field(ge=1, le=64, alias="streamerBufferGiB")] = 4
    """CPU buffer of the Run:ai streamer per GPU worker while weights load (vLLM
    ``memory_limit``; default 4 GiB). Must hold the largest tensor (about 1 GiB for 7B
    models, 2 GiB for 70B); the model containers' memory is sized from it
    (``workloads.serving.host_memory``)."""
    image_size_gib: Annotated[float, Field(gt=0, le=100, alias="imageSizeGiB")] = 10.0
    """Size of the serving image as the kubelet reports it after a pull (GiB; default 10,
    about what ``vllm/vllm-openai`` releases weigh). The cold-start budget scales the
    measured image pull times by it (``workloads.serving.cold_start``)."""
    target_concurrency_share: Annotated[float, Field(gt=0, le=1)] = 0.75
    """KEDA target: requests in flight per replica (``vllm:num_requests_running`` plus
    ``vllm:num_requests_waiting``) as a share of the model's ``maxNumSeqs`` (default
    0.75: 48 of 64). In-flight requests, not the queue alone: a queue empties as soon as
    the added replicas absorb the load, and scaling on it would drop them again and
    cycle between min and max under steady traffic."""

    def check(self, at: str) -> list[str]:
        if self.namespace not in PLATFORM_NAMESPACES:
            return []
        return [
            f"{at}.namespace = {json.dumps(self.namespace)}: a platform namespace; use "
            f"another (platform namespaces: {', '.join(PLATFORM_NAMESPACES)})"
        ]
