"""The README's curl session works exactly as written, against a running service."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def quickstart() -> str:
    readme = (ROOT / "README.md").read_text()
    return re.search(r"<!-- quickstart -->\n```sh\n(.*?)```", readme, re.S).group(1)


def test_the_readme_curl_session_imports_and_reports(service, tmp_path):
    # given the README's commands, pointed at this test's service instead of the defaults
    script = (
        quickstart()
        .replace("http://127.0.0.1:8000", service.base_url)
        .replace("var/source", str(service.source))
        .replace(".venv/bin/python manage.py", f"{sys.executable} {ROOT / 'manage.py'}")
    )
    env = {**service.env, "PATH": "/usr/bin:/bin"}  # DATA_DIR, and the stack if in use
    # when they run in a shell
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # then the report shows two imported rows and the missing scan
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "report.csv").read_text().splitlines()
    assert report[0] == "identifier,file_path,title,created_date,box,import_status,import_comment"
    assert [line.split(",")[0] for line in report[1:]] == ["L-1998-001", "L-1998-002", "L-1998-003"]
    assert ",imported," in report[1] and ",imported," in report[2]
    assert report[3].endswith("failed,file_path 'letters/1998-003.png': no such file")
