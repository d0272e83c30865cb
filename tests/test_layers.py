"""The layers of imports/, stated in pyproject.toml's [tool.importlinter], hold and can fail.

lint-imports parses the source and imports nothing. It finds the package `imports` through
sys.path, where it puts its working directory first, ahead of the editable install's finder
(which points at the checkout). So a run from a directory holding a copy of the package and the
same pyproject.toml reads the copy, never the checkout: the deliberate bad imports below are made
in such a copy.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
LAYERS = "imports: each module imports only from the layers below it"
CELERY = "imports: only imports.tasks, imports.celery and imports.beat import celery or kombu"


def lint_imports(where: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports run from `where`, on the package and pyproject.toml found there."""
    python_path = os.pathsep.join(filter(None, [str(where), os.environ.get("PYTHONPATH")]))
    # Wide columns, so that no contract name or import chain is wrapped across lines.
    env = {**os.environ, "PYTHONPATH": python_path, "COLUMNS": "200"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def tree_copy(tmp_path: Path) -> Path:
    """A directory holding a copy of the package and of the contract, and nothing else."""
    tree = tmp_path / "tree"
    shutil.copytree(
        ROOT / "imports", tree / "imports", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def line_appended(module: Path, line: str) -> int:
    """Appends `line` to `module` and returns its line number, as lint-imports quotes it."""
    text = module.read_text()
    if not text.endswith("\n"):
        text += "\n"
    module.write_text(text + line + "\n")
    return text.count("\n") + 1


def said(result: subprocess.CompletedProcess[str]) -> str:
    """lint-imports' report with every run of white space as one space, as a reader sees it."""
    return " ".join(result.stdout.split())


def test_the_checkout_keeps_every_contract():
    """The real tree: `make test` runs the same check and fails CI on a broken layer."""
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_upward_import_breaks_the_layers(tmp_path):
    tree = tree_copy(tmp_path)
    line = line_appended(tree / "imports" / "models.py", "from imports import tasks")

    result = lint_imports(tree)

    assert result.returncode != 0, result.stdout
    assert f"{LAYERS} BROKEN" in said(result), result.stdout
    assert "imports.models is not allowed to import imports.tasks" in said(result), result.stdout
    assert f"- imports.models -> imports.tasks (l.{line})" in said(result), result.stdout


def test_celery_imported_outside_tasks_breaks_its_contract(tmp_path):
    tree = tree_copy(tmp_path)
    line = line_appended(tree / "imports" / "errors.py", "import celery")

    result = lint_imports(tree)

    assert result.returncode != 0, result.stdout
    assert f"{CELERY} BROKEN" in said(result), result.stdout
    assert f"- imports.errors -> celery (l.{line})" in said(result), result.stdout
