"""Bottlerocket data volume snapshot holding the pinned serving image
(docs/architecture.md, "Cold start").

``python -m tools image-snapshot build <stack> --subnet-id ... --instance-profile ...``
launches a Bottlerocket NVIDIA instance of the stack's AMI release, pulls the serving
image exactly as the nodes reference it (through the stack's pull-through cache, by
digest) into its data volume over SSM, stops it, snapshots the data volume (encrypted,
tagged with the image and its digest), terminates the instance and prints the two
``nodeClass`` keys to put in the stack file. ``check <stack>`` verifies that the stack's
snapshot exists, is complete and encrypted, and holds the image ``serving.vllmImage``
pins. The pull runs like aws-samples/bottlerocket-images-cache does it: ``ctr`` in the
admin container through ``apiclient exec``, with an ECR token of the caller.

Calls (the caller's credentials): ``ssm:GetParameter``, ``ec2:RunInstances``,
``ec2:DescribeInstances``, ``ssm:SendCommand``, ``ssm:GetCommandInvocation``,
``ecr:GetAuthorizationToken``, ``ec2:StopInstances``, ``ec2:CreateSnapshot``,
``ec2:DescribeSnapshots``, ``ec2:TerminateInstances``, ``ec2:CreateTags``; the instance
profile needs ``AmazonSSMManagedInstanceCore`` and pull rights on the cache, and its
subnet a way to SSM and ECR (a NAT gateway, or VPC endpoints for ssm, ssmmessages,
ec2messages, ecr.api, ecr.dkr and S3): Bottlerocket's control container registers with
SSM only then. The ECR token travels as a command parameter, so it is in the account's
SSM command history for the token's 12 hours (as in aws-samples/bottlerocket-images-
cache); only an ECR host gets it.
"""

from __future__ import annotations

import base64
import re
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import boto3

from infra.core.images import by_tag, image_digest, parse_image
from infra.core.schema import ConfigError
from infra.stack.files import ROOT, typed_stack_config
from infra.stack.registry import serving_image
from tools.aws import ToolError, aws_errors

IMAGE_TAG: Final = "llm-platform.io/image"
DIGEST_TAG: Final = "llm-platform.io/image-digest"
DATA_DEVICE: Final = "/dev/xvdb"
BUILD_TIMEOUT_SECONDS: Final = 1800
SSM_ONLINE_TIMEOUT_SECONDS: Final = 600
ADMIN_CONTAINER: Final = "[settings.host-containers.admin]\nenabled = true\n"
"""User data: the pull runs in the admin container, which Bottlerocket starts only when
asked (bottlerocket sources/shared-defaults/aws-host-containers.toml: enabled = false)."""
_ECR_HOST: Final = re.compile(r"^(\d{12})\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com$")


def bottlerocket_ami_parameter(kubernetes_version: str, ami_version: str) -> str:
    """Public SSM parameter of the Bottlerocket NVIDIA AMI for EKS (x86_64)."""
    release = "latest" if ami_version == "latest" else ami_version.removeprefix("v")
    return (
        f"/aws/service/bottlerocket/aws-k8s-{kubernetes_version}-nvidia/x86_64/{release}/image_id"
    )


def ecr_account(image: str) -> str | None:
    """The account of ``image``'s private ECR registry, or ``None`` for another registry."""
    match = _ECR_HOST.match(parse_image(image).registry)
    return match.group(1) if match else None


def pull_commands(image: str, ecr_password: str | None) -> list[str]:
    """Pull ``image`` into the k8s.io namespace the kubelet uses, marked as CRI-managed:
    by tag first, which fills a pull-through cache with the tag's digest (a first pull
    by digest is not fetched upstream: aws/containers-roadmap#2837), then as the nodes
    name it, which now resolves by digest and so checks the content is the pinned one.
    ``ctr`` sends its credentials to every host, so only an ECR image gets them."""
    user = f" --user AWS:{ecr_password}" if ecr_password else ""
    pull = (
        "apiclient exec admin sheltie ctr -a /run/containerd/containerd.sock -n k8s.io "
        f"images pull --label io.cri-containerd.image=managed{user}"
    )
    return ["set -e", *(f"{pull} {ref}" for ref in dict.fromkeys([by_tag(image), image]))]


def _wait(
    done: Callable[[], bool], what: str, timeout: float, sleep: Callable[[float], None]
) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise ToolError(f"timed out after {timeout:.0f} s waiting for {what}")
        sleep(5)


def build_snapshot(
    session: Any,
    *,
    image: str,
    recorded_image: str,
    ami_id: str,
    instance_type: str,
    subnet_id: str,
    instance_profile: str,
    volume_gib: int,
    tags: Mapping[str, str],
    timeout: float = BUILD_TIMEOUT_SECONDS,
    sleep: Callable[[float], None] | None = None,
) -> str:
    """Build the snapshot and return its id (the instance is always terminated).
    ``sleep`` defaults to ``time.sleep`` looked up at the call, so a test patches it."""
    sleep = sleep or time.sleep
    digest = image_digest(image)
    if digest is None:
        raise ToolError(f"{image} is not pinned by digest: pin serving.vllmImage first")
    ec2, ssm, ecr = session.client("ec2"), session.client("ssm"), session.client("ecr")
    tag_list = [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
    image_tags = [
        *tag_list,
        {"Key": IMAGE_TAG, "Value": recorded_image},
        {"Key": DIGEST_TAG, "Value": digest},
    ]
    reservation = ec2.run_instances(
        ImageId=ami_id,
        InstanceType=instance_type,
        SubnetId=subnet_id,
        IamInstanceProfile={"Name": instance_profile},
        MinCount=1,
        MaxCount=1,
        MetadataOptions={"HttpTokens": "required", "HttpPutResponseHopLimit": 1},
        BlockDeviceMappings=[
            # Only the data volume: the OS volume stays the AMI's own (its size follows
            # the release's OS image, and it is thrown away with the builder).
            {
                "DeviceName": DATA_DEVICE,
                "Ebs": {"VolumeSize": volume_gib, "VolumeType": "gp3", "Encrypted": True},
            },
        ],
        TagSpecifications=[{"ResourceType": "instance", "Tags": image_tags}],
        UserData=ADMIN_CONTAINER,
    )
    instance_id = reservation["Instances"][0]["InstanceId"]
    try:
        ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id])

        def online() -> bool:
            found = ssm.describe_instance_information(
                Filters=[{"Key": "InstanceIds", "Values": [instance_id]}]
            )["InstanceInformationList"]
            return bool(found) and found[0].get("PingStatus") == "Online"

        _wait(
            online,
            f"{instance_id} to register with SSM (its subnet needs a NAT gateway or VPC "
            "endpoints for ssm, ssmmessages, ec2messages, ecr.api, ecr.dkr and S3)",
            SSM_ONLINE_TIMEOUT_SECONDS,
            sleep,
        )
        password = None
        account = ecr_account(image)
        if account is not None:
            data = ecr.get_authorization_token(registryIds=[account])["authorizationData"]
            password = base64.b64decode(data[0]["authorizationToken"]).decode().split(":", 1)[1]
        command = ssm.send_command(
            InstanceIds=[instance_id],
            DocumentName="AWS-RunShellScript",
            Parameters={"commands": pull_commands(image, password)},
            TimeoutSeconds=int(timeout),
        )["Command"]["CommandId"]

        def pulled() -> bool:
            try:
                invocation = ssm.get_command_invocation(CommandId=command, InstanceId=instance_id)
            except ssm.exceptions.InvocationDoesNotExist:
                return False  # SSM has not handed the command to the instance yet
            status = invocation["Status"]
            if status in ("Failed", "Cancelled", "TimedOut"):
                raise ToolError(f"pulling {image} on {instance_id} ended {status}")
            return bool(status == "Success")

        _wait(pulled, f"{image} to be pulled on {instance_id}", timeout, sleep)
        ec2.stop_instances(InstanceIds=[instance_id])
        ec2.get_waiter("instance_stopped").wait(InstanceIds=[instance_id])
        described = ec2.describe_instances(InstanceIds=[instance_id])
        mappings = described["Reservations"][0]["Instances"][0]["BlockDeviceMappings"]
        volume = next(m["Ebs"]["VolumeId"] for m in mappings if m["DeviceName"] == DATA_DEVICE)
        snapshot = ec2.create_snapshot(
            VolumeId=volume,
            Description=f"Bottlerocket data volume with {image}",
            TagSpecifications=[{"ResourceType": "snapshot", "Tags": image_tags}],
        )["SnapshotId"]
        ec2.get_waiter("snapshot_completed").wait(
            SnapshotIds=[snapshot], WaiterConfig={"Delay": 15, "MaxAttempts": 240}
        )
        return str(snapshot)
    finally:
        ec2.terminate_instances(InstanceIds=[instance_id])


def check_snapshot(session: Any, snapshot_id: str, image: str) -> list[str]:
    """Problems with ``snapshot_id`` as the data volume for ``image`` (none: fine)."""
    snapshots = session.client("ec2").describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
    if not snapshots:
        return [f"{snapshot_id} does not exist"]
    snap = snapshots[0]
    tags = {t["Key"]: t["Value"] for t in snap.get("Tags", [])}
    problems = []
    if snap["State"] != "completed":
        problems.append(f"{snapshot_id} is {snap['State']}, not completed")
    if not snap.get("Encrypted"):
        problems.append(f"{snapshot_id} is not encrypted: rebuild it (the tool encrypts)")
    if tags.get(DIGEST_TAG) != image_digest(image):
        problems.append(
            f"{snapshot_id} holds {tags.get(IMAGE_TAG, 'an unrecorded image')} "
            f"({tags.get(DIGEST_TAG, 'no digest tag')}), not {image}: rebuild it with "
            "python -m tools image-snapshot build"
        )
    return problems


def main(
    command: str,
    stack: str,
    *,
    subnet_id: str | None = None,
    instance_profile: str | None = None,
    instance_type: str = "g6.xlarge",
    ami_id: str | None = None,
    stack_dir: Path = ROOT,
    session: Any = None,
) -> int:
    """CLI entry: 0 fine, 1 a check failed, 2 bad stack file or AWS error."""
    try:
        cfg = typed_stack_config(stack, stack_dir)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    session = session or boto3.session.Session(region_name=cfg.region)
    target = f"account {cfg.account_id} region {cfg.region}"
    try:
        with aws_errors(target):
            if command == "check":
                snapshot = cfg.node_class.data_volume_snapshot_id
                if snapshot is None:
                    print(f"stack {stack} starts nodes without a data volume snapshot")
                    return 0
                problems = check_snapshot(session, snapshot, cfg.serving.vllm_image)
                for p in problems:
                    print(f"error: {p}", file=sys.stderr)
                if not problems:
                    print(f"{snapshot} holds {cfg.serving.vllm_image}")
                return 1 if problems else 0
            if subnet_id is None or instance_profile is None:
                raise ToolError("build needs --subnet-id and --instance-profile")
            if cfg.node_class.ami_family != "bottlerocket":
                raise ToolError(
                    f"llm-platform:nodeClass.amiFamily = {cfg.node_class.ami_family!r}: a data "
                    "volume snapshot is for bottlerocket nodes only"
                )
            ami = (
                ami_id
                or session.client("ssm").get_parameter(
                    Name=bottlerocket_ami_parameter(cfg.cluster.version, cfg.node_class.ami_version)
                )["Parameter"]["Value"]
            )
            snapshot = build_snapshot(
                session,
                image=serving_image(cfg),
                recorded_image=cfg.serving.vllm_image,
                ami_id=ami,
                instance_type=instance_type,
                subnet_id=subnet_id,
                instance_profile=instance_profile,
                volume_gib=cfg.node_class.root_volume_gib,
                tags=cfg.all_tags,
            )
    except ToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"built {snapshot} holding {serving_image(cfg)}; set in Pulumi.{stack}.yaml:")
    print("  llm-platform:nodeClass:")
    print(f"    dataVolumeSnapshotId: {snapshot}")
    print(f"    dataVolumeImage: {cfg.serving.vllm_image}")
    return 0
