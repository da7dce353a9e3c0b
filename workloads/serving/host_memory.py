"""Host (CPU) memory of a model server: what the container's memory request and limit
must hold while vLLM loads and serves.

vLLM loads weights with the Run:ai model streamer (``--load-format runai_streamer``),
which buffers tensors in CPU memory on their way to the GPU. Its buffer is bounded by
``memory_limit`` (bytes; ``--model-loader-extra-config``, which vLLM hands the streamer
as ``RUNAI_STREAMER_MEMORY_LIMIT``, see vllm/model_executor/model_loader/
runai_streamer_loader.py). The streamer's own default is 40 GB, capped at the
checkpoint's size (``DEFAULT_MEMORY_LIMIT_STRING`` in run-ai/runai-model-streamer
py/runai_model_streamer/runai_model_streamer/file_streamer/requests_iterator.py): a
15 GB 7B checkpoint would be buffered whole, and a 12 GiB container OOM-killed while
loading. The limit must be at least the largest tensor (an embedding matrix: about
1 GiB for a 7B model, 2 GiB for 70B). Each tensor-parallel worker streams its own
shard with its own buffer.

Besides the buffer, every vLLM process holds the Python/PyTorch runtime and a CUDA
context in host memory: the API server and the engine core (:data:`PROCESS_GIB`), and
one worker per GPU (:data:`WORKER_GIB`); estimates with headroom, from the RSS such
processes show in practice. ``/dev/shm`` (a memory-backed emptyDir) counts against the
container's memory too.
"""

from __future__ import annotations

import math
from typing import Final

GIB: Final = 1024**3
PROCESS_GIB: Final = 4.0
"""API server and engine core processes together."""
WORKER_GIB: Final = 3.0
"""One GPU worker process (CUDA context, PyTorch, NCCL host buffers)."""


def shm_gib(tensor_parallel_size: int) -> int:
    """/dev/shm for NCCL between tensor-parallel workers (1 GiB for a single GPU)."""
    return 2 * tensor_parallel_size if tensor_parallel_size > 1 else 1


def streamer_memory_limit_bytes(streamer_buffer_gib: int) -> int:
    """The streamer's ``memory_limit`` (bytes) for one worker."""
    return streamer_buffer_gib * GIB


def required_memory_gib(tensor_parallel_size: int, streamer_buffer_gib: int) -> int:
    """Memory (GiB, whole) the server container needs at its peak, while loading."""
    tp = tensor_parallel_size
    need = PROCESS_GIB + tp * (WORKER_GIB + streamer_buffer_gib) + shm_gib(tp)
    return math.ceil(need)
