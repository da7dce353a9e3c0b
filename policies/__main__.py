"""CrossGuard entry point: ``pulumi preview --policy-pack policies
--policy-pack-config policies/config.<stack>.json``.

The CLI runs this file with the pack directory as the working directory and first
entry of ``sys.path``; the rules import the project's ``infra.core`` modules (GPU catalog,
conventions), so the project root goes on the path too.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack

from policies.crossguard import to_policy
from policies.rules import RULES

PolicyPack(
    name="llm-platform-guardrails",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[to_policy(rule) for rule in RULES],
)
