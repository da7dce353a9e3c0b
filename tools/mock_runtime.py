"""Run the real Pulumi program under Pulumi's mock runtime and record every resource.

Shared by the offline plan (``tools/plan.py``) and the tests (``tests/conftest.py``) so
both see exactly the same resources. The program is ``__main__.py`` itself: nothing here
knows which components it builds.

The mocks stand in for the engine only: each resource's outputs are its inputs plus the
few computed outputs a real provider returns (ids, ARNs, names), and the handful of data
sources the program calls return fixed, documented values (account 123456789012).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import runpy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi.runtime
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

PROJECT = "llm-platform"
ACCOUNT_ID = "123456789012"
PROGRAM = Path(__file__).resolve().parent.parent / "__main__.py"


@dataclass(frozen=True)
class Secret:
    """A value the program marked secret (``Output.secret`` or a secret config key)."""

    value: Any

    def __repr__(self) -> str:
        return "Secret([masked])"


def revealed(value: Any) -> Any:
    """``value`` with every :class:`Secret` replaced by what it wraps.

    For checks that must see the real shape of inputs (schema validation, policies:
    CrossGuard gets plain values too); never for anything written out.
    """
    if isinstance(value, Secret):
        return revealed(value.value)
    if isinstance(value, dict):
        return {k: revealed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [revealed(v) for v in value]
    return value


@dataclass(frozen=True)
class Recorded:
    """One resource registration as the engine would see it."""

    type: str
    name: str
    urn: str
    parent: str | None
    """Name of the parent resource (``None`` for children of the stack)."""
    parent_type: str | None
    inputs: dict[str, Any]
    """Inputs after every Output resolved; secret values wrapped in :class:`Secret`."""
    depends_on: tuple[str, ...] = ()
    """Names of the resources this one depends on (explicit and through inputs)."""
    provider: str | None = None
    """Name of the explicit provider it uses (the engine creates that provider first)."""
    custom: bool = True


def _unwrap(value: Any) -> Any:
    """Turn the wire form of secrets into :class:`Secret` recursively."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return Secret(_unwrap(value["value"]))
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


def _name_of(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def _type_of(urn: str) -> str:
    return urn.split("::")[2].split("$")[-1]


def _arn(service: str, kind: str, name: str, region: str = "us-west-2") -> str:
    return f"arn:aws:{service}:{region}:{ACCOUNT_ID}:{kind}/{name}"


# Computed outputs a real provider returns for some types; everything else echoes its
# inputs. Keyed by type token; each entry gets the mock args and returns extra outputs.
FAKE_OUTPUTS: dict[str, Callable[[pulumi_mocks.MockResourceArgs], dict[str, Any]]] = {
    "aws:iam/role:Role": lambda a: {
        "arn": f"arn:aws:iam::{ACCOUNT_ID}:role/{a.inputs.get('name', a.name)}",
        "name": a.inputs.get("name", a.name),
    },
    "aws:iam/policy:Policy": lambda a: {"arn": f"arn:aws:iam::{ACCOUNT_ID}:policy/{a.name}"},
    "aws:iam/instanceProfile:InstanceProfile": lambda a: {"name": a.inputs.get("name", a.name)},
    "aws:kms/key:Key": lambda a: {"arn": _arn("kms", "key", a.name), "keyId": f"{a.name}-key-id"},
    "aws:sqs/queue:Queue": lambda a: {
        "arn": _arn("sqs", "queue", a.inputs.get("name", a.name)).replace("queue/", ""),
        "name": a.inputs.get("name", a.name),
        "url": f"https://sqs.us-west-2.amazonaws.com/{ACCOUNT_ID}/{a.inputs.get('name', a.name)}",
    },
    "aws:s3/bucketV2:BucketV2": lambda a: {
        "bucket": a.inputs.get("bucket", a.name),
        "arn": f"arn:aws:s3:::{a.inputs.get('bucket', a.name)}",
    },
    "aws:s3/bucket:Bucket": lambda a: {
        "bucket": a.inputs.get("bucket", a.name),
        "arn": f"arn:aws:s3:::{a.inputs.get('bucket', a.name)}",
    },
    "aws:cloudwatch/logGroup:LogGroup": lambda a: {
        "arn": _arn("logs", "log-group", a.inputs.get("name", a.name)).replace(
            "log-group/", "log-group:"
        ),
    },
    "aws:sns/topic:Topic": lambda a: {"arn": _arn("sns", "topic", a.name).replace("topic/", "")},
    "aws:ec2/launchTemplate:LaunchTemplate": lambda a: {"latestVersion": 1},
    # pulumi-eks is a remote (multi-language) component: the engine, not Python,
    # computes its outputs, so the mock supplies the ones the program reads.
    "eks:index:Cluster": lambda a: {
        "clusterSecurityGroupId": f"sg-{a.inputs.get('name', a.name)}-cluster",
        "kubeconfigJson": "{}",
    },
}

# Data sources the program may call, by token.
INVOKES: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "aws:index/getCallerIdentity:getCallerIdentity": lambda _: {
        "accountId": ACCOUNT_ID,
        "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/offline-plan",
        "userId": "AIDAOFFLINEPLAN",
    },
    "aws:eks/getCluster:getCluster": lambda args: {
        "name": args["name"],
        "endpoint": f"https://{args['name'].upper()}0MOCK.gr7.us-west-2.eks.amazonaws.com",
        "certificateAuthorities": [{"data": "TU9DSy1DTFVTVEVSLUNB"}],
        "vpcConfig": {"clusterSecurityGroupId": f"sg-{args['name']}-cluster"},
    },
    "aws:index/getPartition:getPartition": lambda _: {
        "partition": "aws",
        "dnsSuffix": "amazonaws.com",
    },
}


class PlatformMocks(pulumi.runtime.Mocks):
    """Echo inputs as outputs, plus the computed outputs in :data:`FAKE_OUTPUTS`."""

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        extra = FAKE_OUTPUTS.get(args.typ, lambda _a: {})(args)
        return f"{args.name}-id", {**args.inputs, **extra}

    def call(
        self, args: pulumi_mocks.MockCallArgs
    ) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        handler = INVOKES.get(args.token)
        if handler is None:
            raise KeyError(f"the offline mocks have no answer for data source {args.token}")
        return handler(args.args), []


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A mock monitor that also keeps the parent and dependencies of each registration."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.recorded: list[Recorded] = []

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            parent = parent_type = None
            if request.parent and _type_of(request.parent) != "pulumi:pulumi:Stack":
                parent, parent_type = _name_of(request.parent), _type_of(request.parent)
            self.recorded.append(
                Recorded(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    parent=parent,
                    parent_type=parent_type,
                    inputs=_unwrap(rpc.deserialize_properties(request.object)),
                    depends_on=tuple(sorted({_name_of(u) for u in request.dependencies})),
                    # A provider reference is "<urn>::<id>"; default providers are unnamed.
                    provider=(
                        request.provider.rsplit("::", 2)[-2]
                        if request.provider and "::default" not in request.provider
                        else None
                    ),
                    custom=request.custom,
                )
            )
        return response


@dataclass
class Run:
    """Result of running the program once under mocks."""

    resources: list[Recorded] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: BaseException | None = None
    """What the program raised (``ConfigError`` for bad config), after the runtime settled."""


class _Collect(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record.getMessage())


def run_program(
    config: Mapping[str, str],
    *,
    stack: str,
    secret_keys: frozenset[str] = frozenset(),
    program: Callable[[], None] | None = None,
) -> Run:
    """Run ``program`` (default: the project's ``__main__.py``) with ``config``.

    ``config`` holds fully qualified keys (``llm-platform:gpuPools``) with string
    values, structured ones as JSON, the way the Pulumi CLI passes them. Exceptions
    from the program (such as ``ConfigError``) land in ``Run.error``, with whatever was
    registered before them in ``Run.resources``.
    """
    result = Run()
    # A loop of its own per run (the root stack resource created by set_mocks binds to
    # it), closed afterwards: a loop left to the garbage collector prints "Invalid file
    # descriptor" noise at interpreter exit.
    with contextlib.suppress(RuntimeError):
        previous = asyncio.get_event_loop()
        if not previous.is_running():
            previous.close()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    logger = logging.getLogger(f"llm-platform.mock.{stack}")
    logger.propagate = False
    logger.handlers = [_Collect(result.warnings)]
    monitor = RecordingMonitor(PlatformMocks())
    pulumi_settings.ROOT.set(None)
    pulumi.runtime.set_all_config(dict(config), sorted(secret_keys))
    pulumi.runtime.set_mocks(
        PlatformMocks(), project=PROJECT, stack=stack, preview=False, logger=logger, monitor=monitor
    )

    def body() -> None:
        if program is not None:
            program()
        else:
            runpy.run_path(str(PROGRAM), run_name="__pulumi_program__")

    try:
        _sync_await(run_pulumi_func(body))
    except Exception as exc:
        result.error = exc
    finally:
        result.resources = list(monitor.recorded)
        loop.close()
    return result
