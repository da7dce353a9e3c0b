"""The PR comment that shows one stack's ``pulumi preview`` (``.github/workflows/preview.yml``).

One comment per stack, found again by its first line (:func:`marker`) and edited in
place on every push. GitHub rejects comment bodies over 65,536 characters; a preview of
a large change can exceed that, so the output is cut to fit, keeping its END: the
resource summary and the policy violations are what a reviewer needs, and Pulumi prints
them last. The full output stays in the workflow log.
"""

from __future__ import annotations

import re

GITHUB_COMMENT_LIMIT = 65_536
"""Maximum length of an issue/PR comment body (GitHub REST API, characters)."""


def marker(stack: str) -> str:
    """First line of the stack's comment: how the workflow finds it to update it."""
    return f"<!-- llm-platform-preview:{stack} -->"


def _length(text: str) -> int:
    """Length as GitHub counts it (UTF-16 code units; an emoji counts twice)."""
    return len(text.encode("utf-16-le")) // 2


def render(
    stack: str,
    output: str,
    exit_code: int,
    *,
    commit: str,
    run_url: str,
    limit: int = GITHUB_COMMENT_LIMIT,
) -> str:
    """Comment body for ``pulumi preview`` of ``stack``; never longer than ``limit``."""
    verdict = "succeeded" if exit_code == 0 else f"FAILED (exit code {exit_code})"
    # A fence longer than any backtick run in the output cannot be closed by it.
    fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", output)), default=0))
    head = (
        f"{marker(stack)}\n"
        f"### `pulumi preview` of stack `{stack}`: {verdict}\n\n"
        f"Commit {commit[:12]}, policy pack `policies` with `policies/config.{stack}.json`. "
        f"[Workflow run]({run_url})\n\n"
        f"{fence}text\n"
    )
    tail = f"\n{fence}\n"
    text = output.rstrip("\n")
    if _length(head + text + tail) <= limit:
        return head + text + tail

    lines = text.split("\n")
    note = "[... {} earlier lines cut; the workflow log has the full output ...]\n"
    budget = limit - _length(head + tail + note.format(len(lines)))
    kept: list[str] = []
    used = 0
    for line in reversed(lines):
        cost = _length(line) + (1 if kept else 0)
        if used + cost > budget:
            break
        kept.append(line)
        used += cost
    if not kept:  # the last line alone is too long: keep its end
        piece = lines[-1][-budget:]
        while _length(piece) > budget:
            piece = piece[1:]
        kept = [piece]
    return head + note.format(len(lines) - len(kept)) + "\n".join(reversed(kept)) + tail
