"""The first deploy of a new environment, as the README gives it, can succeed.

Stage 1 (``pulumi up --exclude '**kubernetes:**' --exclude-dependents``, from anywhere)
creates what needs only the AWS APIs, including the CI runner that alone reaches a
private API endpoint and the model bucket the weights go into; stage 2 (CI, on that
runner) creates the rest once the weights are synced. The exclusion is simulated here
with Pulumi's rules: a URN matching the pattern is left out, and so is everything that
depends on one (through inputs, ``depends_on`` or its provider).
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.harness import find, typed_config
from tools.mock_runtime import Recorded

README = Path(__file__).resolve().parent.parent / "README.md"
EXCLUDE = "**kubernetes:**"


def _excluded(resources: tuple[Recorded, ...]) -> set[str]:
    pattern = re.compile(".*".join(re.escape(p) for p in EXCLUDE.split("**")))
    out = {r.name for r in resources if pattern.fullmatch(r.urn)}
    changed = True
    while changed:
        changed = False
        for r in resources:
            deps = {*r.depends_on, *([r.provider] if r.provider else [])}
            if r.name not in out and deps & out:
                out.add(r.name)
                changed = True
    return out


def test_readme_gives_the_stage_1_command() -> None:
    text = README.read_text()
    assert f"--exclude '{EXCLUDE}' --exclude-dependents" in text
    assert "python -m tools models sync <stack> <model>" in text


def test_stage_1_is_all_of_aws_and_nothing_in_the_cluster(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    excluded = _excluded(fixture_resources)
    stage_1 = [r for r in fixture_resources if r.name not in excluded]
    # Nothing that talks to the Kubernetes API (unreachable from outside the VPC).
    assert not [
        r.name for r in stage_1 if r.type.startswith(("kubernetes:", "pulumi:providers:kubernetes"))
    ]
    names = {(r.type, r.name) for r in stage_1}
    for needed in (
        ("eks:index:Cluster", "llm-eks"),
        ("aws:eks/nodeGroup:NodeGroup", "llm-system"),
        ("aws:s3/bucket:Bucket", "models-bucket"),
        ("aws:codebuild/project:Project", "ci-project"),
        ("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "ci-to-api"),
        ("aws:cloudwatch/logGroup:LogGroup", "log-groups-control-plane"),
    ):
        assert needed in names, needed
    # Stage 2 holds the charts and the models, which need the weights of stage 1's bucket.
    models = typed_config(fixture_stack).enabled_models
    assert models
    assert {f"model-{m.name}-deployment" for m in models} <= excluded
    assert (
        find(fixture_resources, "kubernetes:helm.sh/v3:Release", "karpenter-controller").name
        in excluded
    )
