"""Data volume snapshot with the pinned serving image: built and recorded by the tool
(moto), checked against the pinned digest by the tool and by the config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from infra.core.images import image_digest
from infra.core.schema import ConfigError
from infra.stack.cold_start import node_start
from infra.stack.files import typed_stack_config
from infra.stack.registry import serving_image
from tests.harness import FIXTURES, SMALL, run_stack
from tools import image_snapshot

DIGEST = "sha256:" + "5a" * 32
NS = "llm-platform"
RECORDED = {
    "amiFamily": "bottlerocket",
    "amiVersion": "v1.50.0",
    "dataVolumeSnapshotId": "snap-0123456789abcdef0",
    "dataVolumeImage": f"vllm/vllm-openai:v0.33.0@{DIGEST}",
}
"""A stack file's nodeClass keys as the build prints them."""


def _stack_dir(tmp_path: Path, node_class: dict[str, Any] | None = None) -> Path:
    """The small fixture with a digest-pinned image (and ``node_class`` merged in)."""
    doc = yaml.safe_load((FIXTURES / f"Pulumi.{SMALL}.yaml").read_text())
    config = doc["config"]
    image = f"{config.get(f'{NS}:serving', {}).get('vllmImage', 'vllm/vllm-openai:v0.33.0')}"
    config[f"{NS}:serving"] = {**config.get(f"{NS}:serving", {}), "vllmImage": f"{image}@{DIGEST}"}
    config[f"{NS}:nodeClass"] = {**config[f"{NS}:nodeClass"], **(node_class or {})}
    (tmp_path / f"Pulumi.{SMALL}.yaml").write_text(yaml.safe_dump(doc))
    return tmp_path


def _network(session: Any) -> tuple[str, str]:
    ec2, iam = session.client("ec2"), session.client("iam")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.0.0/24")["Subnet"]["SubnetId"]
    iam.create_instance_profile(InstanceProfileName="snapshot-builder")
    return subnet, "snapshot-builder"


def test_ami_parameter_names_the_stacks_bottlerocket_release() -> None:
    assert image_snapshot.bottlerocket_ami_parameter("1.33", "v1.50.0") == (
        "/aws/service/bottlerocket/aws-k8s-1.33-nvidia/x86_64/1.50.0/image_id"
    )
    assert image_snapshot.bottlerocket_ami_parameter("1.33", "latest").endswith("/latest/image_id")


class _SsmRegistering:
    """moto's SSM, plus the one call it lacks: the instance registers on the third poll
    (Bottlerocket's control container takes a while; commands sent before fail)."""

    def __init__(self, ssm: Any) -> None:
        self._ssm, self.polls = ssm, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ssm, name)

    def describe_instance_information(self, **kwargs: Any) -> dict[str, Any]:
        self.polls += 1
        (instance,) = kwargs["Filters"][0]["Values"]
        online = [{"InstanceId": instance, "PingStatus": "Online"}]
        return {"InstanceInformationList": online if self.polls >= 3 else []}


class _Session:
    """A boto3 session whose SSM client is :class:`_SsmRegistering`."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self.ssm = _SsmRegistering(session.client("ssm"))

    def client(self, name: str) -> Any:
        return self.ssm if name == "ssm" else self._session.client(name)


def test_build_pulls_by_digest_snapshots_the_data_volume_and_records_the_image(
    aws: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stack_dir = _stack_dir(tmp_path, {"amiFamily": "bottlerocket", "amiVersion": "v1.50.0"})
    cfg = typed_stack_config(SMALL, stack_dir)
    monkeypatch.setattr(image_snapshot.time, "sleep", lambda _s: None)
    session = _Session(boto3.session.Session(region_name=cfg.region))
    subnet, profile = _network(session._session)
    ami = session.client("ec2").describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    code = image_snapshot.main(
        "build",
        SMALL,
        subnet_id=subnet,
        instance_profile=profile,
        ami_id=ami,
        stack_dir=stack_dir,
        session=session,
    )
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, captured.err
    ec2 = session.client("ec2")
    (snap,) = ec2.describe_snapshots(
        Filters=[{"Name": "tag-key", "Values": [image_snapshot.IMAGE_TAG]}]
    )["Snapshots"]
    tags = {t["Key"]: t["Value"] for t in snap["Tags"]}
    assert tags[image_snapshot.IMAGE_TAG] == cfg.serving.vllm_image
    assert tags[image_snapshot.DIGEST_TAG] == DIGEST
    assert tags["cost-center"] == cfg.tags["cost-center"]
    assert snap["Encrypted"] is True
    assert f"dataVolumeSnapshotId: {snap['SnapshotId']}" in out
    assert f"dataVolumeImage: {cfg.serving.vllm_image}" in out
    # The builder instance is gone.
    states = [
        i["State"]["Name"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
    ]
    assert states == ["terminated"]
    # Sent once the instance was online with SSM, never before.
    assert session.ssm.polls == 3
    # What was pulled: by tag (which fills the pull-through cache), then the cached image
    # by digest as the pods name it; the ECR password goes to the ECR host only.
    (command,) = session.client("ssm").list_commands()["Commands"]
    first, by_tag, by_digest = command["Parameters"]["commands"]
    assert first == "set -e"
    pinned = serving_image(cfg)
    assert image_digest(pinned) == DIGEST and pinned.startswith(f"{cfg.account_id}.dkr.ecr.")
    assert by_tag.endswith(f" {pinned.removesuffix('@' + DIGEST)}")
    assert by_digest.endswith(f" {pinned}")
    for line in (by_tag, by_digest):
        assert "-n k8s.io images pull --label io.cri-containerd.image=managed --user AWS:" in line

    # Recorded in the stack file, the check passes; a new digest fails it.
    recorded = _stack_dir(
        tmp_path,
        {
            **RECORDED,
            "dataVolumeSnapshotId": snap["SnapshotId"],
            "dataVolumeImage": cfg.serving.vllm_image,
        },
    )
    assert image_snapshot.main("check", SMALL, stack_dir=recorded, session=session) == 0
    other = "sha256:" + "6b" * 32
    problems = image_snapshot.check_snapshot(
        session, snap["SnapshotId"], cfg.serving.vllm_image.replace(DIGEST, other)
    )
    assert problems == [
        f"{snap['SnapshotId']} holds {cfg.serving.vllm_image} ({DIGEST}), not "
        f"{cfg.serving.vllm_image.replace(DIGEST, other)}: rebuild it with "
        "python -m tools image-snapshot build"
    ]


def test_build_refuses_an_image_without_digest(aws: None) -> None:
    session = boto3.session.Session(region_name="us-west-2")
    with pytest.raises(image_snapshot.ToolError, match=r"is not pinned by digest"):
        image_snapshot.build_snapshot(
            session,
            image="vllm/vllm-openai:v0.33.0",
            recorded_image="vllm/vllm-openai:v0.33.0",
            ami_id="ami-1",
            instance_type="g6.xlarge",
            subnet_id="subnet-1",
            instance_profile="p",
            volume_gib=100,
            tags={},
        )


def test_check_reports_a_missing_snapshot_as_one_line(
    aws: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack_dir = _stack_dir(tmp_path, RECORDED)
    session = boto3.session.Session(region_name="us-west-2")
    assert image_snapshot.main("check", SMALL, stack_dir=stack_dir, session=session) == 2
    assert capsys.readouterr().err.startswith("error: AWS DescribeSnapshots failed for account")


def test_snapshot_start_is_budgeted_with_its_initialization_rate(tmp_path: Path) -> None:
    stack_dir = _stack_dir(tmp_path, {**RECORDED, "volumeInitializationRate": 200})
    start = node_start(typed_stack_config(SMALL, stack_dir))
    assert (start.ami_family, start.image_on_snapshot) == ("bottlerocket", True)
    assert start.volume_initialization_mib_per_second == 200


def _snapshot_config(image: str, recorded: str) -> Any:
    def mutate(config: dict[str, Any]) -> None:
        config[f"{NS}:serving"] = {**config.get(f"{NS}:serving", {}), "vllmImage": image}
        config[f"{NS}:nodeClass"] = {
            **config[f"{NS}:nodeClass"],
            **RECORDED,
            "dataVolumeImage": recorded,
        }

    return mutate


@pytest.mark.parametrize(
    ("image", "recorded", "problem"),
    [
        (
            "vllm/vllm-openai:v0.33.0",
            "vllm/vllm-openai:v0.33.0",
            f'{NS}:serving.vllmImage = "vllm/vllm-openai:v0.33.0": pin it by digest '
            "(...@sha256:<digest>) to start nodes from a data volume snapshot",
        ),
        (
            f"vllm/vllm-openai:v0.33.1@{DIGEST}",
            f"vllm/vllm-openai:v0.33.0@{DIGEST}",
            f'{NS}:nodeClass.dataVolumeImage = "vllm/vllm-openai:v0.33.0@{DIGEST}": the '
            f"snapshot holds another image than serving.vllmImage (vllm/vllm-openai:v0.33.1@"
            f"{DIGEST}); rebuild it with python -m tools image-snapshot build",
        ),
    ],
)
def test_config_rejects_a_snapshot_of_another_image(
    image: str, recorded: str, problem: str
) -> None:
    run = run_stack(SMALL, _snapshot_config(image, recorded))
    assert isinstance(run.error, ConfigError)
    assert problem in run.error.problems
    assert not run.resources


def _node_class(**keys: Any) -> Any:
    def mutate(config: dict[str, Any]) -> None:
        config[f"{NS}:nodeClass"] = {**config[f"{NS}:nodeClass"], **keys}

    return mutate


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        (
            {k: v for k, v in RECORDED.items() if k != "dataVolumeImage"},
            f"{NS}:nodeClass.dataVolumeImage = null: set together with dataVolumeSnapshotId "
            "(both as tools image-snapshot build prints them)",
        ),
        (
            {"imageVolumeThroughputMiBps": 1000, "imageVolumeIops": 3000},
            f"{NS}:nodeClass.imageVolumeThroughputMiBps = 1000: gp3 allows at most 0.25 MiB/s "
            "per IOPS (750 with imageVolumeIops 3000)",
        ),
    ],
)
def test_node_class_image_keys_are_checked(keys: dict[str, Any], problem: str) -> None:
    run = run_stack(SMALL, _node_class(**keys))
    assert isinstance(run.error, ConfigError)
    assert run.error.problems == [problem]


def test_only_an_ecr_image_gets_the_ecr_password() -> None:
    ecr = f"111122223333.dkr.ecr.us-west-2.amazonaws.com/c/vllm/vllm-openai:v0.33.0@{DIGEST}"
    assert image_snapshot.ecr_account(ecr) == "111122223333"
    assert image_snapshot.ecr_account(f"vllm/vllm-openai:v0.33.0@{DIGEST}") is None
    hub = image_snapshot.pull_commands(f"vllm/vllm-openai:v0.33.0@{DIGEST}", None)
    assert hub[0] == "set -e" and not any("--user" in c for c in hub)
    assert [c.rsplit(" ", 1)[1] for c in hub[1:]] == [
        "docker.io/vllm/vllm-openai:v0.33.0",
        f"vllm/vllm-openai:v0.33.0@{DIGEST}",
    ]


def test_build_stops_when_the_instance_never_reaches_ssm(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No NAT and no endpoints: the tool says what the subnet lacks, and the builder is
    terminated."""
    session = _Session(boto3.session.Session(region_name="us-west-2"))
    session.ssm.polls = -(10**9)  # never online
    subnet, profile = _network(session._session)
    ec2 = session.client("ec2")
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    clock = iter(range(0, 10**7, 60))  # each look at the clock: a minute later
    monkeypatch.setattr(image_snapshot.time, "monotonic", lambda: float(next(clock)))
    with pytest.raises(image_snapshot.ToolError, match=r"register with SSM \(its subnet needs"):
        image_snapshot.build_snapshot(
            session,
            image=f"vllm/vllm-openai:v0.33.0@{DIGEST}",
            recorded_image=f"vllm/vllm-openai:v0.33.0@{DIGEST}",
            ami_id=ami,
            instance_type="g6.xlarge",
            subnet_id=subnet,
            instance_profile=profile,
            volume_gib=100,
            tags={},
            sleep=lambda _s: None,
        )
    states = [
        i["State"]["Name"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
    ]
    assert states == ["terminated"]


def test_build_needs_a_bottlerocket_stack(
    aws: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack_dir = _stack_dir(tmp_path)  # the fixture's nodes are AL2023
    code = image_snapshot.main(
        "build", SMALL, subnet_id="subnet-1", instance_profile="p", stack_dir=stack_dir
    )
    assert code == 2
    assert capsys.readouterr().err == (
        "error: llm-platform:nodeClass.amiFamily = 'al2023': a data volume snapshot is for "
        "bottlerocket nodes only\n"
    )
