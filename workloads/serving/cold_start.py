"""Cold-start budget of a model replica: from a Pending pod to a Ready server.

One table of phase figures (:data:`PHASE_FIGURES`), each with its p50 and worst case
and where the number comes from, is the only place cold-start numbers live. The budget
of a model on an instance type (:func:`cold_start_budget`) adds up the phases the
platform's design goes through; the startup probe window, ``progressDeadlineSeconds``,
KEDA's scale-up period and Pulumi's rollout await derive from it
(:func:`startup_settings`), and the offline plan prints it (``tools/cold_start_summary``).

The design being budgeted (docs/architecture.md, "Cold start"):

1. Karpenter batches the pending pod and launches a GPU node (``schedule``, ``node``).
2. The node starts the GPU device plugin. In parallel a pre-pull DaemonSet pulls the
   serving image from the stack's ECR pull-through cache (SOCI parallel pull on AL2023,
   ``FastImagePull``), or the image is already on the Bottlerocket data volume created
   from a snapshot (``image``). The pod can bind only once the device plugin advertises
   ``nvidia.com/gpu``, so the two overlap and the longer one counts.
3. The weights gate checks the revision's manifest, the server restores its compile
   cache from the model bucket, starts, streams the weights from S3 at the instance's
   bandwidth, compiles (from cache, except for the first replica of a new revision,
   image or GPU type: the worst case) and captures CUDA graphs; then the probes notice.

With a warm slot (``gpuPools[].warmSlots``), a placeholder pod holds a node with the
image already pulled: the replica preempts it and starts at step 3.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from infra.core.gpu_catalog import GpuInstanceType
from infra.core.instance_network import bandwidth
from workloads.serving.gpu_memory import ModelShape, fit, weights_gib_per_gpu

STARTUP_PERIOD_SECONDS: Final = 10
"""Startup probe period; the server is noticed at most one period after it is up."""
READINESS_PERIOD_SECONDS: Final = 5
"""Readiness probe period; the pod is Ready at most one period after the startup probe."""

AmiFamily = Literal["al2023", "bottlerocket"]


@dataclass(frozen=True)
class PhaseFigure:
    """A published (or derived) duration of one cold-start phase."""

    title: str
    p50_seconds: float
    worst_seconds: float
    source: str
    """Where the numbers come from (a link, or how they are derived)."""
    basis: str
    """What was measured, and how it maps onto this platform."""


# Image pull figures were measured for a 10.8 GB (10,778,400,361 bytes) vLLM image; the
# budget scales them by ``serving.imageSizeGiB``.
MEASURED_IMAGE_GIB: Final = 10_778_400_361 / 1024**3

PHASE_FIGURES: Final[dict[str, PhaseFigure]] = {
    "schedule": PhaseFigure(
        "Karpenter batch",
        1,
        10,
        "Karpenter chart values.yaml at v1.14.1: settings.batchIdleDuration 1s, "
        "batchMaxDuration 10s",
        "a lone pod closes the batch after the idle duration; a burst holds it up to the max",
    ),
    "node": PhaseFigure(
        "node launch to Ready",
        40,
        100,
        "https://github.com/aws/karpenter-provider-aws/issues/6165 (maintainer: new nodes "
        "typically Ready in 30-40 s); https://github.com/aws/karpenter-provider-aws/issues/3102 "
        "(80-100 s launch to Ready); issues/6128 (~70-80 s launch to registration)",
        "EKS-optimized AMIs with the NVIDIA driver baked in. kaito-project/kaito#2325 measured "
        "284 s + 126 s on AKS (VM provisioning and driver set-up), which EKS AMIs do not do",
    ),
    "device_plugin_al2023": PhaseFigure(
        "device plugin (GPU operator)",
        30,
        126,
        "https://github.com/cloudpilot-ai/karpenter-provider-gcp/pull/148 (about a minute "
        "after Ready); https://github.com/kaito-project/kaito/issues/2325 (126 s node "
        "created to ResourceReady)",
        "the operator's validator and device-plugin pods pull from nvcr.io and start after "
        "the node is Ready; kaito's 126 s (which includes driver checks) is the worst case",
    ),
    "device_plugin_bottlerocket": PhaseFigure(
        "device plugin (Bottlerocket)",
        5,
        30,
        "estimate: Bottlerocket NVIDIA variants run the device plugin as a host service "
        "(https://bottlerocket.dev/en/os/1.44.x/api/settings/kubelet-device-plugins/)",
        "no image to pull; registers with the kubelet as soon as it starts",
    ),
    "image_soci_al2023": PhaseFigure(
        "image, SOCI pull (AL2023)",
        60,
        112,
        "https://github.com/aws-samples/karpenter-blueprints/tree/main/blueprints/"
        "soci-snapshotter (10.8 GB vLLM image from ECR: 59.8 s SOCI, 112.3 s default "
        "containerd)",
        "measured on instances with > 8 Gbps network and EBS and gp3 600-1000 MiB/s; the "
        "worst case is the default sequential pull",
    ),
    "image_soci_bottlerocket": PhaseFigure(
        "image, SOCI pull (Bottlerocket)",
        45,
        112,
        "https://github.com/aws-samples/karpenter-blueprints/tree/main/blueprints/"
        "soci-snapshotter (45.0 s on Bottlerocket)",
        "as above; Bottlerocket decompresses faster (bottlerocket-core-kit#443)",
    ),
    "image_plain": PhaseFigure(
        "image, default pull",
        112,
        112,
        "https://github.com/aws-samples/karpenter-blueprints/tree/main/blueprints/"
        "soci-snapshotter (10.8 GB vLLM image from ECR, default containerd: 112.3 s)",
        "sequential layer download and unpack (nodeClass.fastImagePull off); one measurement",
    ),
    "image_snapshot": PhaseFigure(
        "image on snapshot volume",
        5,
        0,
        "https://docs.aws.amazon.com/ebs/latest/userguide/initalize-volume.html (provisioned "
        "rate for volume initialization, 100-300 MiB/s, "
        "EC2NodeClass blockDeviceMappings[].ebs.volumeInitializationRate)",
        "no pull (kubelet: image already present); the worst case reads the whole image "
        "while the volume is still initializing: image size / initialization rate",
    ),
    "weights_gate": PhaseFigure(
        "weights gate",
        2,
        10,
        "estimate: one S3 LIST and GET from the same region through the S3 gateway endpoint",
        "init container in the already-pulled serving image",
    ),
    "compile_cache_restore": PhaseFigure(
        "compile cache restore",
        5,
        20,
        "estimate: a compile cache of a few hundred MB at the instance's S3 bandwidth",
        "skipped when there is no cache yet",
    ),
    "process": PhaseFigure(
        "server process start",
        10,
        95,
        "https://github.com/run-ai/runai-model-streamer/blob/master/docs/src/benchmarks.md "
        "(vLLM ready 23.2 s after start for Llama-3-8B from S3, 4.9 s of it loading); "
        "https://github.com/kaito-project/kaito/issues/2325 (74 s bootstrap + 21 s engine "
        "pre-load init)",
        "p50: the streamer benchmark's 18 s outside weight loading split into process start "
        "and graph capture; worst: kaito's measured bootstrap",
    ),
    "weights": PhaseFigure(
        "weights from S3",
        0,
        0,
        "https://github.com/run-ai/runai-model-streamer/blob/master/docs/src/benchmarks.md "
        "(S3, 15 GB Llama-3-8B: 28.24 s at concurrency 4, 8.45 s at 16, 4.88 s at 32)",
        "derived: weights / min(concurrency x per-stream rate, streamer maximum, instance "
        "bandwidth: burst at p50, baseline at worst)",
    ),
    "compile_cached": PhaseFigure(
        "torch.compile, cached",
        10,
        20,
        "https://docs.baseten.co/development/model/torch-compile-cache (5-20 s with a "
        "restored cache); https://docs.vllm.ai/en/latest/design/torch_compile/ (cache dir)",
        "the replica restored the cache of its revision, image, arguments and GPU type",
    ),
    "compile_cold": PhaseFigure(
        "torch.compile, no cache",
        53,
        130,
        "https://github.com/MariusWilsch/public-wilsch-ai-pages (vLLM Qwen3-14B: "
        "torch.compile ~53 s, CUDA graphs ~63 s); https://github.com/kaito-project/kaito/"
        "issues/2325 (195 s engine init, compile and warm-up, 27B)",
        "worst: kaito's 195 s less the worst graph capture below",
    ),
    "graph_capture": PhaseFigure(
        "CUDA graphs, warm-up",
        8,
        65,
        "https://github.com/run-ai/runai-model-streamer/blob/master/docs/src/benchmarks.md "
        "(see process); https://github.com/MariusWilsch/public-wilsch-ai-pages (~63 s)",
        "p50: the other part of the streamer benchmark's 18 s; worst: the 63 s measured",
    ),
    "probes": PhaseFigure(
        "probes",
        0,
        0,
        "derived from the probes: half a period each at p50, a whole period worst",
        f"startup probe every {STARTUP_PERIOD_SECONDS} s, then readiness every "
        f"{READINESS_PERIOD_SECONDS} s",
    ),
    "preempt_warm_slot": PhaseFigure(
        "preempt warm slot",
        2,
        5,
        "estimate: scheduler preemption of a pod with terminationGracePeriodSeconds 0",
        "the node, its device plugin and the image are already there",
    ),
}
"""Every cold-start figure, by phase key."""

STREAMER_STREAM_GIB_PER_SECOND: Final = 15e9 / 1024**3 / 28.24 / 4
"""One streamer thread reading from S3: the benchmark's 15 GB at concurrency 4 in 28.24 s."""
STREAMER_MAX_GIB_PER_SECOND: Final = 15e9 / 1024**3 / 4.88
"""Most the benchmark reached (concurrency 32; 64 was no faster)."""
STREAMER_MIN_CONCURRENCY: Final = 8
"""The streamer's own default for object storage (run-ai/runai-model-streamer
docs/src/env-vars.md, RUNAI_STREAMER_CONCURRENCY)."""
STREAMER_MAX_CONCURRENCY: Final = 32
"""Where the benchmark stopped getting faster."""

STARTUP_MARGIN: Final = 1.5
"""The startup probe allows the worst case of the container's phases times this."""
STARTUP_MIN_SECONDS: Final = 300
STARTUP_MAX_SECONDS: Final = 3600


@dataclass(frozen=True)
class NodeStart:
    """How a new GPU node becomes usable and gets the serving image (node class)."""

    ami_family: AmiFamily
    image_on_snapshot: bool = False
    """The Bottlerocket data volume is created from a snapshot holding the image."""
    volume_initialization_mib_per_second: int = 300
    """EBS provisioned initialization rate of that volume."""
    fast_image_pull: bool = True
    """SOCI parallel pull for images that are not on the snapshot."""


@dataclass(frozen=True)
class Phase:
    """One phase of a budget, in seconds."""

    key: str
    """The :data:`PHASE_FIGURES` entry (source) behind it."""
    title: str
    p50_seconds: float
    worst_seconds: float


@dataclass(frozen=True)
class ColdStartBudget:
    """Designed time from Pending to Ready of one replica on one instance type."""

    model: str
    instance_type: str
    warm_slot: bool
    before_container: tuple[Phase, ...]
    """Phases before the server container starts (node, image, init containers)."""
    container: tuple[Phase, ...]
    """Phases the startup probe window must cover."""

    @property
    def phases(self) -> tuple[Phase, ...]:
        return (*self.before_container, *self.container)

    @property
    def p50_seconds(self) -> float:
        return sum(p.p50_seconds for p in self.phases)

    @property
    def worst_seconds(self) -> float:
        return sum(p.worst_seconds for p in self.phases)

    @property
    def container_worst_seconds(self) -> float:
        return sum(p.worst_seconds for p in self.container)

    @property
    def before_container_worst_seconds(self) -> float:
        return sum(p.worst_seconds for p in self.before_container)


def _figure(key: str) -> Phase:
    f = PHASE_FIGURES[key]
    return Phase(key, f.title, f.p50_seconds, f.worst_seconds)


def streamer_concurrency(instance_types: Sequence[GpuInstanceType]) -> int:
    """Streamer threads per worker that saturate the fastest allowed instance's burst
    bandwidth (slower instances only queue on their NIC), within the benchmark's range."""
    fastest = max(bandwidth(t.name).burst_gib_per_second for t in instance_types)
    needed = math.ceil(min(fastest, STREAMER_MAX_GIB_PER_SECOND) / STREAMER_STREAM_GIB_PER_SECOND)
    return min(max(needed, STREAMER_MIN_CONCURRENCY), STREAMER_MAX_CONCURRENCY)


def _weights(shape: ModelShape, instance: GpuInstanceType, concurrency: int) -> Phase:
    gib = weights_gib_per_gpu(shape) * shape.tensor_parallel_size
    # Every tensor-parallel worker runs its own streamer with ``concurrency`` threads.
    streams = concurrency * shape.tensor_parallel_size
    streamer = min(streams * STREAMER_STREAM_GIB_PER_SECOND, STREAMER_MAX_GIB_PER_SECOND)
    net = bandwidth(instance.name)
    return Phase(
        "weights",
        f"weights, {gib:.1f} GiB, {streams} streams",
        gib / min(streamer, net.burst_gib_per_second),
        gib / min(streamer, net.baseline_gib_per_second),
    )


def _image(node: NodeStart, image_gib: float) -> Phase:
    if node.image_on_snapshot:
        f = PHASE_FIGURES["image_snapshot"]
        hydrate = image_gib * 1024 / node.volume_initialization_mib_per_second
        return Phase("image_snapshot", f.title, f.p50_seconds, max(f.p50_seconds, hydrate))
    if not node.fast_image_pull:
        key = "image_plain"
    elif node.ami_family == "bottlerocket":
        key = "image_soci_bottlerocket"
    else:
        key = "image_soci_al2023"
    f = PHASE_FIGURES[key]
    scale = image_gib / MEASURED_IMAGE_GIB
    return Phase(key, f.title, f.p50_seconds * scale, f.worst_seconds * scale)


def _overlap(a: Phase, b: Phase) -> Phase:
    """Two phases that run side by side: the longer one counts (under the longer's key)."""
    longer = a if a.p50_seconds >= b.p50_seconds else b
    return Phase(
        longer.key,
        f"max({a.title}, {b.title})",
        max(a.p50_seconds, b.p50_seconds),
        max(a.worst_seconds, b.worst_seconds),
    )


def cold_start_budget(
    name: str,
    shape: ModelShape,
    instance: GpuInstanceType,
    *,
    node: NodeStart,
    image_gib: float,
    concurrency: int,
    warm_slot: bool = False,
) -> ColdStartBudget:
    """The budget of model ``name`` (``shape``) starting on a new ``instance``.

    p50 assumes the compile cache of the model's revision exists; the worst case is the
    first replica after a change of revision, image, arguments or GPU type (no cache)."""
    if warm_slot:
        before: tuple[Phase, ...] = (_figure("preempt_warm_slot"), _figure("weights_gate"))
    else:
        plugin = _figure(
            "device_plugin_bottlerocket"
            if node.ami_family == "bottlerocket"
            else "device_plugin_al2023"
        )
        before = (
            _figure("schedule"),
            _figure("node"),
            _overlap(plugin, _image(node, image_gib)),
            _figure("weights_gate"),
        )
    compile_cached, compile_cold = _figure("compile_cached"), _figure("compile_cold")
    container = (
        _figure("compile_cache_restore"),
        _figure("process"),
        _weights(shape, instance, concurrency),
        Phase(
            "compile_cold",
            "torch.compile (cached/none)",
            compile_cached.p50_seconds,
            compile_cold.worst_seconds,
        ),
        _figure("graph_capture"),
        Phase(
            "probes",
            PHASE_FIGURES["probes"].title,
            (STARTUP_PERIOD_SECONDS + READINESS_PERIOD_SECONDS) / 2,
            STARTUP_PERIOD_SECONDS + READINESS_PERIOD_SECONDS,
        ),
    )
    return ColdStartBudget(
        model=name,
        instance_type=instance.name,
        warm_slot=warm_slot,
        before_container=before,
        container=container,
    )


def instance_types_for(
    shape: ModelShape, instance_types: Sequence[GpuInstanceType]
) -> list[GpuInstanceType]:
    """The allowed types a replica can actually start on: enough GPUs, and room for the
    weights and one full sequence (``workloads.serving.gpu_memory``)."""
    return [
        t for t in instance_types if t.gpus >= shape.tensor_parallel_size and fit(shape, t).fits
    ]


@dataclass(frozen=True)
class StartupSettings:
    """What the Deployment, its ScaledObject and ``pulumi up`` derive from the budget."""

    startup_window_seconds: int
    """Startup probe window: the container's worst case times :data:`STARTUP_MARGIN`."""
    progress_deadline_seconds: int
    """``progressDeadlineSeconds``: a replica's worst case before its container starts,
    plus the whole startup window, so a slow but healthy start never trips it (the probe
    gives up first)."""
    rollout_timeout_seconds: int
    """Pulumi's await of a rollout: ``replicas.max`` replicas replaced one at a time, each
    within the progress deadline and the old replica's drain."""
    scale_up_period_seconds: int
    """KEDA/HPA adds one replica per this period: the p50 cold start, so each added
    replica has time to take load before another is asked for."""
    streamer_concurrency: int

    @property
    def startup_failure_threshold(self) -> int:
        return self.startup_window_seconds // STARTUP_PERIOD_SECONDS

    @property
    def rollout_timeout(self) -> str:
        """The await as a Pulumi custom timeout (whole minutes, rounded up)."""
        return f"{math.ceil(self.rollout_timeout_seconds / 60)}m"


def startup_settings(
    budgets: Sequence[ColdStartBudget],
    *,
    max_replicas: int,
    drain_grace_seconds: int,
    concurrency: int,
) -> StartupSettings:
    """Settings covering every budget (the model on each instance type it may get)."""
    if not budgets:
        raise ValueError("no budget: the model fits none of its pool's instance types")
    container = max(b.container_worst_seconds for b in budgets)
    window = min(max(container * STARTUP_MARGIN, STARTUP_MIN_SECONDS), STARTUP_MAX_SECONDS)
    window = STARTUP_PERIOD_SECONDS * math.ceil(window / STARTUP_PERIOD_SECONDS)
    deadline = math.ceil(max(b.before_container_worst_seconds for b in budgets) + window)
    period = 15 * math.ceil(max(b.p50_seconds for b in budgets) / 15)
    return StartupSettings(
        startup_window_seconds=window,
        progress_deadline_seconds=deadline,
        rollout_timeout_seconds=max_replicas * (deadline + drain_grace_seconds),
        scale_up_period_seconds=period,
        streamer_concurrency=concurrency,
    )
