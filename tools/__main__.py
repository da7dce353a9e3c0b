"""``python -m tools <command>``: the project's command-line tools."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    plan = commands.add_parser("plan", help="offline plan of a stack (no cloud, no Pulumi CLI)")
    plan.add_argument("stack", help="stack name: reads Pulumi.<stack>.yaml")
    plan.add_argument(
        "--stack-dir",
        type=Path,
        default=None,
        help="directory holding Pulumi.<stack>.yaml (default: the project root)",
    )
    plan.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output root (default: build/; writes <out>/<stack>/)",
    )
    pack = commands.add_parser(
        "policy-config",
        help="write policies/config.<stack>.json (policy pack config) from Pulumi.<stack>.yaml",
    )
    pack.add_argument("stacks", nargs="*", help="stacks (default: every Pulumi.<stack>.yaml)")
    pack.add_argument(
        "--check", action="store_true", help="only report files that are out of date (exit 1)"
    )
    args = parser.parse_args(argv)

    if args.command == "plan":
        from tools import plan as plan_tool

        return plan_tool.main(args.stack, args.stack_dir or plan_tool.ROOT, args.out)
    if args.command == "policy-config":
        from tools import policy

        return policy.main(args.stacks, check=args.check)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    code = main()
    # The mock engine answers data-source calls on worker threads, each of which gets
    # an asyncio loop that nothing closes; at normal interpreter shutdown their
    # finalizers print "Invalid file descriptor" tracebacks. All output is written
    # and flushed here, so skip that teardown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
