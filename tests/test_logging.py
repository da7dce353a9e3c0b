"""Logging: Fluent Bit pipeline (pure), IAM and KMS scoping, log groups, saved queries."""

from __future__ import annotations

import json
import re
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest

from infra.core import request_log
from infra.core.arns import Arns
from infra.core.conventions import (
    GPU_TOLERATION,
    LOGGING_NAMESPACE,
    PROMETHEUS_SELECTOR_LABELS,
    SYSTEM_TOLERATION,
)
from infra.core.ordering import ClusterRef
from infra.log_shipping.component import LogGroups, LogGroupsArgs, LogShipping, LogShippingArgs
from infra.log_shipping.config import LoggingConfig
from infra.log_shipping.fluent_bit import (
    CHART_VERSION,
    FLUENT_BIT_CHART,
    SERVICE_ACCOUNT,
    STATE_DIR,
    LogRoute,
    check_routes,
    default_routes,
    fluent_bit_policy,
    log_key_policy,
    render_pipeline,
    render_values,
    saved_queries,
)
from tests.harness import (
    SMALL,
    cluster_name,
    find,
    find_all,
    resolve,
    run_component,
    run_stack,
    stack_config,
    typed_config,
)
from tools.logging_summary import logging_summary
from tools.mock_runtime import ACCOUNT_ID, Recorded

ROUTES = default_routes("inference")

# Keys each plugin accepts in Fluent Bit 5.1.1 (the chart's appVersion): the plugin's
# config_map plus the generic keys of src/flb_{input,filter,output}.c. Fluent Bit
# refuses to start on an unknown key, so a typo here is a crash loop on every node.
GENERIC = {
    "INPUT": {"name", "alias", "tag", "log_level", "mem_buf_limit", "storage.type"},
    "FILTER": {"name", "alias", "match", "match_regex", "log_level"},
    "OUTPUT": {
        "name",
        "alias",
        "match",
        "match_regex",
        "log_level",
        "retry_limit",
        "storage.total_limit_size",
        "workers",
    },
}
PLUGIN_KEYS = {
    "tail": {
        "path",
        "exclude_path",
        "key",
        "read_from_head",
        "refresh_interval",
        "rotate_wait",
        "skip_long_lines",
        "buffer_chunk_size",
        "buffer_max_size",
        "db",
        "db.sync",
        "db.locking",
        "db.journal_mode",
        "multiline.parser",
    },
    "multiline": {
        "buffer",
        "mode",
        "flush_ms",
        "multiline.parser",
        "multiline.key_content",
        "emitter_name",
        "emitter_storage.type",
        "emitter_mem_buf_limit",
    },
    "kubernetes": {
        "buffer_size",
        "merge_log",
        "merge_log_key",
        "merge_log_trim",
        "keep_log",
        "kube_url",
        "kube_tag_prefix",
        "labels",
        "annotations",
        "k8s-logging.parser",
        "k8s-logging.exclude",
        "use_kubelet",
        "kube_meta_cache_ttl",
    },
    "rewrite_tag": {"rule", "emitter_name", "emitter_storage.type", "emitter_mem_buf_limit"},
    "cloudwatch_logs": {
        "region",
        "log_group_name",
        "log_stream_name",
        "log_stream_prefix",
        "log_group_template",
        "log_stream_template",
        "log_key",
        "log_format",
        "role_arn",
        "auto_create_group",
        "auto_retry_requests",
        "log_retention_days",
        "endpoint",
        "sts_endpoint",
        "external_id",
        "metric_namespace",
        "metric_dimensions",
        "profile",
        "log_group_class",
        "add_entity",
    },
}
SERVICE_KEYS = {
    "daemon",
    "flush",
    "grace",
    "log_level",
    "parsers_file",
    "http_server",
    "http_listen",
    "http_port",
    "health_check",
    "hc_errors_count",
    "hc_retry_failure_count",
    "hc_period",
    "scheduler.base",
    "scheduler.cap",
    "storage.path",
    "storage.sync",
    "storage.checksum",
    "storage.max_chunks_up",
    "storage.backlog.mem_limit",
    "storage.metrics",
    "storage.delete_irrecoverable_chunks",
}

Section = tuple[str, list[tuple[str, str]]]


def parse(text: str) -> list[Section]:
    """Classic-format sections, in order, with their (key, value) entries."""
    sections: list[Section] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        header = re.fullmatch(r"\[([A-Z]+)\]", line)
        if header:
            sections.append((header.group(1), []))
            continue
        assert line.startswith("    "), line
        key, _, value = line.strip().partition(" ")
        sections[-1][1].append((key, value.strip()))
    return sections


def entries(section: Section) -> dict[str, str]:
    """Keys lower-cased (Fluent Bit is case-insensitive); repeated keys must not clash."""
    keys = [k.lower() for k, _ in section[1] if k.lower() != "rule"]
    assert len(keys) == len(set(keys)), section
    return {k.lower(): v for k, v in section[1]}


def pipeline() -> dict[str, list[Section]]:
    return {k: parse(v) for k, v in render_pipeline("c1", "eu-west-1", ROUTES).items()}


# --------------------------------------------------------------------------- pipeline


def test_every_key_is_one_fluent_bit_5_1_accepts() -> None:
    for part, sections in pipeline().items():
        for kind, items in sections:
            keys = {k.lower() for k, _ in items}
            if kind == "SERVICE":
                assert keys <= SERVICE_KEYS, (part, keys - SERVICE_KEYS)
                continue
            plugin = dict((k.lower(), v) for k, v in items)["name"]
            unknown = keys - GENERIC[kind] - PLUGIN_KEYS[plugin]
            assert not unknown, (plugin, unknown)


def test_config_has_no_helm_template_syntax() -> None:
    """The chart runs every config string through `tpl`."""
    for text in render_pipeline("c1", "eu-west-1", ROUTES).values():
        assert "{{" not in text


def test_tail_input_reads_cri_logs_into_a_filesystem_buffer() -> None:
    [tail] = pipeline()["inputs"]
    assert tail[0] == "INPUT"
    assert entries(tail) == {
        "name": "tail",
        "alias": "containers",
        "tag": "kube.*",
        "path": "/var/log/containers/*.log",
        "multiline.parser": "cri",
        "db": f"{STATE_DIR}/flb_kube.db",
        "db.locking": "true",
        "buffer_max_size": "256k",
        "skip_long_lines": "On",
        "refresh_interval": "10",
        "storage.type": "filesystem",
    }


def test_service_buffers_on_disk_and_serves_health_and_metrics() -> None:
    [service] = pipeline()["service"]
    conf = entries(service)
    assert conf["storage.path"].startswith(f"{STATE_DIR}/")
    assert conf["storage.backlog.mem_limit"] == "16M"
    assert conf["storage.max_chunks_up"] == "64"
    assert conf["storage.metrics"] == "On"
    assert (conf["http_server"], conf["http_port"], conf["health_check"]) == ("On", "2020", "On")
    assert conf["scheduler.cap"] == "300"


def test_filters_run_multiline_first_then_metadata_then_routing() -> None:
    filters = pipeline()["filters"]
    assert [entries(f)["name"] for f in filters] == ["multiline", "kubernetes", "rewrite_tag"]
    multiline, kube, route = (entries(f) for f in filters)
    assert multiline["multiline.parser"] == "python"
    assert multiline["multiline.key_content"] == "log"
    assert multiline["emitter_storage.type"] == "filesystem"
    assert kube["merge_log"] == "On"
    assert kube["keep_log"] == "Off"
    assert kube["k8s-logging.parser"] == "On"
    assert kube["k8s-logging.exclude"] == "On"
    assert kube["kube_tag_prefix"] == "kube.var.log.containers."
    assert {f["match"] for f in (multiline, kube, route)} == {"kube.*"}
    assert route["emitter_storage.type"] == "filesystem"


def test_rewrite_tag_sends_the_serving_namespace_to_its_own_tag() -> None:
    route = pipeline()["filters"][2]
    rules = [v for k, v in route[1] if k == "Rule"]
    assert rules == ["$kubernetes['namespace_name'] ^(inference)$ inference.$TAG false"]
    # Four whitespace-separated fields (upstream splits the rule that way) and a new tag
    # the filter's own Match never catches (upstream rejects emitter cycles).
    key, regex, new_tag, keep = rules[0].split()
    assert key == "$kubernetes['namespace_name']"
    assert not new_tag.startswith("kube.")
    assert re.fullmatch(regex, "inference") and not re.fullmatch(regex, "inference-canary")
    assert keep == "false"


def test_one_cloudwatch_output_per_log_group_without_auto_create() -> None:
    outputs = [entries(o) for o in pipeline()["outputs"]]
    assert [(o["alias"], o["match"], o["log_group_name"]) for o in outputs] == [
        ("cw-inference", "inference.*", "/eks/c1/inference"),
        ("cw-platform", "kube.*", "/eks/c1/platform"),
    ]
    for out in outputs:
        assert out["name"] == "cloudwatch_logs"
        assert out["region"] == "eu-west-1"
        assert out["auto_create_group"] == "Off"
        assert out["retry_limit"] == "no_limits"
        assert out["storage.total_limit_size"] == "1G"
        assert out["log_stream_template"] == (
            "$kubernetes['namespace_name'].$kubernetes['pod_name'].$kubernetes['container_name']"
        )
        assert "log_group_template" not in out
    text = render_pipeline("c1", "eu-west-1", ROUTES)["outputs"].lower()
    assert not re.search(r"auto_create_group\s+(on|true)", text)


def test_a_third_route_gets_its_own_rule_and_output() -> None:
    routes = (LogRoute("inference", ("inference",)), LogRoute("gateway", ("gateway", "rag")))
    config = render_pipeline("c1", "eu-west-1", (*routes, LogRoute("platform")))
    assert "^(gateway|rag)$ gateway.$TAG false" in config["filters"]
    aliases = [entries(o)["alias"] for o in parse(config["outputs"])]
    assert aliases == ["cw-inference", "cw-gateway", "cw-platform"]


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        (
            (LogRoute("platform"), LogRoute("inference", ("inference",))),
            r"^routes \(platform, inference\) must end with exactly one catch-all route "
            r"\(no namespaces\)$",
        ),
        (
            (LogRoute("a", ("x",)), LogRoute("a")),
            r"^routes \(a, a\) must name each group once$",
        ),
        (
            (LogRoute("a", ("x",)), LogRoute("b", ("x",)), LogRoute("c")),
            r"^routes send a namespace to two groups \(x, x\)$",
        ),
    ],
)
def test_bad_routes_are_rejected(routes: tuple[LogRoute, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_routes(routes)


def test_route_group_must_be_a_tag_safe_name() -> None:
    with pytest.raises(
        ValueError,
        match=r"^group \('Inference'\) must be lowercase letters, digits and '-', "
        r"starting with a letter$",
    ):
        LogRoute("Inference")
    with pytest.raises(ValueError, match=r"^group \('kube'\) is reserved for the source tag$"):
        LogRoute("kube")


# --------------------------------------------------------------------------- helm values


def test_values_run_on_every_node_and_mount_the_state_dir() -> None:
    values = render_values("c1", "eu-west-1", ROUTES)
    assert values["kind"] == "DaemonSet"
    assert GPU_TOLERATION in values["tolerations"]
    assert SYSTEM_TOLERATION in values["tolerations"]
    assert values["priorityClassName"] == "system-node-critical"
    assert values["serviceAccount"] == {"create": True, "name": SERVICE_ACCOUNT}
    volumes = {v["name"]: v for v in values["daemonSetVolumes"]}
    mounts = {m["name"]: m for m in values["daemonSetVolumeMounts"]}
    assert volumes.keys() == mounts.keys() == {"varlog", "etcmachineid", "state"}
    assert volumes["state"]["hostPath"] == {"path": STATE_DIR, "type": "DirectoryOrCreate"}
    assert mounts["state"]["mountPath"] == STATE_DIR
    assert values["config"] == render_pipeline("c1", "eu-west-1", ROUTES)


# --------------------------------------------------------------------------- policies


def test_fluent_bit_policy_names_exactly_the_groups() -> None:
    arns = ["arn:aws:logs:r:1:log-group:/eks/c/a", "arn:aws:logs:r:1:log-group:/eks/c/b"]
    [statement] = fluent_bit_policy(arns)["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == [
        "logs:CreateLogStream",
        "logs:DescribeLogStreams",
        "logs:PutLogEvents",
    ]
    assert statement["Resource"] == [
        arns[0],
        f"{arns[0]}:*",
        arns[1],
        f"{arns[1]}:*",
    ]


def test_key_policy_lets_cloudwatch_use_the_key_only_for_these_groups() -> None:
    arns = ["arn:aws:logs:eu-west-1:111122223333:log-group:/eks/c/a"]
    scope = Arns(account_id="111122223333", region="eu-west-1")
    admin, logs = log_key_policy(scope, arns)["Statement"]
    assert admin["Principal"] == {"AWS": "arn:aws:iam::111122223333:root"}
    assert logs["Principal"] == {"Service": "logs.eu-west-1.amazonaws.com"}
    assert logs["Condition"] == {"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": arns}}


# --------------------------------------------------------------------------- fixture stacks


def _group_arns(stack: str, *, control_plane: bool = False) -> list[str]:
    cfg = typed_config(stack)
    prefix = f"arn:aws:logs:{cfg.region}:{cfg.account_id}:log-group:"
    cluster = cfg.cluster.name
    groups = [f"/eks/{cluster}/{g}" for g in ("inference", "platform")]
    if control_plane:
        groups.insert(0, f"/aws/eks/{cluster}/cluster")
    return [prefix + g for g in groups]


def _stack_groups(resources: tuple[Recorded, ...]) -> list[Recorded]:
    return [
        r
        for r in find_all(resources, "aws:cloudwatch/logGroup:LogGroup")
        if r.parent_type == "llm-platform:logging:LogGroups"
    ]


def test_log_groups_with_retention_and_kms(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    cfg = typed_config(fixture_stack)
    key = find(fixture_resources, "aws:kms/key:Key", "log-groups-logs")
    assert key.inputs["enableKeyRotation"] is True
    policy = json.loads(key.inputs["policy"])
    region = cfg.region
    assert policy["Statement"][1]["Principal"] == {"Service": f"logs.{region}.amazonaws.com"}
    groups = _stack_groups(fixture_resources)
    names = sorted(g.inputs["name"] for g in groups)
    # Fluent Bit's, the control plane's, and every other group the stack creates.
    assert set(_group_arns(fixture_stack, control_plane=True)) <= {
        cfg.arns.log_group(n) for n in names
    }
    assert policy["Statement"][1]["Condition"]["ArnEquals"] == {
        "kms:EncryptionContext:aws:logs:arn": sorted(cfg.arns.log_group(n) for n in names)
    }
    for group in groups:
        assert group.inputs["retentionInDays"] == cfg.logging.retention_days
        assert group.inputs["kmsKeyId"] == (
            f"arn:aws:kms:{cfg.region}:{cfg.account_id}:key/log-groups-logs"
        )
        assert group.inputs["tags"]["cost-center"] == cfg.tags["cost-center"]
    # No log group of the stack escapes this component (its retention and key).
    assert len(groups) == len(find_all(fixture_resources, "aws:cloudwatch/logGroup:LogGroup"))


def test_control_plane_log_group_exists_before_the_cluster(
    fixture_resources: tuple[Recorded, ...],
) -> None:
    # EKS would otherwise create /aws/eks/<name>/cluster itself: no retention, no key.
    cluster = find(fixture_resources, "eks:index:Cluster", "llm-eks")
    assert "log-groups-control-plane" in cluster.depends_on
    group = find(fixture_resources, "aws:cloudwatch/logGroup:LogGroup", "log-groups-control-plane")
    assert group.inputs["name"] == f"/aws/eks/{cluster.inputs['name']}/cluster"


def test_without_kms_encryption_there_is_no_key() -> None:
    def plain(config: dict[str, Any]) -> None:
        config["llm-platform:logging"]["kmsEncryption"] = False

    run = run_stack(SMALL, plain)
    assert run.error is None
    assert not [
        r for r in run.resources if r.type == "aws:kms/key:Key" and r.name == "log-groups-logs"
    ]
    for group in find_all(run.resources, "aws:cloudwatch/logGroup:LogGroup"):
        assert "kmsKeyId" not in group.inputs


def test_fluent_bit_role_is_pod_identity_scoped_to_the_groups(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    role = find(fixture_resources, "aws:iam/role:Role", "log-shipping-fluent-bit")
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert trust == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
        }
    ]
    policy = json.loads(
        find(fixture_resources, "aws:iam/rolePolicy:RolePolicy", "log-shipping-fluent-bit").inputs[
            "policy"
        ]
    )
    assert policy == fluent_bit_policy(_group_arns(fixture_stack))
    association = find(
        fixture_resources,
        "aws:eks/podIdentityAssociation:PodIdentityAssociation",
        "log-shipping-fluent-bit",
    )
    assert association.inputs["clusterName"] == cluster_name(fixture_stack)
    assert association.inputs["namespace"] == LOGGING_NAMESPACE
    assert association.inputs["serviceAccount"] == SERVICE_ACCOUNT
    account = typed_config(fixture_stack).account_id
    assert association.inputs["roleArn"] == f"arn:aws:iam::{account}:role/log-shipping-fluent-bit"
    assert "llm-eks" in association.depends_on


def _actions(document: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for statement in document.get("Statement", []):
        action = statement.get("Action", [])
        out += [action] if isinstance(action, str) else action
    return out


def test_no_other_iam_grants_cloudwatch_logs(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    """Node roles (and every other principal) get no CloudWatch Logs rights."""
    ours = find(fixture_resources, "aws:iam/rolePolicy:RolePolicy", "log-shipping-fluent-bit")
    # The CI runner's build role writes its own build logs, and nothing else.
    ci = find(fixture_resources, "aws:iam/rolePolicy:RolePolicy", "ci-role")
    ci_logs = [s for s in json.loads(ci.inputs["policy"])["Statement"] if "logs:" in str(s)]
    assert [s["Sid"] for s in ci_logs] == ["WriteBuildLogs"]
    assert all("/aws/codebuild/" in r for r in ci_logs[0]["Resource"])
    documents = [
        json.loads(r.inputs["policy"])
        for r in fixture_resources
        if r.type in ("aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy")
        and r not in (ours, ci)
    ]
    documents += [
        json.loads(r.inputs["assumeRolePolicy"])
        for r in find_all(fixture_resources, "aws:iam/role:Role")
    ]
    assert not [a for d in documents for a in _actions(d) if a.startswith("logs:") or a == "*"]
    managed = [
        r.inputs["policyArn"]
        for r in find_all(fixture_resources, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    ]
    assert managed
    assert not [arn for arn in managed if "CloudWatch" in arn]


def test_release_is_pinned_and_waits_for_identity_and_groups(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    release = find(fixture_resources, "kubernetes:helm.sh/v3:Release", "log-shipping-fluent-bit")
    assert release.inputs["name"] == "fluent-bit"
    assert release.inputs["chart"] == FLUENT_BIT_CHART.chart
    assert release.inputs["version"] == CHART_VERSION
    assert release.inputs["repositoryOpts"] == {"repo": FLUENT_BIT_CHART.repository}
    assert release.inputs["namespace"] == LOGGING_NAMESPACE
    assert release.inputs["createNamespace"] is True
    assert set(release.depends_on) >= {
        "log-shipping-fluent-bit",
        "log-groups-inference",
        "log-groups-platform",
    }
    outputs = [entries(o) for o in parse(release.inputs["values"]["config"]["outputs"])]
    assert {o["region"] for o in outputs} == {typed_config(fixture_stack).region}
    assert [o["log_group_name"] for o in outputs] == [
        f"/eks/{cluster_name(fixture_stack)}/inference",
        f"/eks/{cluster_name(fixture_stack)}/platform",
    ]
    serving = (
        stack_config(fixture_stack).get("llm-platform:serving", {}).get("namespace", "inference")
    )
    assert f"^({serving})$" in release.inputs["values"]["config"]["filters"]


def test_service_monitor_is_selected_by_prometheus(fixture_resources: tuple[Recorded, ...]) -> None:
    monitor = find(
        fixture_resources,
        "kubernetes:monitoring.coreos.com/v1:ServiceMonitor",
        "log-shipping-fluent-bit",
    ).inputs
    assert monitor["metadata"]["labels"] == PROMETHEUS_SELECTOR_LABELS
    assert monitor["metadata"]["namespace"] == LOGGING_NAMESPACE
    # The chart's Service: selector labels of release "fluent-bit", port named "http".
    assert monitor["spec"]["selector"] == {
        "matchLabels": {
            "app.kubernetes.io/name": "fluent-bit",
            "app.kubernetes.io/instance": "fluent-bit",
        }
    }
    assert monitor["spec"]["endpoints"] == [
        {"port": "http", "path": "/api/v2/metrics/prometheus", "interval": "30s"}
    ]


def test_saved_queries_search_both_groups(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    queries = {
        q.inputs["name"]: q
        for q in find_all(fixture_resources, "aws:cloudwatch/queryDefinition:QueryDefinition")
    }
    cluster = cluster_name(fixture_stack)
    assert sorted(queries) == [
        f"{cluster}/recent-errors",
        f"{cluster}/slow-requests-by-model",
        f"{cluster}/token-usage-per-hour-by-model",
    ]
    for query in queries.values():
        assert query.inputs["logGroupNames"] == [
            f"/eks/{cluster}/inference",
            f"/eks/{cluster}/platform",
        ]
    errors = queries[f"{cluster}/recent-errors"].inputs["queryString"]
    assert "kubernetes.pod_name" in errors and "| limit 100" in errors
    slow = queries[f"{cluster}/slow-requests-by-model"].inputs["queryString"]
    assert "latency_ms > 5000" in slow and "by model, served_by" in slow
    tokens = queries[f"{cluster}/token-usage-per-hour-by-model"].inputs["queryString"]
    assert "sum(input_tokens)" in tokens and "by bin(1h), served_by" in tokens


def test_queries_use_only_fields_the_pipeline_produces() -> None:
    """Every field a query names is a kubernetes filter field, a CRI field, a field of
    the gateway's request log (``infra.core.request_log``; the real proxy's lines are fed
    through the queries' fields in ``tests/test_gateway_proxy.py``), or a CloudWatch
    built-in."""
    produced = {"log", "stream", "time", "level", *request_log.FIELDS}
    for query in saved_queries(ROUTES):
        fields = re.findall(r"fields ([^|]+)", query.query)[0]
        for name in (f.strip() for f in fields.split(",")):
            assert name.startswith("@") or name.startswith("kubernetes.") or name in produced, (
                query.name,
                name,
            )


# --------------------------------------------------------------------------- args


def test_component_routes_the_given_serving_namespace_and_region() -> None:
    def build() -> tuple[dict[str, str], str, str | None]:
        groups = LogGroups(
            "t",
            LogGroupsArgs(
                config=LoggingConfig(retention_days=7),
                cluster_name="c1",
                serving_namespace="models",
                arns=Arns(account_id=ACCOUNT_ID, region="eu-west-1"),
            ),
        )
        logs = LogShipping(
            "t",
            LogShippingArgs(
                cluster=ClusterRef.existing("c1"),
                region="eu-west-1",
                serving_namespace="models",
                log_groups=groups,
            ),
            opts=pulumi.ResourceOptions(provider=k8s.Provider("k8s", kubeconfig="{}")),
        )
        key = resolve(groups.kms_key_arn) if groups.kms_key_arn is not None else None
        return logs.log_group_names, resolve(logs.role_arn), key

    resources, (names, role_arn, key_arn) = run_component(build)
    assert names == {"inference": "/eks/c1/inference", "platform": "/eks/c1/platform"}
    assert role_arn == f"arn:aws:iam::{ACCOUNT_ID}:role/t-fluent-bit"
    assert key_arn == f"arn:aws:kms:us-west-2:{ACCOUNT_ID}:key/t-logs"  # the mocks' region
    release = find(resources, "kubernetes:helm.sh/v3:Release", "t-fluent-bit")
    assert "^(models)$" in release.inputs["values"]["config"]["filters"]
    policy = json.loads(find(resources, "aws:kms/key:Key", "t-logs").inputs["policy"])
    assert policy["Statement"][1]["Condition"]["ArnEquals"][
        "kms:EncryptionContext:aws:logs:arn"
    ] == [
        f"arn:aws:logs:eu-west-1:{ACCOUNT_ID}:log-group:/aws/eks/c1/cluster",
        f"arn:aws:logs:eu-west-1:{ACCOUNT_ID}:log-group:/eks/c1/inference",
        f"arn:aws:logs:eu-west-1:{ACCOUNT_ID}:log-group:/eks/c1/platform",
    ]


def test_plan_summary_lists_groups_and_queries(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    cfg = typed_config(fixture_stack)
    cluster, days = cfg.cluster.name, cfg.logging.retention_days
    names = sorted(g.inputs["name"] for g in _stack_groups(fixture_resources))
    assert {f"/aws/eks/{cluster}/cluster", f"/eks/{cluster}/inference"} <= set(names)
    assert logging_summary(list(fixture_resources), cfg) == [
        "Logs (CloudWatch):",
        *(f"  {n}: {days} days, KMS" for n in names),
        f"  saved query {cluster}/recent-errors",
        f"  saved query {cluster}/slow-requests-by-model",
        f"  saved query {cluster}/token-usage-per-hour-by-model",
    ]
