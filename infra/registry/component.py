"""RegistryCache: an ECR pull-through cache rule for Docker Hub, its credentials, and the
node role's right to fill it.

AWS facts used (Amazon ECR user guide, "Pull through cache"): a rule for Docker Hub
(``registry-1.docker.io``) needs credentials in a Secrets Manager secret whose name
starts with ``ecr-pullthroughcache/``, in the rule's account and region, holding
``username`` and ``accessToken``; the repository prefix is 2-30 characters; whoever
pulls an image that is not cached yet needs ``ecr:BatchImportUpstreamImage`` and, for
the first image of a repository, ``ecr:CreateRepository`` on top of the usual pull
rights (the node role's AmazonEC2ContainerRegistryPullOnly).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import pulumi
import pulumi_aws as aws

from infra.core.arns import Arns
from infra.core.iam import allow_policy

DOCKER_HUB_UPSTREAM: Final = "registry-1.docker.io"
SECRET_PREFIX: Final = "ecr-pullthroughcache/"
PREFIX_MAX: Final = 30


def cache_prefix(cluster_name: str) -> str:
    """Repository prefix of the stack's Docker Hub cache (one rule per stack)."""
    return f"{cluster_name}-docker-hub"


def registry_host(arns: Arns) -> str:
    return f"{arns.account_id}.dkr.ecr.{arns.region}.amazonaws.com"


def docker_hub_mirror(arns: Arns, cluster_name: str) -> str:
    """``<registry>/<prefix>``: where a Docker Hub repository ``org/name`` is pulled as
    ``<registry>/<prefix>/org/name``."""
    return f"{registry_host(arns)}/{cache_prefix(cluster_name)}"


def node_pull_policy(arns: Arns, prefix: str) -> str:
    """What the nodes need beyond pull-only to fill the cache on a first pull."""
    repositories = f"arn:{arns.partition}:ecr:{arns.region}:{arns.account_id}:repository/{prefix}/*"
    return allow_policy(
        "FillPullThroughCache",
        ["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"],
        [repositories],
    )


def _credentials(values: list[str]) -> str:
    """The secret's JSON as ECR reads it (``username``, ``accessToken``)."""
    return json.dumps({"username": values[0], "accessToken": values[1]}, sort_keys=True)


@dataclass(frozen=True)
class RegistryCacheArgs:
    """Inputs of :class:`RegistryCache`."""

    cluster_name: str
    arns: Arns
    node_roles: Mapping[str, pulumi.Input[str]]
    """Node role names by resource suffix, of the nodes that exist before the cache's
    first user: the system nodes (Grafana). Roles made later (Karpenter's nodes, the
    serving image) get the right with :meth:`RegistryCache.allow_pull`."""
    docker_hub_username: pulumi.Input[str]
    docker_hub_access_token: pulumi.Input[str]
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        prefix = cache_prefix(self.cluster_name)
        if len(prefix) > PREFIX_MAX:
            raise ValueError(f"cache prefix ({prefix!r}) must be at most {PREFIX_MAX} characters")


class RegistryCache(pulumi.ComponentResource):
    """Secret, pull-through cache rule and the node role's cache policy."""

    prefix: str
    host: str

    def __init__(
        self, name: str, args: RegistryCacheArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("llm-platform:registry:RegistryCache", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.prefix = cache_prefix(args.cluster_name)
        self.host = registry_host(args.arns)
        secret = aws.secretsmanager.Secret(
            f"{name}-docker-hub",
            name=f"{SECRET_PREFIX}{args.cluster_name}-docker-hub",
            description="Docker Hub credentials of the ECR pull-through cache rule",
            # Deleted at once on destroy: the default 30-day recovery window would keep the
            # name, and a stack re-created with the same cluster name could not create it.
            recovery_window_in_days=0,
            tags=dict(args.tags),
            opts=child,
        )
        # Secret because its inputs are (the Pulumi secrets); the output is marked too.
        credentials = pulumi.Output.all(
            args.docker_hub_username, args.docker_hub_access_token
        ).apply(_credentials)
        version = aws.secretsmanager.SecretVersion(
            f"{name}-docker-hub",
            secret_id=secret.id,
            secret_string=credentials,
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["secretString"]),
        )
        aws.ecr.PullThroughCacheRule(
            f"{name}-docker-hub",
            ecr_repository_prefix=self.prefix,
            upstream_registry_url=DOCKER_HUB_UPSTREAM,
            credential_arn=secret.arn,
            # The first pull through the rule reads the credentials: they must be there.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[version]),
        )
        self._name, self._arns = name, args.arns
        for suffix, role in sorted(args.node_roles.items()):
            self.allow_pull(suffix, role)
        self.register_outputs({"prefix": self.prefix, "host": self.host})

    def allow_pull(self, suffix: str, role: pulumi.Input[str]) -> aws.iam.RolePolicy:
        """Let the nodes of ``role`` fill the cache: a child named ``<name>-<suffix>``,
        for a role made after the cache (Karpenter's is made after Monitoring, whose
        Grafana pulls through the cache first). A child like the others: what depends
        on the cache waits for it too."""
        return aws.iam.RolePolicy(
            f"{self._name}-{suffix}",
            role=role,
            policy=node_pull_policy(self._arns, self.prefix),
            opts=pulumi.ResourceOptions(parent=self),
        )
