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
import json
import logging
import os
import runpy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi.runtime
from pulumi.output import Unknown
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.stack import run_pulumi_func

PROJECT = "llm-platform"
CONFIG_ENV = "PULUMI_CONFIG"
SECRET_KEYS_ENV = "PULUMI_CONFIG_SECRET_KEYS"
ACCOUNT_ID = "123456789012"
"""Account of a run whose config names none (component tests)."""
REGION = "us-west-2"
"""Region of a run whose config names none (component tests)."""
UNKNOWN = rpc.UNKNOWN
"""How a value unknown at preview appears in recorded inputs: the engine's own sentinel,
which is also what CrossGuard hands a policy (``pulumi_policy.proxy``)."""
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
    aliases: tuple[str, ...] = ()
    """Earlier URNs of the resource (its ``aliases`` option), as the engine resolves them."""


def _unwrap(value: Any) -> Any:
    """Turn the wire form of secrets into :class:`Secret` recursively, and values
    unknown at preview into the engine's sentinel :data:`UNKNOWN`."""
    if isinstance(value, Unknown):
        return UNKNOWN
    if isinstance(value, dict):
        if rpc.is_rpc_secret(value):
            return Secret(_unwrap(rpc.unwrap_rpc_secret(value)))
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


def _name_of(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def _type_of(urn: str) -> str:
    return urn.split("::")[2].split("$")[-1]


def make_urn(stack: str, type_: str, name: str, parent_urn: str | None) -> str:
    """The URN the engine gives a resource: the type chain of its ancestors below the stack
    (not their names) and its own type and name
    (https://www.pulumi.com/docs/iac/concepts/resources/names/#urns). The mock monitor's
    URNs keep only the parent's type; these are the engine's."""
    chain = ""
    if parent_urn and _type_of(parent_urn) != "pulumi:pulumi:Stack":
        chain = parent_urn.split("::")[2] + "$"
    return f"urn:pulumi:{stack}::{PROJECT}::{chain}{type_}::{name}"


def _alias_urns(
    request: Any, stack: str, parent: str | None, engine_urns: Mapping[str, str]
) -> tuple[str, ...]:
    """The URNs the ``aliases`` of a registration stand for: a spec leaves out what did
    not change (name, type, parent), which then is the resource's current one. ``parent``
    is the engine URN of the current parent."""
    found = []
    for alias in request.aliases:
        if alias.urn:
            # Built by an SDK from the mock's URNs, which keep the root stack in the chain.
            found.append(alias.urn.replace("::pulumi:pulumi:Stack$", "::", 1))
            continue
        spec = alias.spec
        if spec.noParent:
            before = None
        elif spec.parentUrn:
            before = engine_urns.get(spec.parentUrn, spec.parentUrn)
        else:
            before = parent
        found.append(
            make_urn(
                spec.stack or stack, spec.type or request.type, spec.name or request.name, before
            )
        )
    return tuple(sorted(set(found)))


@dataclass(frozen=True)
class Cloud:
    """The account and region the mocks answer for: the stack's own, so every ARN the
    plan shows is the one ``pulumi up`` would produce."""

    account_id: str = ACCOUNT_ID
    region: str = REGION
    caller_account_id: str | None = None
    """Account of the credentials (``getCallerIdentity``); default: ``account_id``."""
    new_stack: bool = False
    """No EKS cluster exists yet (``getCluster`` fails, as for a first deploy)."""
    caller_role: str = "offline-plan"
    """Name of the role whose session runs the program (default: the stack's deploy
    role, ``llm-platform:ci.deployRoleArn``, as CI runs it)."""

    @property
    def caller_arn(self) -> str:
        account = self.caller_account_id or self.account_id
        return f"arn:aws:sts::{account}:assumed-role/{self.caller_role}/offline-plan"

    def arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.region}:{self.account_id}:{resource}"

    @classmethod
    def of(cls, config: Mapping[str, str]) -> Cloud:
        """From fully qualified stack config (``aws:region``, ``llm-platform:accountId``)."""
        try:
            ci = json.loads(config.get(f"{PROJECT}:ci", "{}"))
        except json.JSONDecodeError:
            ci = {}
        deploy_role = ci.get("deployRoleArn") if isinstance(ci, dict) else None
        return cls(
            account_id=config.get(f"{PROJECT}:accountId", ACCOUNT_ID),
            region=config.get("aws:region", REGION),
            caller_role=str(deploy_role).rsplit("/", 1)[-1] if deploy_role else "offline-plan",
        )


def _physical(a: pulumi_mocks.MockResourceArgs, key: str = "name") -> str:
    """The resource's physical name: the explicit one, else (standing in for Pulumi's
    auto-name) its logical name."""
    return str(a.inputs.get(key) or a.name)


# Computed outputs a real provider returns for some types once a resource exists;
# everything else echoes its inputs. Keyed by type token.
FakeOutputs = Callable[[pulumi_mocks.MockResourceArgs, Cloud], dict[str, Any]]
FAKE_OUTPUTS: dict[str, FakeOutputs] = {
    "aws:iam/role:Role": lambda a, c: {
        "arn": f"arn:aws:iam::{c.account_id}:role/{_physical(a)}",
        "name": _physical(a),
    },
    "aws:iam/policy:Policy": lambda a, c: {
        "arn": f"arn:aws:iam::{c.account_id}:policy/{_physical(a)}"
    },
    "aws:kms/key:Key": lambda a, c: {
        "arn": c.arn("kms", f"key/{a.name}"),
        "keyId": f"{a.name}-key-id",
    },
    "aws:sqs/queue:Queue": lambda a, c: {
        "arn": c.arn("sqs", _physical(a)),
        "name": _physical(a),
        "url": f"https://sqs.{c.region}.amazonaws.com/{c.account_id}/{_physical(a)}",
    },
    "aws:s3/bucket:Bucket": lambda a, _c: {
        "bucket": _physical(a, "bucket"),
        "arn": f"arn:aws:s3:::{_physical(a, 'bucket')}",
    },
    "aws:cloudwatch/logGroup:LogGroup": lambda a, c: {
        "arn": c.arn("logs", f"log-group:{_physical(a)}"),
    },
    "aws:sns/topic:Topic": lambda a, c: {"arn": c.arn("sns", _physical(a))},
    "aws:ec2/launchTemplate:LaunchTemplate": lambda _a, _c: {"latestVersion": 1},
    # pulumi-eks is a remote (multi-language) component: the engine, not Python,
    # computes its outputs, so the mock supplies the ones the program reads.
    "eks:index:Cluster": lambda a, _c: {
        "clusterSecurityGroupId": f"sg-{a.inputs.get('name', a.name)}-cluster",
        "kubeconfigJson": "{}",
    },
}


def _get_cluster(args: Mapping[str, Any], c: Cloud) -> dict[str, Any]:
    name = args["name"]
    return {
        "name": name,
        "arn": c.arn("eks", f"cluster/{name}"),
        "endpoint": f"https://{name.upper()}0MOCK.gr7.{c.region}.eks.amazonaws.com",
        "certificateAuthorities": [{"data": "TU9DSy1DTFVTVEVSLUNB"}],
        "vpcConfig": {"clusterSecurityGroupId": f"sg-{name}-cluster"},
    }


# Data sources the program may call, by token.
Invoke = Callable[[Mapping[str, Any], Cloud], dict[str, Any]]
INVOKES: dict[str, Invoke] = {
    "aws:index/getCallerIdentity:getCallerIdentity": lambda _, c: {
        "accountId": c.caller_account_id or c.account_id,
        "arn": c.caller_arn,
        "userId": "AROAOFFLINEPLAN:session",
    },
    "aws:eks/getCluster:getCluster": _get_cluster,
}


class PlatformMocks(pulumi.runtime.Mocks):
    """The engine as the program sees it.

    After apply (``preview=False``): outputs are the inputs plus the computed outputs in
    :data:`FAKE_OUTPUTS`. At preview of a new stack (``preview=True``): nothing exists
    yet, so a resource's id and every output it did not get as an input (ARNs, ids,
    auto-generated names, endpoints) are unknown, as the engine reports them for a
    resource it is about to create.
    """

    def __init__(self, cloud: Cloud = Cloud(), *, preview: bool = False) -> None:
        self.cloud = cloud
        self.preview = preview
        self.clusters: set[str] = set()
        """EKS clusters the program registered (on a new stack, the only ones that exist)."""

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        if args.typ == "eks:index:Cluster":
            self.clusters.add(str(args.inputs.get("name", args.name)))
        if self.preview:
            return "", dict(args.inputs)
        extra = FAKE_OUTPUTS.get(args.typ, lambda _a, _c: {})(args, self.cloud)
        return f"{args.name}-id", {**args.inputs, **extra}

    def call(
        self, args: pulumi_mocks.MockCallArgs
    ) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        handler = INVOKES.get(args.token)
        if (
            args.token == "aws:eks/getCluster:getCluster"
            and self.cloud.new_stack
            and args.args["name"] not in self.clusters
        ):
            # As a provider reports it: a failed invoke the program may catch.
            return {}, [("name", f"couldn't find resource: EKS cluster {args.args['name']}")]
        if handler is None:
            raise KeyError(f"the offline mocks have no answer for data source {args.token}")
        return handler(args.args, self.cloud), []


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A mock monitor that also keeps the parent and dependencies of each registration."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.recorded: list[Recorded] = []
        self.engine_urns: dict[str, str] = {}
        """Mock monitor URN -> the engine's URN of the same resource."""

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        stack = response.urn.split("::")[0].removeprefix("urn:pulumi:")
        parent_urn = self.engine_urns.get(request.parent) if request.parent else None
        urn = make_urn(stack, request.type, request.name, parent_urn)
        self.engine_urns[response.urn] = urn
        if request.type != "pulumi:pulumi:Stack":
            parent = parent_type = None
            if request.parent and _type_of(request.parent) != "pulumi:pulumi:Stack":
                parent, parent_type = _name_of(request.parent), _type_of(request.parent)
            self.recorded.append(
                Recorded(
                    type=request.type,
                    name=request.name,
                    urn=urn,
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
                    aliases=_alias_urns(request, stack, parent_urn, self.engine_urns),
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
    preview: bool = False,
    cloud: Cloud | None = None,
) -> Run:
    """Run ``program`` (default: the project's ``__main__.py``) with ``config``.

    ``config`` holds fully qualified keys (``llm-platform:gpuPools``) with string
    values, structured ones as JSON, the way the Pulumi CLI passes them. Exceptions
    from the program (such as ``ConfigError``) land in ``Run.error``, with whatever was
    registered before them in ``Run.resources``. With ``preview`` the engine answers
    as for the first ``pulumi preview`` of a new stack (see :class:`PlatformMocks`);
    ``cloud`` overrides the account and region the mocks answer for (default: the
    config's).
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
    mocks = PlatformMocks(cloud or Cloud.of(config), preview=preview)
    monitor = RecordingMonitor(mocks)
    # A fresh root stack resource for this run (set_mocks makes one when there is none).
    pulumi.runtime.reset_options(project=PROJECT, stack=stack, preview=preview)
    pulumi.runtime.set_all_config(dict(config), sorted(secret_keys))
    # The Pulumi CLI's language host hands a program its config in these two variables
    # (read by pulumi.runtime.get_config_env and get_config_secret_keys_env), and so do we.
    saved = {k: os.environ.get(k) for k in (CONFIG_ENV, SECRET_KEYS_ENV)}
    os.environ[CONFIG_ENV] = json.dumps(dict(config))
    os.environ[SECRET_KEYS_ENV] = json.dumps(sorted(secret_keys))
    pulumi.runtime.set_mocks(
        mocks, project=PROJECT, stack=stack, preview=preview, logger=logger, monitor=monitor
    )

    def body() -> None:
        if program is not None:
            program()
        else:
            runpy.run_path(str(PROGRAM), run_name="__pulumi_program__")

    try:
        loop.run_until_complete(run_pulumi_func(body))
    except Exception as exc:
        result.error = exc
    finally:
        result.resources = list(monitor.recorded)
        loop.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return result
