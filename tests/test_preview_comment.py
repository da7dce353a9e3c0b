"""The per-stack PR comment of the preview workflow: marker, verdict, size limit."""

from __future__ import annotations

from tools.preview_comment import GITHUB_COMMENT_LIMIT, marker, render

RUN = "https://github.com/o/r/actions/runs/1"


def _render(output: str, exit_code: int = 0, limit: int = GITHUB_COMMENT_LIMIT) -> str:
    return render("stage1", output, exit_code, commit="0123456789abcdef", run_url=RUN, limit=limit)


def test_short_output_is_shown_whole_under_the_stack_marker() -> None:
    body = _render("Previewing update (stage1)\n    + 3 to create\n")
    assert body == (
        "<!-- llm-platform-preview:stage1 -->\n"
        "### `pulumi preview` of stack `stage1`: succeeded\n\n"
        "Commit 0123456789ab, policy pack `policies` with `policies/config.stage1.json`. "
        f"[Workflow run]({RUN})\n\n"
        "```text\nPreviewing update (stage1)\n    + 3 to create\n```\n"
    )
    assert body.startswith(marker("stage1"))


def test_failed_preview_says_so() -> None:
    assert "### `pulumi preview` of stack `stage1`: FAILED (exit code 255)\n" in _render("x", 255)


def test_backticks_in_the_output_cannot_close_the_fence() -> None:
    body = _render("a ```` b")
    assert "`````text\na ```` b\n`````\n" in body


def test_long_output_keeps_its_end_within_githubs_limit() -> None:
    lines = [f"resource {i:06d} " + "x" * 80 for i in range(2000)]
    output = "\n".join(
        [*lines, "Policies:", "    mandatory: gpu-limit", "Resources: 2000 to create"]
    )
    body = _render(output)
    assert len(body.encode("utf-16-le")) // 2 <= GITHUB_COMMENT_LIMIT
    assert body.endswith("Policies:\n    mandatory: gpu-limit\nResources: 2000 to create\n```\n")
    assert "earlier lines cut; the workflow log has the full output ...]\n" in body
    assert "resource 000000 " not in body


def test_utf16_width_is_what_counts() -> None:
    body = _render("\U0001f680" * 100, limit=400)  # each rocket is two UTF-16 code units
    assert len(body.encode("utf-16-le")) // 2 <= 400
    assert body.endswith("\U0001f680\n```\n")


def test_one_huge_line_is_cut_from_its_start() -> None:
    body = _render("y" * 1000 + "END", limit=500)
    assert len(body) <= 500
    assert body.endswith("yEND\n```\n")
