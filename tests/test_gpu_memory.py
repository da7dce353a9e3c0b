"""GPU memory fit check with known models."""

from __future__ import annotations

import pytest

from infra.core.gpu_catalog import GPU_INSTANCE_TYPES as TYPES
from workloads.serving.gpu_memory import ModelShape, check_fit, fit, kv_gib_per_sequence_per_gpu


def shape(params: float, layers: int, kv_heads: int, **kw: object) -> ModelShape:
    base: dict[str, object] = {
        "parameters_billions": params,
        "num_layers": layers,
        "num_kv_heads": kv_heads,
        "head_dim": 128,
        "dtype": "bfloat16",
        "quantization": None,
        "tensor_parallel_size": 1,
        "max_model_len": 8192,
        "max_num_seqs": 64,
        "gpu_memory_utilization": 0.9,
    }
    return ModelShape(**{**base, **kw})  # type: ignore[arg-type]


LLAMA_8B = shape(8.03, 32, 8)
LLAMA_70B = shape(70.6, 80, 8)


def test_an_8b_model_fits_one_24_gb_gpu_at_bf16_with_short_context() -> None:
    result = fit(LLAMA_8B, TYPES["g6.xlarge"])
    assert round(result.weights_gib, 1) == 15.0
    assert result.kv_per_sequence_gib == 1.0  # 2 x 32 layers x 8 heads x 128 x 2 B x 8192
    assert result.fits and result.full_length_sequences == 4
    assert check_fit("llama-8b", LLAMA_8B, [TYPES["g6.xlarge"]]) is None


def test_a_70b_model_does_not_fit_one_80_gb_gpu_at_bf16() -> None:
    assert check_fit("llama-70b", LLAMA_70B, [TYPES["p5.4xlarge"]]) == (
        "model llama-70b needs 136.0 GiB per GPU at tensorParallelSize 1 (weights 131.5 + KV "
        "cache for one 8192-token sequence 2.5 + overhead 2.0); the largest fit is p5.4xlarge "
        "with 72.0 GiB usable per GPU at gpuMemoryUtilization 0.9: raise tensorParallelSize, "
        "quantize, lower maxModelLen or allow a larger GPU"
    )


def test_tensor_parallelism_splits_weights_and_kv_heads() -> None:
    tp4 = shape(70.6, 80, 8, tensor_parallel_size=4)
    assert check_fit("llama-70b", tp4, [TYPES["g6e.12xlarge"]]) is None
    assert fit(tp4, TYPES["g6e.12xlarge"]).weights_gib == pytest.approx(131.5 / 4, abs=0.1)
    assert kv_gib_per_sequence_per_gpu(tp4) == pytest.approx(2.5 / 4)


def test_kv_heads_are_replicated_when_fewer_than_gpus() -> None:
    # 2 KV heads over 4 GPUs: each GPU still holds one head.
    assert kv_gib_per_sequence_per_gpu(shape(3.1, 36, 2, tensor_parallel_size=4)) == (
        kv_gib_per_sequence_per_gpu(shape(3.1, 36, 2, tensor_parallel_size=2))
    )


def test_quantization_shrinks_weights() -> None:
    awq = shape(70.6, 80, 8, quantization="awq", tensor_parallel_size=1)
    assert fit(awq, TYPES["p5.4xlarge"]).weights_gib == pytest.approx(36.2, abs=0.1)
    assert check_fit("llama-70b-awq", awq, [TYPES["p5.4xlarge"]]) is None


def test_long_context_can_be_what_does_not_fit() -> None:
    long = shape(8.03, 32, 8, max_model_len=131072)
    assert fit(long, TYPES["g6.xlarge"]).kv_per_sequence_gib == 16.0
    message = check_fit("llama-8b-128k", long, [TYPES["g6.xlarge"], TYPES["g5.xlarge"]])
    assert message is not None and "KV cache for one 131072-token sequence 16.0" in message


def test_types_with_too_few_gpus_do_not_count() -> None:
    tp4 = shape(70.6, 80, 8, tensor_parallel_size=4)
    # Only g6e.12xlarge has 4 GPUs; the single-GPU sizes are ignored, not "too small".
    assert check_fit("m", tp4, [TYPES["g6e.xlarge"], TYPES["g6e.12xlarge"]]) is None
