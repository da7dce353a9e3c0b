"""GPU memory fit check: can a model's tensor-parallel GPUs hold it?

vLLM refuses to start when the weights plus the KV cache for one sequence of
``--max-model-len`` tokens do not fit in ``--gpu-memory-utilization`` of each GPU
("The model's max seq len ... is larger than the maximum number of tokens that can be
stored in KV cache"). On Kubernetes that is a pod in CrashLoopBackOff on a GPU node
that costs money every hour, so the same arithmetic runs at config time.

Estimate per GPU, for tensor parallelism ``tp``:

- weights: ``parameters x bytes per parameter / tp`` (bf16/fp16 2 bytes, fp8 1 byte,
  4-bit AWQ/GPTQ 0.5 byte plus 10 % for scales and zero points);
- KV cache for one full sequence: ``2 (K and V) x layers x ceil(kv_heads / tp) x head_dim
  x 2 bytes x max_model_len`` (KV heads are split across GPUs, and replicated when there
  are fewer heads than GPUs);
- overhead: CUDA context, NCCL buffers, activations of a prefill chunk and CUDA graphs,
  taken as a flat :data:`OVERHEAD_GIB` per GPU (vLLM's own profiling typically finds
  1-3 GiB for models of this size).

What is left after weights and overhead is the KV cache vLLM will allocate; the estimate
also reports how many full-length sequences it holds (the concurrency at which
``max_num_seqs`` sequences of full length would start to queue or preempt).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from infra.core.gpu_catalog import GpuInstanceType

GIB = 1024**3
OVERHEAD_GIB = 2.0
KV_BYTES = 2  # bf16/fp16 KV cache (vLLM's default kv-cache dtype follows the model dtype)
BYTES_PER_PARAMETER: dict[str, float] = {
    "bfloat16": 2.0,
    "float16": 2.0,
    "fp8": 1.0,
    "awq": 0.5 * 1.1,
    "gptq": 0.5 * 1.1,
}

Quantization = Literal["awq", "gptq", "fp8"]


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs to know about a model and how it is served."""

    parameters_billions: float
    num_layers: int
    num_kv_heads: int
    head_dim: int
    dtype: Literal["bfloat16", "float16"]
    quantization: Quantization | None
    tensor_parallel_size: int
    max_model_len: int
    max_num_seqs: int
    gpu_memory_utilization: float


@dataclass(frozen=True)
class GpuFit:
    """The estimate for one instance type."""

    instance_type: str
    usable_gib: float
    """``gpu_memory_utilization`` of one GPU."""
    weights_gib: float
    kv_per_sequence_gib: float
    overhead_gib: float
    full_length_sequences: int
    """Sequences of ``max_model_len`` tokens the remaining KV cache holds."""

    @property
    def need_gib(self) -> float:
        """Per-GPU memory needed to start: weights, overhead and one full sequence."""
        return self.weights_gib + self.overhead_gib + self.kv_per_sequence_gib

    @property
    def fits(self) -> bool:
        return self.full_length_sequences >= 1


def weights_gib_per_gpu(shape: ModelShape) -> float:
    per_parameter = BYTES_PER_PARAMETER[shape.quantization or shape.dtype]
    return shape.parameters_billions * 1e9 * per_parameter / GIB / shape.tensor_parallel_size


def kv_gib_per_sequence_per_gpu(shape: ModelShape) -> float:
    heads = math.ceil(shape.num_kv_heads / shape.tensor_parallel_size)
    per_token = 2 * shape.num_layers * heads * shape.head_dim * KV_BYTES
    return per_token * shape.max_model_len / GIB


def fit(shape: ModelShape, instance: GpuInstanceType) -> GpuFit:
    """Estimate for ``shape`` on ``instance`` (which must have ``tp`` GPUs or more)."""
    usable = instance.gpu_memory_gib * shape.gpu_memory_utilization
    weights = weights_gib_per_gpu(shape)
    kv = kv_gib_per_sequence_per_gpu(shape)
    free_for_kv = usable - weights - OVERHEAD_GIB
    return GpuFit(
        instance_type=instance.name,
        usable_gib=usable,
        weights_gib=weights,
        kv_per_sequence_gib=kv,
        overhead_gib=OVERHEAD_GIB,
        full_length_sequences=max(0, math.floor(free_for_kv / kv)) if kv > 0 else 0,
    )


def check_fit(name: str, shape: ModelShape, instances: list[GpuInstanceType]) -> str | None:
    """``None`` when some allowed instance type holds the model, else the reason.

    Only instance types with at least ``tensor_parallel_size`` GPUs count. The message
    names the model, what it needs per GPU and the largest usable memory on offer.
    """
    candidates = [fit(shape, t) for t in instances if t.gpus >= shape.tensor_parallel_size]
    if not candidates or any(c.fits for c in candidates):
        return None
    best = max(candidates, key=lambda c: c.usable_gib)
    return (
        f"model {name} needs {best.need_gib:.1f} GiB per GPU at tensorParallelSize "
        f"{shape.tensor_parallel_size} (weights {best.weights_gib:.1f} + KV cache for one "
        f"{shape.max_model_len}-token sequence {best.kv_per_sequence_gib:.1f} + overhead "
        f"{best.overhead_gib:.1f}); the largest fit is {best.instance_type} with "
        f"{best.usable_gib:.1f} GiB usable per GPU at gpuMemoryUtilization "
        f"{shape.gpu_memory_utilization}: raise tensorParallelSize, quantize, lower "
        "maxModelLen or allow a larger GPU"
    )
