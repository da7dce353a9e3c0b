"""The README's "Extending" recipes work exactly as written.

Each recipe tested here is read from README.md, and its edits (the snippets, at the
places its text names) are applied to a scratch copy of the repository; then the
offline plan of every stack must pass there. Once, with all of them applied, the test
suite of ``make test`` runs in such a copy (with this module skipped). So the README and the
tests cannot drift apart: a recipe that leaves out an edit, names a file that moved or
gives a snippet that does not pass fails here.

What needs AWS or GitHub (uploading weights, creating a GitHub environment, deploying)
is left out; everything a recipe changes in the repository is applied. No network: the
copy is made from the working tree, and every subprocess is bounded.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.stack.files import ROOT, stack_names

INNER = "LLM_PLATFORM_RECIPE_RUN"
"""Set in the test suite's run inside the scratch copy, where this module is skipped."""

pytestmark = [
    pytest.mark.stacks,
    pytest.mark.skipif(os.environ.get(INNER) == "1", reason="inside the recipes' own run"),
]

README = ROOT / "README.md"
NS = "llm-platform"
PLAN_TIMEOUT = 300
"""Seconds the offline plan of every stack may take in a copy."""
TOOL_TIMEOUT = 120
"""Seconds any other command of a recipe may take."""
SUITE_TIMEOUT = 900
"""Seconds the test suite may take in the copy with every recipe applied."""
PYTEST_ARGS: tuple[str, ...] = ("-m", "not e2e")
"""The suite ``make test`` runs (what the README promises stays green), in one process
(``make unit`` adds the parallel workers): the outer run's other worker keeps the second
core busy meanwhile, and one collection less saves several seconds of CPU. The end to
end tests are left out: the policy cases mutate the fixture stacks, the proxy serves the
first committed model with fallbacks (a recipe appends), and each recipe's own plan,
policy pack included, runs below."""


# --------------------------------------------------------------------------- the README


@dataclass(frozen=True)
class Block:
    lang: str
    code: str


@dataclass(frozen=True)
class Recipe:
    title: str
    prose: str
    """The recipe's text without its code blocks, on one line."""
    blocks: tuple[Block, ...]

    def block(self, lang: str, index: int = 0) -> str:
        found = [b.code for b in self.blocks if b.lang == lang]
        assert len(found) > index, f"recipe {self.title!r}: no {lang} block #{index + 1}"
        return found[index]

    def find(self, pattern: str) -> str:
        """The first group of ``pattern`` in the recipe's text; fails quoting the text."""
        match = re.search(pattern, self.prose)
        assert match, f"recipe {self.title!r} does not say {pattern!r}: {self.prose}"
        return match.group(1)


def recipes(readme: str | None = None) -> dict[str, Recipe]:
    """The bullets of the README's "## Extending" section, by their bold title."""
    text = README.read_text() if readme is None else readme
    section = text.split("\n## Extending\n", 1)[1].split("\n## ", 1)[0]
    found: dict[str, Recipe] = {}
    for item in re.split(r"^- \*\*", section, flags=re.M)[1:]:
        title, body = item.split("**", 1)
        body = "\n".join(line.removeprefix("  ") for line in body.splitlines())
        fence = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)
        blocks = tuple(Block(m.group(1), m.group(2)) for m in fence.finditer(body))
        prose = " ".join(fence.sub(" ", body).split())
        found[title] = Recipe(title, prose, blocks)
    return found


# --------------------------------------------------------------------------- edits


def scratch_copy(destination: Path) -> Path:
    """The working tree's files (tracked and new, not ignored) copied to ``destination``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=TOOL_TIMEOUT,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is gone
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def config_path(recipe: Recipe) -> tuple[str, ...]:
    """The key path of the list a recipe adds an entry to (`llm-platform:cost.budgets`)."""
    key = recipe.find(r"(?:add|append) an entry to `([\w:.-]+)`")
    if ":" not in key:
        key = f"{NS}:{key}"
    namespace, _, rest = key.partition(":")
    first, *nested = rest.split(".")
    return (f"{namespace}:{first}", *nested)


def append_to_list(text: str, keys: tuple[str, ...], entry: str) -> str:
    """``text`` (a YAML document) with ``entry`` (a YAML list item, at indent 0) appended
    to the block list under ``keys``, as one would paste it there."""
    lines = text.splitlines()
    start, indent = 0, -1
    for key in keys:
        for i in range(start, len(lines)):
            match = re.match(rf"^( *){re.escape(key)}:\s*(#.*)?$", lines[i])
            if match and len(match.group(1)) > indent:
                start, indent = i + 1, len(match.group(1))
                break
        else:
            raise AssertionError(f"no block key {'.'.join(keys)} in the stack file")
    item_indent, end = None, start
    for i in range(start, len(lines)):
        stripped = lines[i].lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        current = len(lines[i]) - len(stripped)
        if item_indent is None:
            assert stripped.startswith("- "), f"{'.'.join(keys)} is not a block list"
            item_indent = current
        if current < item_indent or (current == item_indent and not stripped.startswith("- ")):
            break
        end = i + 1
    assert item_indent is not None and item_indent >= indent
    pasted = textwrap.indent(entry.rstrip("\n"), " " * item_indent).splitlines()
    return "\n".join([*lines[:end], *pasted, *lines[end:]]) + "\n"


def _value(document: dict[str, Any], keys: tuple[str, ...]) -> Any:
    value: Any = document["config"]
    for key in keys:
        value = value[key]
    return value


def add_list_entry(root: Path, recipe: Recipe) -> tuple[str, dict[str, Any]]:
    """Apply a stack-file recipe: its YAML entry appended to the list it names, in the
    stack file it names. Returns the stack and the entry."""
    stack_file = recipe.find(r"in `(Pulumi\.[\w-]+\.yaml)`")
    path = root / stack_file
    keys = config_path(recipe)
    entry = recipe.block("yaml")
    before = _value(yaml.safe_load(path.read_text()), keys)
    path.write_text(append_to_list(path.read_text(), keys, entry))
    after = _value(yaml.safe_load(path.read_text()), keys)
    (item,) = yaml.safe_load(entry)
    assert after == [*before, item], "the entry did not land in the list as written"
    return stack_file.split(".")[1], item


def insert_lines(path: Path, after_line: int, indent: int, code: str) -> None:
    """``code`` pasted after line ``after_line`` of ``path``, indented by ``indent``."""
    lines = path.read_text().splitlines(keepends=True)
    assert lines[after_line - 1].rstrip().endswith((",", '"""', ")")), lines[after_line - 1]
    lines.insert(after_line, textwrap.indent(code.rstrip("\n") + "\n", " " * indent))
    path.write_text("".join(lines))


def _rule_group_end(tree: ast.AST, group: str) -> tuple[int, int]:
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "RuleGroup"
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value == group
        ):
            rules = node.args[1]
            assert isinstance(rules, ast.Tuple) and rules.elts
            last = rules.elts[-1]
            assert last.end_lineno is not None
            return last.end_lineno, rules.elts[0].col_offset
    raise AssertionError(f"no RuleGroup({group!r}, ...) in the alert rules")


def _class_fields_end(tree: ast.AST, name: str) -> tuple[int, int]:
    (cls,) = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == name]
    fields = [s for s in cls.body if not isinstance(s, ast.FunctionDef)]
    assert fields[-1].end_lineno is not None
    return fields[-1].end_lineno, cls.body[1].col_offset


def _returned_dict_end(tree: ast.AST, function: str) -> tuple[int, int]:
    (func,) = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == function]
    (ret,) = [n for n in ast.walk(func) if isinstance(n, ast.Return)]
    assert isinstance(ret.value, ast.Dict) and ret.value.keys
    key = ret.value.keys[0]
    assert key is not None and ret.value.values[-1].end_lineno is not None
    return ret.value.values[-1].end_lineno, key.col_offset


def add_alert(root: Path, recipe: Recipe) -> str:
    """Apply the alert recipe; returns the alert's name."""
    rule, threshold, cases = (recipe.block("python", i) for i in range(3))
    page, index_line = recipe.block("markdown", 0), recipe.block("markdown", 1)
    name = page.splitlines()[0].removeprefix("# ")
    assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", name), page.splitlines()[0]

    rules_file = root / recipe.find(r"`platform_rule_groups` \(`([\w/]+\.py)`\)")
    group = recipe.find(r"in the `([\w.-]+)` group")
    assert "with a comma after it" in recipe.prose
    where = _rule_group_end(ast.parse(rules_file.read_text()), group)
    insert_lines(rules_file, *where, rule.rstrip() + ",")

    config_file = root / recipe.find(r"`AlertThresholds` \(`([\w/]+\.py)`\)")
    where = _class_fields_end(ast.parse(config_file.read_text()), "AlertThresholds")
    insert_lines(config_file, *where, threshold)

    cases_file = root / recipe.find(r"`alert_cases` in `([\w/]+\.py)`")
    insert_lines(
        cases_file, *_returned_dict_end(ast.parse(cases_file.read_text()), "alert_cases"), cases
    )

    runbooks = root / "docs" / "runbooks"
    assert f"`docs/runbooks/{name}.md`" in recipe.prose
    (runbooks / f"{name}.md").write_text(page)
    index = runbooks / "README.md"
    assert "`docs/runbooks/README.md`" in recipe.prose
    lines = index.read_text().splitlines()
    last = max(i for i, line in enumerate(lines) if line.startswith("- ["))
    index.write_text(
        "\n".join([*lines[: last + 1], index_line.rstrip(), *lines[last + 1 :]]) + "\n"
    )

    assert "`python -m tools config-reference`" in recipe.prose
    run_tool(root, "python -m tools config-reference")
    changed = [rules_file, config_file, cases_file]
    for check in (["check"], ["format", "--check"]):  # `make test` lints what was pasted
        run(root, [sys.executable, "-m", "ruff", *check, *map(str, changed)], TOOL_TIMEOUT)
    return name


def _merge(into: dict[str, Any], changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def add_environment(root: Path, recipe: Recipe, stack: str) -> str:
    """Apply the environment recipe for a new ``stack``; returns the stack copied."""
    copy, commands = recipe.block("sh", 0), recipe.block("sh", 1)
    cluster, job = (recipe.block("yaml", i).replace("<stack>", stack) for i in range(2))
    (line,) = copy.strip().splitlines()
    match = re.fullmatch(r"cp Pulumi\.([\w-]+)\.yaml Pulumi\.<stack>\.yaml", line)
    assert match, line
    source = match.group(1)
    document = yaml.safe_load((root / f"Pulumi.{source}.yaml").read_text())
    _merge(document["config"], yaml.safe_load(cluster))
    (root / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))

    for command in commands.replace("<stack>", stack).splitlines():
        command = command.split("#")[0].strip()
        if not command:
            continue
        if command == f"make plan STACK={stack}":
            command = f"python -m tools plan {stack}"  # what `make plan` runs
        run_tool(root, command)

    workflow = (
        root / ".github" / "workflows" / recipe.find(r"in the order of `([\w-]+\.yml)`'s jobs")
    )
    text = workflow.read_text()
    assert re.findall(r"^\w[\w-]*:", text, re.M)[-1] == "jobs:", "jobs must come last"
    workflow.write_text(text.rstrip("\n") + "\n\n" + job)
    assert stack in yaml.safe_load(workflow.read_text())["jobs"]
    return source


# --------------------------------------------------------------------------- commands


def run(root: Path, args: list[str], timeout: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    result = subprocess.run(
        args, cwd=root, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"{shlex.join(args)}:\n{result.stdout}{result.stderr}"
    return result


def run_tool(root: Path, command: str) -> None:
    """A `python -m tools ...` command of a recipe, with this interpreter."""
    args = shlex.split(command)
    assert args[:3] == ["python", "-m", "tools"], f"not a project tool: {command}"
    run(root, [sys.executable, *args[1:]], TOOL_TIMEOUT)


def plan_every_stack(root: Path) -> Path:
    """`make plans` in the copy: the offline plan of every stack, in one process."""
    stacks = stack_names(root)
    run(root, [sys.executable, "-m", "tools", "plan", *stacks], PLAN_TIMEOUT)
    return root / "build"


# --------------------------------------------------------------------------- recipes

ENVIRONMENT, MODEL, BUDGET, ALERT, POOL = (
    "An environment",
    "A model",
    "A budget",
    "An alert",
    "A GPU NodePool",
)


def _new_stack(recipe: Recipe) -> str:
    """A name for the new environment that no stack file has: the copied one's, plus 2."""
    copied = re.search(r"cp Pulumi\.([\w-]+)\.yaml", recipe.block("sh", 0))
    assert copied
    name = f"{copied.group(1)}2"
    assert name not in stack_names()
    return name


def apply_environment(root: Path, recipe: Recipe) -> Callable[[Path], None]:
    stack = _new_stack(recipe)
    add_environment(root, recipe, stack)

    def check(build: Path) -> None:
        assert (build / stack / "summary.txt").is_file()
        assert (root / "policies" / f"config.{stack}.json").is_file()

    return check


def apply_model(root: Path, recipe: Recipe) -> Callable[[Path], None]:
    stack, model = add_list_entry(root, recipe)
    assert "build/<stack>/manifests/" in recipe.prose

    def check(build: Path) -> None:
        cfg = yaml.safe_load((root / f"Pulumi.{stack}.yaml").read_text())["config"]
        namespace = cfg.get(f"{NS}:serving", {}).get("namespace", "inference")
        manifest = build / stack / "manifests" / f"deployment-{namespace}-{model['name']}.yaml"
        assert manifest.is_file(), manifest
        assert f"/models/{model['name']}/{model['revision']}/" in manifest.read_text()

    return check


def run_commands(root: Path, recipe: Recipe) -> None:
    """The recipe's `sh` block, each line a project tool."""
    for command in recipe.block("sh").splitlines():
        run_tool(root, command)


def apply_budget(root: Path, recipe: Recipe) -> Callable[[Path], None]:
    stack, budget = add_list_entry(root, recipe)
    run_commands(root, recipe)
    helm = recipe.find(r"Kubecost alerts \(`build/<stack>/(helm/[\w.-]+)`\)")
    rule = recipe.find(r"PrometheusRule \(`(manifests/[\w.-]+)`\)")

    def check(build: Path) -> None:
        alerts = yaml.safe_load((build / stack / helm).read_text())
        configs = alerts["values"]["global"]["notifications"]["alertConfigs"]["alerts"]
        mine = [a for a in configs if a.get("filter") == budget.get("target", a.get("filter"))]
        assert len(mine) >= len(budget["thresholdsPercent"])
        assert f"budget: {budget['name']}" in (build / stack / rule).read_text()

    return check


def apply_alert(root: Path, recipe: Recipe) -> Callable[[Path], None]:
    name = add_alert(root, recipe)

    def check(build: Path) -> None:
        for stack in stack_names(root):
            rules = sorted((build / stack / "manifests").glob("prometheusrule-monitoring-*.yaml"))
            assert any(f"alert: {name}" in p.read_text() for p in rules), stack

    return check


def apply_pool(root: Path, recipe: Recipe) -> Callable[[Path], None]:
    stack, pool = add_list_entry(root, recipe)
    run_commands(root, recipe)
    assert "summary shows the new pool's capacity" in recipe.prose

    def check(build: Path) -> None:
        summary = (build / stack / "summary.txt").read_text()
        assert f"  {pool['name']}: limit {pool['gpuLimit']} GPUs" in summary

    return check


APPLY: dict[str, Callable[[Path, Recipe], Callable[[Path], None]]] = {
    ENVIRONMENT: apply_environment,
    MODEL: apply_model,
    BUDGET: apply_budget,
    ALERT: apply_alert,
    POOL: apply_pool,
}


def test_the_readme_has_every_tested_recipe() -> None:
    found = recipes()
    assert set(APPLY) <= set(found), sorted(found)
    for title in APPLY:
        assert found[title].blocks, f"recipe {title!r} gives no edit to copy"


def test_every_path_the_recipes_name_exists() -> None:
    """Files the recipes send the reader to (paths with a directory and a suffix), except
    plan output and the runbook page a recipe creates."""
    for recipe in recipes().values():
        created = {
            f"docs/runbooks/{b.code.splitlines()[0].removeprefix('# ')}.md"
            for b in recipe.blocks
            if b.lang == "markdown" and b.code.startswith("# ")
        }
        for path in re.findall(r"`((?:[\w.-]+/)+[\w.-]+\.\w+)`", recipe.prose):
            if "<" in path or path.startswith(("build/", "manifests/", "helm/")):
                continue
            if path not in created:
                assert (ROOT / path).is_file(), f"recipe {recipe.title!r}: no {path}"


def test_list_entries_are_pasted_where_the_recipe_says() -> None:
    text = "config:\n  a:b:\n    - x: 1\n    - x: 2\n  a:c:\n    d:\n    - y: 1\n  a:e: 3\n"
    pasted = append_to_list(append_to_list(text, ("a:b",), "- x: 3\n"), ("a:c", "d"), "- y: 2")
    assert yaml.safe_load(pasted)["config"] == {
        "a:b": [{"x": 1}, {"x": 2}, {"x": 3}],
        "a:c": {"d": [{"y": 1}, {"y": 2}]},
        "a:e": 3,
    }


@pytest.mark.longest
@pytest.mark.e2e
def test_the_suite_passes_with_every_recipe_applied(tmp_path: Path) -> None:
    """Each recipe's plan is checked on its own above; the suite plans every stack."""
    root = scratch_copy(tmp_path / "repo")
    found = recipes()
    for title, apply in APPLY.items():
        apply(root, found[title])
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env[INNER] = "1"
    # The suite as `make test` runs it, with its own temporary directory.
    args = [sys.executable, "-m", "pytest", *PYTEST_ARGS, "-p", "no:cacheprovider"]
    args += ["--basetemp", str(tmp_path / "inner-tmp")]
    result = subprocess.run(
        args, cwd=root, env=env, capture_output=True, text=True, timeout=SUITE_TIMEOUT, check=False
    )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    passed = re.search(r"^(\d+) passed", result.stdout.splitlines()[-1])
    assert passed and int(passed.group(1)) > 500, result.stdout[-2000:]


@pytest.mark.longest
@pytest.mark.e2e
@pytest.mark.parametrize("title", list(APPLY))
def test_recipe_as_written_plans_every_stack(title: str, tmp_path: Path) -> None:
    root = scratch_copy(tmp_path / "repo")
    check = APPLY[title](root, recipes()[title])
    check(plan_every_stack(root))
