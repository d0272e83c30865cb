"""What a new user reads first works as written: the quick start (docs/quickstart.md), every
command of it run against `make serve`, and the README's links.

The page's `sh` blocks are its commands: the first is `make serve`, run here as the service; the
others run in order in one shell, as the user's second terminal, in a folder that looks like the
top of the repository (`.venv` and `manage.py` linked, `var` the service's DATA_DIR). Only the
service's address is changed, to a free port.
"""

import os
import re
import signal
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from markdown.extensions.toc import slugify

from ..waiting import wait_until
from .conftest import STOP_BOUND_S, STOP_TIMEOUT_S, _stack_env, no_server_path_logged

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "docs" / "quickstart.md"
ADDRESS = "http://127.0.0.1:8000"  # `make serve`'s, as the page gives it


def blocks(page: Path, language: str) -> list[str]:
    """The page's fenced code blocks in `language`, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```$", page.read_text(), re.S | re.M)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[str, dict]]:
    """`make serve` on a DATA_DIR of its own; yields its address and its environment.

    `-o .venv/.installed`: the test runs the target's recipe (migrate, bin/serve) on the
    installed .venv, and never reinstalls it when pyproject.toml is newer than the stamp.
    """
    data_dir = tmp_path_factory.mktemp("quickstart") / "var"
    port = _free_port()
    with ExitStack() as stack:
        env = {
            **os.environ,
            "DATA_DIR": str(data_dir),
            "PORT": str(port),
            "DJANGO_SETTINGS_MODULE": "imports.settings",
            "STOP_TIMEOUT": str(STOP_TIMEOUT_S),
            **_stack_env(stack),  # its own database, queue and bucket prefix on the stack
        }
        log = stack.enter_context((data_dir.parent / "serve.log").open("w"))
        make = subprocess.Popen(
            ["make", "-o", ".venv/.installed", "serve"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        base_url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert make.poll() is None, (data_dir.parent / "serve.log").read_text()
            try:
                with urllib.request.urlopen(f"{base_url}/api/v1/schema/", timeout=5) as answer:
                    return answer.status == 200
            except OSError:
                return False

        try:
            wait_until(up, timeout_s=120, what="make serve up")
            yield base_url, env
        finally:
            # Ctrl-C in the terminal: the signal reaches make and bin/serve, which stops the rest.
            os.killpg(make.pid, signal.SIGTERM)
            try:
                make.wait(timeout=STOP_BOUND_S)
            except subprocess.TimeoutExpired:
                os.killpg(make.pid, signal.SIGKILL)
                raise
        no_server_path_logged((data_dir.parent / "serve.log").read_text(), data_dir)


def test_the_quickstart_imports_and_reports_as_written(served, tmp_path):
    base_url, env = served
    # given the page's commands: the service first, then the second terminal's
    service, *commands = blocks(QUICKSTART, "sh")
    assert service.strip() == "make serve"
    script = "\n".join(commands)
    assert ADDRESS in script
    script = script.replace(ADDRESS, base_url)
    # run from a folder that stands for the top of the repository
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    (tmp_path / "manage.py").symlink_to(ROOT / "manage.py")
    (tmp_path / "var").symlink_to(env["DATA_DIR"])
    # and a curl that fails on an HTTP error, so that a refused request stops the script at once
    # instead of the status loop waiting for an import that never started
    (tmp_path / "curl").mkdir()
    (tmp_path / "curl" / ".curlrc").write_text("fail-with-body\nshow-error\n")
    # when they run in one shell
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env={**env, "PATH": "/usr/bin:/bin", "CURL_HOME": str(tmp_path / "curl")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    # then they all succeed, and the report is the one the page shows, new uuids aside
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "report.csv").read_text().splitlines()
    (shown,) = blocks(QUICKSTART, "text")
    shown = shown.splitlines()
    assert len(report) == len(shown) == 4
    for line, expected in zip(report, shown, strict=True):
        if expected.endswith("..."):  # an imported row: its comment is the document's uuid
            prefix = expected[: expected.rindex(",") + 1]
            assert re.fullmatch(re.escape(prefix) + r"[0-9a-f-]{36}", line), (line, expected)
        else:
            assert line == expected


def _anchors(page: Path) -> set[str]:
    """The ids MkDocs gives the page's headings (Python-Markdown's toc slugify)."""
    text = re.sub(r"^```.*?^```$", "", page.read_text(), flags=re.S | re.M)
    return {slugify(title, "-") for title in re.findall(r"^#+ (.+)$", text, re.M)}


def test_the_readme_links_lead_to_pages_and_headings_that_exist():
    # given every relative link of the README (MkDocs checks the docs' own; not the README's)
    readme = (ROOT / "README.md").read_text()
    links = [
        target
        for target in re.findall(r"\]\(([^)\s]+)\)", readme)
        if not re.match(r"[a-z]+:", target)
    ]
    assert any(link.startswith("docs/quickstart.md") for link in links)
    # then each names a file, and a heading of it when it has an anchor
    for link in links:
        path, _, anchor = link.partition("#")
        assert (ROOT / path).exists(), link
        if anchor:
            assert anchor in _anchors(ROOT / path), link
