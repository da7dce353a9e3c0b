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
profile needs ``AmazonSSMManagedInstanceCore`` and pull rights on the cache.
"""

from __future__ import annotations

import base64
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import boto3

from infra.core.images import image_digest
from infra.core.schema import ConfigError
from infra.stack.files import ROOT, typed_stack_config
from infra.stack.registry import serving_image
from tools.aws import ToolError, aws_errors

IMAGE_TAG: Final = "llm-platform.io/image"
DIGEST_TAG: Final = "llm-platform.io/image-digest"
DATA_DEVICE: Final = "/dev/xvdb"
BUILD_TIMEOUT_SECONDS: Final = 1800


def bottlerocket_ami_parameter(kubernetes_version: str, ami_version: str) -> str:
    """Public SSM parameter of the Bottlerocket NVIDIA AMI for EKS (x86_64)."""
    release = "latest" if ami_version == "latest" else ami_version.removeprefix("v")
    return (
        f"/aws/service/bottlerocket/aws-k8s-{kubernetes_version}-nvidia/x86_64/{release}/image_id"
    )


def pull_command(image: str, ecr_password: str) -> str:
    """Pull ``image`` into the k8s.io namespace the kubelet uses, marked as CRI-managed."""
    return (
        "apiclient exec admin sheltie ctr -a /run/containerd/containerd.sock -n k8s.io "
        f"images pull --label io.cri-containerd.image=managed --user AWS:{ecr_password} {image}"
    )


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
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Build the snapshot and return its id (the instance is always terminated)."""
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
            {
                "DeviceName": "/dev/xvda",
                "Ebs": {"VolumeSize": 4, "VolumeType": "gp3", "Encrypted": True},
            },
            {
                "DeviceName": DATA_DEVICE,
                "Ebs": {"VolumeSize": volume_gib, "VolumeType": "gp3", "Encrypted": True},
            },
        ],
        TagSpecifications=[{"ResourceType": "instance", "Tags": image_tags}],
    )
    instance_id = reservation["Instances"][0]["InstanceId"]
    try:
        ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id])
        token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
        password = base64.b64decode(token).decode().split(":", 1)[1]
        command = ssm.send_command(
            InstanceIds=[instance_id],
            DocumentName="AWS-RunShellScript",
            Parameters={"commands": [pull_command(image, password)]},
            TimeoutSeconds=int(timeout),
        )["Command"]["CommandId"]

        def pulled() -> bool:
            status = ssm.get_command_invocation(CommandId=command, InstanceId=instance_id)["Status"]
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
