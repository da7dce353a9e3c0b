"""vLLM model servers: rendered Deployment, probes, drain, IAM scoping, autoscaling."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.core.arns import Arns
from infra.core.conventions import INSTANCE_TYPE_LABEL
from infra.core.gpu_catalog import allowed_instance_types
from infra.core.ordering import ClusterRef
from infra.stack.cold_start import model_startup, required_instance_types
from infra.stack.registry import deployed_serving
from tests.harness import (
    FIXTURE_STACKS,
    cluster_name,
    find,
    find_all,
    fixture_where,
    model_8b,
    planned,
    run_stack,
    typed_config,
)
from tests.test_alert_rules import promtool
from tools.mock_runtime import Recorded, Secret
from workloads.serving.cold_start import StartupSettings
from workloads.serving.config import ModelConfig, ServingConfig
from workloads.serving.gpu_memory import fit
from workloads.serving.host_memory import PROCESS_GIB, WORKER_GIB, shm_gib
from workloads.serving.vllm import (
    VllmModelArgs,
    container_resources,
    drain_timings,
    in_flight_query,
    model_read_policy,
    render_deployment,
    render_network_policy,
    render_pdb,
    render_scaled_object,
    vllm_args,
)

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
STARTUP = StartupSettings(
    startup_window_seconds=500,
    progress_deadline_seconds=800,
    rollout_timeout_seconds=1790,
    scale_up_period_seconds=165,
    streamer_concurrency=16,
)
"""Settings as the cold-start budget derives them (tests/test_cold_start.py tests that)."""
REGION = "eu-central-1"


def _model(**overrides: Any) -> ModelConfig:
    return model_8b(**overrides)


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _deployments(resources: tuple[Recorded, ...]) -> dict[str, dict[str, Any]]:
    return {
        d.inputs["metadata"]["name"]: d.inputs
        for d in find_all(resources, DEPLOYMENT)
        if d.inputs["metadata"]["labels"].get("app.kubernetes.io/name") == "vllm"
    }


def test_probes_take_the_startup_window_and_fixed_readiness_and_liveness() -> None:
    container = _container(
        render_deployment(_model(), ServingConfig(), "b", "sa", STARTUP, region=REGION)
    )
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] == 500
    readiness, liveness = container["readinessProbe"], container["livenessProbe"]
    assert (readiness["periodSeconds"], readiness["failureThreshold"]) == (5, 2)
    assert liveness["periodSeconds"] * liveness["failureThreshold"] == 120


def test_drain_timings_derive_from_one_parameter() -> None:
    drain = drain_timings(60)
    assert (drain.pre_stop_seconds, drain.shutdown_timeout_seconds) == (15, 60)
    assert drain.grace_period_seconds == 90
    assert drain.grace_period_seconds > drain.pre_stop_seconds + drain.shutdown_timeout_seconds
    assert drain_timings(8).pre_stop_seconds == 5


def test_vllm_args_from_typed_config() -> None:
    model = _model(
        tensorParallelSize=2,
        quantization="awq",
        maxNumSeqs=16,
        extraArgs=["--enable-prefix-caching"],
    )
    serving = ServingConfig(streamer_buffer_gib=2)
    assert vllm_args(model, "bucket-1", drain_timings(30), serving, STARTUP) == [
        "s3://bucket-1/models/m/r1/",
        "--served-model-name", "org/M-8B",
        "--load-format", "runai_streamer",
        "--model-loader-extra-config", '{"concurrency": 16, "memory_limit": 2147483648}',
        "--host", "0.0.0.0",
        "--port", "8000",
        "--tensor-parallel-size", "2",
        "--max-model-len", "8192",
        "--gpu-memory-utilization", "0.9",
        "--max-num-seqs", "16",
        "--dtype", "bfloat16",
        "--shutdown-timeout", "30",
        "--quantization", "awq",
        "--enable-prefix-caching",
    ]  # fmt: skip


def test_deployment_requests_gpus_tolerates_taint_and_targets_its_pool() -> None:
    model = _model(tensorParallelSize=4)
    deployment = render_deployment(model, ServingConfig(), "b", "vllm-m", STARTUP, region=REGION)
    pod = deployment["spec"]["template"]["spec"]
    resources = _container(deployment)["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == "4"
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    term = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["nodeSelectorTerms"][0]["matchExpressions"] == [
        {"key": "karpenter.sh/nodepool", "operator": "In", "values": ["gpu"]}
    ]
    zone, host = pod["topologySpreadConstraints"]
    # A zone without GPU capacity never holds a replica Pending: spread is a preference.
    assert (zone["topologyKey"], zone["whenUnsatisfiable"], zone["maxSkew"]) == (
        "topology.kubernetes.io/zone",
        "ScheduleAnyway",
        1,
    )
    assert "minDomains" not in zone  # only valid with DoNotSchedule
    assert (host["topologyKey"], host["whenUnsatisfiable"]) == (
        "kubernetes.io/hostname",
        "ScheduleAnyway",
    )
    shm = {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}}
    assert [v for v in pod["volumes"] if v["name"] == "shm"] == [shm]
    assert {"name": "shm", "mountPath": "/dev/shm"} in _container(deployment)["volumeMounts"]


def test_rollout_never_drops_a_serving_replica() -> None:
    deployment = render_deployment(
        _model(), ServingConfig(drain_seconds=40), "b", "sa", STARTUP, region=REGION
    )
    spec = deployment["spec"]
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    template = spec["template"]
    assert template["metadata"]["annotations"] == {
        # Protected while it loads; after that, evicted only through its PDB.
        "karpenter.sh/do-not-disrupt": f"{STARTUP.progress_deadline_seconds}s",
        "llm-platform.io/revision": "r1",
    }
    assert template["spec"]["terminationGracePeriodSeconds"] == 65  # 10 + 40 + 15
    assert _container(deployment)["lifecycle"] == {"preStop": {"sleep": {"seconds": 10}}}
    assert spec["progressDeadlineSeconds"] == STARTUP.progress_deadline_seconds


def test_probes_hit_health_on_the_server_port() -> None:
    container = _container(
        render_deployment(_model(), ServingConfig(), "b", "sa", STARTUP, region=REGION)
    )
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["startupProbe"]["failureThreshold"] * 10 == STARTUP.startup_window_seconds
    assert container["readinessProbe"]["periodSeconds"] == 5
    assert container["ports"] == [{"name": "http", "containerPort": 8000}]


def test_api_key_comes_from_the_secret_not_the_spec() -> None:
    env = _container(
        render_deployment(_model(), ServingConfig(), "b", "sa", STARTUP, region=REGION)
    )["env"]
    assert env[0] == {
        "name": "VLLM_API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "vllm-api-key", "key": "api-key"}},
    }


def test_every_s3_client_knows_the_region_and_vllm_waits_the_startup_window() -> None:
    """Pod Identity brings no region and IMDS is out of reach: the streamer's C++
    client needs it set. vLLM's own 600 s engine wait must not end the start early."""
    spec = render_deployment(_model(), ServingConfig(), "b", "sa", STARTUP, region=REGION)
    pod = spec["spec"]["template"]["spec"]
    for container in (*pod["initContainers"], _container(spec)):
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == REGION, container["name"]
    env = {e["name"]: e.get("value") for e in _container(spec)["env"]}
    assert env["VLLM_ENGINE_READY_TIMEOUT_S"] == str(STARTUP.startup_window_seconds)


def test_pdb_keeps_one_replica_when_there_are_two() -> None:
    assert render_pdb(_model(replicas={"min": 2, "max": 4}), "ns")["spec"]["minAvailable"] == 1
    single = render_pdb(_model(), "ns")["spec"]
    assert single["maxUnavailable"] == 1 and "minAvailable" not in single


def test_network_policy_admits_the_given_peers_and_prometheus_only() -> None:
    gateway = {"podSelector": {"matchLabels": {"app": "gw"}}}
    policy = render_network_policy(_model(), "inference", [gateway])
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"][0] == gateway
    expression = rule["from"][1]["namespaceSelector"]["matchExpressions"][0]
    assert expression["values"] == ["monitoring"]
    assert len(rule["from"]) == 2
    assert rule["ports"] == [{"protocol": "TCP", "port": 8000}]
    assert policy["spec"]["policyTypes"] == ["Ingress"]


def test_scaled_object_scales_on_requests_in_flight() -> None:
    """Running plus waiting, not the queue alone: the queue empties once added replicas
    absorb the load, and scaling on it would take them away again under steady load."""
    model = _model(replicas={"min": 2, "max": 5}, maxNumSeqs=32)
    serving = ServingConfig(target_concurrency_share=0.5)
    spec = render_scaled_object(model, serving, STARTUP)["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (2, 5)
    assert spec["scaleTargetRef"] == {"name": "m"}
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleUp"]["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 165}]
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "prometheus" and trigger["metricType"] == "AverageValue"
    assert trigger["metadata"] == {
        "serverAddress": "http://kube-prometheus-stack-prometheus.monitoring.svc:9090",
        "query": 'sum({__name__=~"vllm:num_requests_(running|waiting)", '
        'namespace="inference", model_name="org/M-8B"})',
        "threshold": "16",  # half of the 32 sequences a replica runs at once
    }


def test_scaled_object_holds_its_replicas_when_prometheus_cannot_answer() -> None:
    model = _model(replicas={"min": 2, "max": 5})
    spec = render_scaled_object(model, ServingConfig(), STARTUP)["spec"]
    assert spec["fallback"] == {
        "failureThreshold": 3,
        "replicas": 2,
        "behavior": "currentReplicasIfHigher",
    }
    # KEDA accepts a fallback only on non-cpu/memory triggers of metric type AverageValue.
    assert [(t["type"], t["metricType"]) for t in spec["triggers"]] == [
        ("prometheus", "AverageValue")
    ]


def test_read_policy_is_scoped_to_the_model_prefix() -> None:
    policy = json.loads(model_read_policy("arn:aws:s3:::bkt", _model()))
    read, list_ = policy["Statement"]
    assert (read["Action"], read["Resource"]) == (["s3:GetObject"], ["arn:aws:s3:::bkt/models/m/*"])
    assert (list_["Action"], list_["Resource"]) == (["s3:ListBucket"], ["arn:aws:s3:::bkt"])
    assert list_["Condition"] == {"StringLike": {"s3:prefix": ["models/m/", "models/m/*"]}}


def test_disabled_model_is_rejected_by_its_args() -> None:
    with pytest.raises(ValueError, match=r"^model \(m\) is disabled; do not create it$"):
        VllmModelArgs(
            model=_model(enabled=False),
            serving=ServingConfig(),
            cluster=ClusterRef.existing("c"),
            bucket_name="b",
            arns=Arns(account_id="111122223333", region="us-west-2"),
            startup=STARTUP,
        )


# --- fixture stacks ---------------------------------------------------------------------


def test_each_enabled_model_is_served(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    cfg = typed_config(fixture_stack)
    deployments = _deployments(fixture_resources)
    assert cfg.enabled_models
    assert sorted(deployments) == sorted(m.name for m in cfg.enabled_models)
    bucket = cfg.model_bucket
    for model in cfg.enabled_models:
        deployment = deployments[model.name]
        rendered = render_deployment(
            model,
            deployed_serving(cfg),
            bucket,
            f"vllm-{model.name}",
            model_startup(cfg, model),
            required_instance_types(cfg, model),
            region=cfg.region,
        )
        assert deployment == rendered | {
            "apiVersion": deployment["apiVersion"],
            "kind": deployment["kind"],
        }
        uri = f"s3://{bucket}/models/{model.name}/{model.revision}/"
        assert _container(deployment)["args"][0] == uri


def test_each_model_starts_its_minimum_replicas_spread_over_zones(
    fixture_resources: tuple[Recorded, ...], fixture_stack: str
) -> None:
    models = {m.name: m for m in typed_config(fixture_stack).enabled_models}
    for name, deployment in _deployments(fixture_resources).items():
        assert deployment["spec"]["replicas"] == models[name].replicas.min >= 1
        zone = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"][0]
        assert zone["topologyKey"] == "topology.kubernetes.io/zone"


def test_the_fixtures_have_single_and_multi_replica_models() -> None:
    minimums = {m.replicas.min for s in FIXTURE_STACKS for m in typed_config(s).enabled_models}
    assert 1 in minimums and max(minimums) >= 2


def test_each_model_has_its_own_read_only_pod_identity(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    cfg = typed_config(fixture_stack)
    bucket = cfg.model_bucket
    for name in (m.name for m in cfg.enabled_models):
        role = find(fixture_resources, "aws:iam/role:Role", f"model-{name}-role").inputs
        assert role["name"] == f"{cluster_name(fixture_stack)}-vllm-{name}"
        trust = json.loads(role["assumeRolePolicy"])["Statement"][0]
        assert trust["Principal"] == {"Service": "pods.eks.amazonaws.com"}
        policy = find(
            fixture_resources, "aws:iam/rolePolicy:RolePolicy", f"model-{name}-read-weights"
        )
        statements = json.loads(policy.inputs["policy"])["Statement"]
        assert statements[0]["Resource"] == [f"arn:aws:s3:::{bucket}/models/{name}/*"]
        identity = find(
            fixture_resources, "aws:eks/podIdentityAssociation:PodIdentityAssociation",
            f"model-{name}-identity",
        ).inputs  # fmt: skip
        assert (identity["namespace"], identity["serviceAccount"]) == ("inference", f"vllm-{name}")
        deployment = find(fixture_resources, DEPLOYMENT, f"model-{name}-deployment")
        # The first replica reads its weights and compile cache with these rights.
        for needed in ("identity", "read-weights", "compile-cache"):
            assert f"model-{name}-{needed}" in deployment.depends_on


def test_replicas_wait_for_gpu_capacity(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    for model in typed_config(fixture_stack).enabled_models:
        deployment = find(fixture_resources, DEPLOYMENT, f"model-{model.name}-deployment")
        assert "gpu-operator-release" in deployment.depends_on
        assert f"node-pools-nodepool-{model.gpu_pool}" in deployment.depends_on


def test_monitor_and_scaler_wait_for_their_crds(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    for name in (m.name for m in typed_config(fixture_stack).enabled_models):
        monitor = find(fixture_resources, "kubernetes:monitoring.coreos.com/v1:ServiceMonitor",
                       f"model-{name}-monitor")  # fmt: skip
        assert "monitoring-crds" in monitor.depends_on
        assert monitor.inputs["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        scaler = find(
            fixture_resources, "kubernetes:keda.sh/v1alpha1:ScaledObject", f"model-{name}-scaler"
        )
        assert "keda-release" in scaler.depends_on


def test_api_key_secret_stays_secret(fixture_resources: tuple[Recorded, ...]) -> None:
    secret = find(fixture_resources, "kubernetes:core/v1:Secret", "serving-api-key").inputs
    assert secret["metadata"] == {"name": "vllm-api-key", "namespace": "inference"}
    # The engine marks the whole property secret; the plan masks it, state encrypts it.
    assert isinstance(secret["stringData"], Secret)
    assert secret["stringData"].value == {"api-key": "offline-placeholder-llm-platform-modelApiKey"}


def test_vllm_starts_only_on_a_completely_synced_revision() -> None:
    model = _model(revision="2024-09-19")
    pod = render_deployment(model, ServingConfig(), "bucket-1", "vllm-m", STARTUP, region=REGION)[
        "spec"
    ]["template"]
    (gate,) = pod["spec"]["initContainers"]
    assert gate["image"] == ServingConfig().vllm_image  # already on the node for the server
    assert gate["command"][:2] == ["python3", "-c"]
    assert {e["name"]: e["value"] for e in gate["env"] if e["name"].startswith("WEIGHTS_")} == {
        "WEIGHTS_BUCKET": "bucket-1",
        "WEIGHTS_MANIFEST": "models/m/2024-09-19/manifest.json",
        "WEIGHTS_WAIT_SECONDS": "300",
    }
    compile(gate["command"][2], "weights-gate", "exec")  # the script is valid Python
    # The server reads exactly the revision the gate checked.
    (server,) = pod["spec"]["containers"]
    assert server["args"][0] == "s3://bucket-1/models/m/2024-09-19/"


def test_changing_the_revision_is_a_rolling_update_that_keeps_serving() -> None:
    old = render_deployment(
        _model(revision="a"), ServingConfig(), "b", "vllm-m", STARTUP, region=REGION
    )
    new = render_deployment(
        _model(revision="b"), ServingConfig(), "b", "vllm-m", STARTUP, region=REGION
    )
    assert old["spec"]["template"] != new["spec"]["template"]  # a new ReplicaSet
    assert old["spec"]["selector"] == new["spec"]["selector"]  # the same Deployment
    assert new["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    # Setting the old revision back renders the old template again: the rollback.
    assert (
        render_deployment(
            _model(revision="a"), ServingConfig(), "b", "vllm-m", STARTUP, region=REGION
        )
        == old
    )


@pytest.mark.parametrize(("tp", "memory"), [(1, "12Gi"), (2, "22Gi"), (4, "40Gi")])
def test_container_memory_holds_the_streamer_buffer_and_vllm(tp: int, memory: str) -> None:
    # 4 GiB API server + engine core, per GPU 3 GiB worker + 4 GiB streamer buffer,
    # plus /dev/shm (1 GiB, or 2 GiB per GPU with tensor parallelism).
    resources = container_resources(_model(tensorParallelSize=tp), ServingConfig())
    assert resources["requests"]["memory"] == resources["limits"]["memory"] == memory


def test_every_model_fits_its_container_while_loading(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    cfg = typed_config(fixture_stack)
    deployments = _deployments(fixture_resources)
    for model in cfg.enabled_models:
        container = _container(deployments[model.name])
        args = container["args"]
        loader = json.loads(args[args.index("--model-loader-extra-config") + 1])
        buffer_gib = loader["memory_limit"] / 1024**3
        memory = int(container["resources"]["limits"]["memory"].removesuffix("Gi"))
        # Without the bound the streamer buffers the whole checkpoint (up to 40 GB).
        weights = model.parameters_billions * 2 if model.quantization is None else 0
        assert buffer_gib * model.tensor_parallel_size < weights or weights == 0
        tp = model.tensor_parallel_size
        assert memory >= tp * (buffer_gib + WORKER_GIB) + PROCESS_GIB + shm_gib(tp)


def _instance_types(deployment: dict[str, Any]) -> list[str] | None:
    """The instance types the pod's node affinity names, or None when it names none."""
    affinity = deployment["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
    (term,) = affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    found = [e["values"] for e in term["matchExpressions"] if e["key"] == INSTANCE_TYPE_LABEL]
    return found[0] if found else None


def _pool_types(cfg: Any, model: ModelConfig) -> list[Any]:
    pool = next(p for p in cfg.gpu_pools if p.name == model.gpu_pool)
    return allowed_instance_types(pool.instance_families, pool.instance_sizes)


def _mixes_gpus(cfg: Any, model: ModelConfig) -> bool:
    return model.enabled and len({t.gpu_memory_gib for t in _pool_types(cfg, model)}) > 1


MIXED = fixture_where(
    lambda c: any(_mixes_gpus(c, m) for m in c.models),
    "a model on a GPU pool mixing GPUs of different memory",
)


def test_a_model_is_held_to_the_instance_types_whose_gpus_hold_it() -> None:
    """Karpenter chooses by CPU, memory and GPU count: a model too big for some GPUs of its
    pool gets node affinity to the types it fits, else no such term."""
    cfg = typed_config(MIXED)
    (i, model) = next((i, m) for i, m in enumerate(cfg.models) if _mixes_gpus(cfg, m))
    types = _pool_types(cfg, model)
    # Weights that fill the smaller GPUs but leave room on the largest.
    small, large = min(t.gpu_memory_gib for t in types), max(t.gpu_memory_gib for t in types)
    billions = round((small + large) / 2 * 1024**3 / 1e9 / 2, 1)  # bfloat16: 2 bytes each

    def bigger(config: dict[str, Any]) -> None:
        config["llm-platform:models"][i]["parametersBillions"] = billions

    run = run_stack(MIXED, bigger)
    assert run.error is None, run.error
    deployment = _deployments(tuple(run.resources))[model.name]
    shape = dataclasses.replace(model.shape, parameters_billions=billions)
    fitting = [t.name for t in types if t.gpus >= shape.tensor_parallel_size and fit(shape, t).fits]
    assert fitting and len(fitting) < len(types)
    assert _instance_types(deployment) == fitting
    # Unchanged, the fixture's models fit every type of their pools: no instance-type term.
    assert all(_instance_types(d) is None for d in _deployments(planned(MIXED)).values())


def test_the_scaling_query_counts_running_and_waiting_even_without_a_queue(
    tmp_path: Path,
) -> None:
    """Under promtool: the sum of both gauges over the model's replicas, and still a
    number when nothing waits (a waiting series may be absent)."""
    model = _model()
    query = in_flight_query(model, "inference")
    sel = f'namespace="inference", model_name="{model.served_model_name}"'
    (tmp_path / "rules.yaml").write_text(
        yaml.safe_dump(
            {"groups": [{"name": "t", "rules": [{"record": "t:in_flight", "expr": query}]}]}
        )
    )
    series = [
        {"series": f'vllm:num_requests_running{{{sel}, pod="a"}}', "values": "30x5"},
        {"series": f'vllm:num_requests_waiting{{{sel}, pod="a"}}', "values": "5x5"},
        {"series": f'vllm:num_requests_running{{{sel}, pod="b"}}', "values": "20x5"},
        # Another model's load is not this one's.
        {
            "series": 'vllm:num_requests_running{namespace="inference", model_name="x"}',
            "values": "99x5",
        },
    ]
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": ss,
                "promql_expr_test": [
                    {
                        "expr": "t:in_flight",
                        "eval_time": "2m",
                        "exp_samples": [{"labels": "t:in_flight", "value": v}],
                    }
                ],
            }
            for ss, v in ((series, 55), ([series[0], series[2]], 50))
        ],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    result = promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
