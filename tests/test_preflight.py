"""Preflight: offerings per zone, vCPU quotas and spot prices (moto + Stubber)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from infra.karpenter.config import GpuPoolConfig
from infra.stack.config import PlatformConfig
from tests.harness import FIXTURE_STACKS, FIXTURES, HA, SMALL, typed_config
from tools import preflight

# What moto (5.2.5) reports for us-west-2: g5 is offered in us-west-2a/b/c but not 2d,
# g6 in all four zones. Its spot price history answers 0.00001 for everything.
SMALL_QUOTAS_OK = {"L-DB2E81BA": 0.0, "L-3819A6DF": 64.0, "L-417A185B": 0.0, "L-7212CCBC": 0.0}


class QuotaStubSession(boto3.session.Session):
    """A session whose Service Quotas client answers from a Stubber (moto has only VPC
    quotas); every other client is a normal one (moto when mocked)."""

    def __init__(self, region: str) -> None:
        super().__init__(region_name=region)
        self.quotas = super().client("service-quotas", region_name=region)
        self.stubber = Stubber(self.quotas)

    def client(self, service_name: str, *args: Any, **kwargs: Any) -> Any:
        if service_name == "service-quotas":
            return self.quotas
        return super().client(service_name, *args, **kwargs)

    def expect_quotas(self, values: dict[str, float]) -> None:
        for quota in preflight.VCPU_QUOTAS:
            self.stubber.add_response(
                "get_service_quota",
                {"Quota": {"QuotaCode": quota.code, "Value": values[quota.code]}},
                {"ServiceCode": "ec2", "QuotaCode": quota.code},
            )
        self.stubber.activate()


def _with_pools(cfg: PlatformConfig, *pools: GpuPoolConfig) -> PlatformConfig:
    return cfg.model_copy(update={"gpu_pools": pools})


def test_required_vcpus_of_the_fixture_stacks() -> None:
    # small: gpu-lab, g5/g6 up to 4xlarge (1 GPU, 16 vCPUs) or 12xlarge (4 GPUs, 48 vCPUs),
    # gpuLimit 4, spot only: the worst case is 4 x 4xlarge = 64 vCPUs of G/VT spot.
    assert preflight.required_vcpus(typed_config(SMALL)) == {
        "L-DB2E81BA": 0,
        "L-3819A6DF": 64,
        "L-417A185B": 0,
        "L-7212CCBC": 0,
    }
    # ha: gpuLimit 16, spot and on-demand: 16 x g6e/g6.4xlarge = 256 vCPUs each.
    assert preflight.required_vcpus(typed_config(HA)) == {
        "L-DB2E81BA": 256,
        "L-3819A6DF": 256,
        "L-417A185B": 0,
        "L-7212CCBC": 0,
    }


def test_required_vcpus_sum_pools_per_quota_family_and_capacity_type() -> None:
    cfg = _with_pools(
        typed_config(HA),
        GpuPoolConfig(
            name="h100",
            instance_families=("p5",),
            capacity_types=("on-demand",),
            gpu_limit=8,
        ),
        GpuPoolConfig(
            name="l4", instance_families=("g6",), instance_sizes=("xlarge",), gpu_limit=3
        ),
        GpuPoolConfig(
            name="l40s",
            instance_families=("g6e",),
            instance_sizes=("12xlarge",),
            capacity_types=("spot",),
            gpu_limit=6,
        ),
    )
    assert preflight.required_vcpus(cfg) == {
        # l4: 3 x g6.xlarge (4 vCPUs) on-demand and spot
        "L-DB2E81BA": 12,
        # plus l40s: ceil(6 / 4) = 2 x g6e.12xlarge (48 vCPUs), spot only
        "L-3819A6DF": 12 + 96,
        # h100: 8 x p5.4xlarge (16 vCPUs) = 128 < 1 x p5.48xlarge (192 vCPUs)
        "L-417A185B": 192,
        "L-7212CCBC": 0,
    }


def test_latest_spot_price_per_type_and_zone() -> None:
    old, new = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)
    history = [
        {
            "InstanceType": "g6.xlarge",
            "AvailabilityZone": "a",
            "SpotPrice": "0.5",
            "Timestamp": new,
        },
        {
            "InstanceType": "g6.xlarge",
            "AvailabilityZone": "a",
            "SpotPrice": "0.9",
            "Timestamp": old,
        },
        {
            "InstanceType": "g6.xlarge",
            "AvailabilityZone": "b",
            "SpotPrice": "0.7",
            "Timestamp": old,
        },
    ]
    assert preflight.latest_spot_prices(history) == {
        ("g6.xlarge", "a"): preflight.SpotPrice(0.5, new),
        ("g6.xlarge", "b"): preflight.SpotPrice(0.7, old),
    }


@pytest.mark.usefixtures("aws")
def test_clean_stack_prints_offerings_prices_and_quotas(capsys: pytest.CaptureFixture[str]) -> None:
    session = QuotaStubSession("us-west-2")
    session.expect_quotas(SMALL_QUOTAS_OK)
    assert preflight.main(SMALL, FIXTURES, session=session) == 0
    out = capsys.readouterr()
    assert out.err == ""
    lines = out.out.splitlines()
    assert lines[0] == f"Preflight of stack {SMALL}: region us-west-2, zones us-west-2a, us-west-2b"
    assert "  gpu-lab  g5.xlarge    1     4      0.0000      0.0000" in lines
    assert "  gpu-lab  g6.12xlarge  4     48     0.0000      0.0000" in lines
    assert "  L-3819A6DF  All G and VT Spot Instance Requests   64      0       64     ok" in lines
    assert lines[-1] == f"preflight of stack {SMALL}: ok"
    session.stubber.assert_no_pending_responses()


@pytest.mark.usefixtures("aws")
def test_zone_that_does_not_offer_a_type_is_blocking() -> None:
    cfg = typed_config(SMALL).model_copy(update={"zones": ("us-west-2a", "us-west-2d")})
    session = QuotaStubSession("us-west-2")
    session.expect_quotas(SMALL_QUOTAS_OK)
    report = preflight.evaluate(cfg, preflight.observe(cfg, session))
    assert report.exit_code == 1
    g5 = [t.name for t in preflight.pool_types(cfg)["gpu-lab"] if t.family == "g5"]
    assert report.blocking == [
        f"{name} (pool gpu-lab) is not offered in us-west-2d: drop that zone from "
        f"llm-platform:zones, or drop {name} from llm-platform:gpuPools[0] "
        f"(instanceFamilies g5 / instanceSizes {name.split('.')[1]})"
        for name in g5
    ]
    assert "  gpu-lab  g5.xlarge    1     4      0.0000      NOT OFFERED" in report.lines


@pytest.mark.usefixtures("aws")
def test_quota_too_low_says_which_increase_to_request(
    capsys: pytest.CaptureFixture[str],
) -> None:
    session = QuotaStubSession("us-west-2")
    session.expect_quotas({**SMALL_QUOTAS_OK, "L-3819A6DF": 32.0})
    assert preflight.main(SMALL, FIXTURES, session=session) == 1
    out = capsys.readouterr()
    assert "  L-3819A6DF  All G and VT Spot Instance Requests   64      0       32     TOO LOW" in (
        out.out.splitlines()
    )
    assert out.err == (
        "\nBlocking findings (1):\n"
        "  - quota L-3819A6DF (All G and VT Spot Instance Requests) is 32 vCPUs in us-west-2; "
        "the GPU pools need 64: request an increase of 32 vCPUs (aws service-quotas "
        "request-service-quota-increase --service-code ec2 --quota-code L-3819A6DF "
        "--desired-value 64 --region us-west-2), or lower llm-platform:gpuPools[].gpuLimit / "
        "drop spot from capacityTypes\n"
    )
    assert out.out.splitlines()[-1] == f"preflight of stack {SMALL}: BLOCKED"


@pytest.mark.usefixtures("aws")
def test_instances_outside_the_cluster_count_against_the_quota() -> None:
    """The quota is for the account and region: other GPU instances leave less of it.
    The cluster's own nodes (tagged by Karpenter) are already in what the pools need."""
    cfg = typed_config(SMALL)
    session = QuotaStubSession("us-west-2")
    session.expect_quotas(SMALL_QUOTAS_OK)
    ec2 = session.client("ec2", region_name=cfg.region)
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]

    def launch(instance_type: str, *, spot: bool = False, cluster: str | None = None) -> None:
        tags = [{"Key": preflight.CLUSTER_TAG, "Value": cluster}] if cluster else []
        ec2.run_instances(
            ImageId=ami,
            MinCount=1,
            MaxCount=1,
            InstanceType=instance_type,
            **({"InstanceMarketOptions": {"MarketType": "spot"}} if spot else {}),
            **({"TagSpecifications": [{"ResourceType": "instance", "Tags": tags}]} if tags else {}),
        )

    launch("g5.4xlarge", spot=True)  # 16 vCPUs of another team's spot
    launch("g5.2xlarge", spot=True, cluster=cfg.cluster.name)  # one of the pools' own nodes
    launch("p4d.24xlarge")  # 96 on-demand P vCPUs, of a quota the pools do not use
    launch("m5.large")  # no GPU quota
    observed = preflight.observe(cfg, session)
    assert observed.in_use == {"L-DB2E81BA": 0, "L-3819A6DF": 16, "L-417A185B": 96, "L-7212CCBC": 0}
    report = preflight.evaluate(cfg, observed)
    assert "  L-417A185B  Running On-Demand P instances         0       96      0      ok" in (
        report.lines
    )
    need = preflight.required_vcpus(cfg)["L-3819A6DF"]
    assert need == SMALL_QUOTAS_OK["L-3819A6DF"]  # enough on its own, not with the 16 in use
    assert report.blocking == [
        f"quota L-3819A6DF (All G and VT Spot Instance Requests) is {need} vCPUs in us-west-2, "
        f"16 of them used by instances outside the cluster; the GPU pools need {need}: request "
        "an increase of 16 vCPUs (aws service-quotas request-service-quota-increase "
        f"--service-code ec2 --quota-code L-3819A6DF --desired-value {need + 16} --region "
        "us-west-2), or lower llm-platform:gpuPools[].gpuLimit / drop spot from capacityTypes"
    ]


def test_quota_never_changed_falls_back_to_the_aws_default() -> None:
    session = QuotaStubSession("us-west-2")
    session.stubber.add_client_error(
        "get_service_quota", service_error_code="NoSuchResourceException", http_status_code=404
    )
    session.stubber.add_response(
        "get_aws_default_service_quota",
        {"Quota": {"QuotaCode": "L-417A185B", "Value": 0.0}},
        {"ServiceCode": "ec2", "QuotaCode": "L-417A185B"},
    )
    session.stubber.activate()
    assert preflight._quota_value(session.quotas, "L-417A185B") == 0.0
    session.stubber.assert_no_pending_responses()


def test_access_denied_is_one_line_not_a_traceback(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    session = QuotaStubSession("us-west-2")
    session.stubber.add_client_error(
        "get_service_quota",
        service_error_code="AccessDeniedException",
        service_message="not authorized to perform servicequotas:GetServiceQuota",
        http_status_code=403,
    )
    session.stubber.activate()
    assert preflight.main(SMALL, FIXTURES, session=session) == 2
    assert capsys.readouterr().err == (
        f"error: AWS GetServiceQuota failed for stack {SMALL} (us-west-2): AccessDeniedException: "
        "not authorized to perform servicequotas:GetServiceQuota\n"
    )


def test_missing_credentials_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    from tools.__main__ import main as cli

    assert cli(["preflight", SMALL, "--stack-dir", str(FIXTURES)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: no AWS credentials found for stack {SMALL} (us-west-2): set AWS_PROFILE (or run "
        "`aws sso login`), or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY\n"
    )


def test_bad_stack_is_a_config_error(capsys: pytest.CaptureFixture[str]) -> None:
    from tools.__main__ import main as cli

    assert cli(["preflight", "absent", "--stack-dir", str(FIXTURES)]) == 2
    assert capsys.readouterr().err == (
        "error: invalid stack configuration (1 problem):\n"
        f"  - no stack file Pulumi.absent.yaml; stacks: {', '.join(FIXTURE_STACKS)}\n"
    )
