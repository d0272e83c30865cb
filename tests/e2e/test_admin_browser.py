"""The admin in a real browser: Debian's headless Chromium, driven by Playwright, against the
real service (bin/serve). A person logs in, starts an import from the browser, watches it reach
100 % without reloading, downloads its report, and cancels another import from the list.

On failure, a screenshot of each page visited is written under var/screenshots/<test name>/.
"""

import csv
import os
import re
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ..conftest import png_bytes
from .conftest import ROOT, Service, _manage

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
USERNAME, PASSWORD = "archivist", "a long passphrase for the e2e admin"
ROWS = 1000  # enough batches of 2 that the page sees the progress between 0 and 100
MISSING_ROW = 123
WAIT_MS = 120_000

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"needs Debian's chromium at {CHROMIUM} (.ci/run installs it)",
)

# Before any page script: record every progress the page shows, to see it move.
PROGRESS_RECORDER = """
window.__progressSeen = [];
document.addEventListener("DOMContentLoaded", () => {
  const shown = document.querySelector('#import-progress [data-field="progress"]');
  if (shown) {
    window.__progressSeen.push(shown.textContent);
    new MutationObserver(() => window.__progressSeen.push(shown.textContent))
      .observe(shown, {childList: true, characterData: true, subtree: true});
  }
});
"""


class Screenshots:
    """Each page's screenshot as the test goes; written out only if the test fails."""

    def __init__(self, page) -> None:
        self.page = page
        self.taken: list[tuple[str, bytes]] = []

    def take(self, name: str) -> None:
        self.taken.append((name, self.page.screenshot(full_page=True)))

    def write(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for number, (name, data) in enumerate(self.taken, start=1):
            (folder / f"{number:02d}-{name}.png").write_bytes(data)


@contextmanager
def screenshots_on_failure(page, test_name: str) -> Iterator[Screenshots]:
    screenshots = Screenshots(page)
    try:
        yield screenshots
    except BaseException:
        try:
            screenshots.take("at-failure")
        finally:
            screenshots.write(ROOT / "var" / "screenshots" / test_name)
        raise


@pytest.fixture
def page():
    """A page of a fresh headless Chromium (a new profile of its own), downloads accepted."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(accept_downloads=True)
            context.set_default_timeout(30_000)
            yield context.new_page()
        finally:
            browser.close()


def superuser_create(service: Service) -> None:
    env = {**os.environ, **service.env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD}
    _manage(env, "createsuperuser", "--noinput", "--username", USERNAME, "--email", "a@b.org")


def png_image(side: int) -> bytes:
    """A real PNG, `side` pixels square and grey, that a browser draws (png_bytes only sniffs
    as one)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    pixels = b"".join(b"\x00" + b"\x80" * side for _ in range(side))
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(pixels))
        + chunk(b"IEND", b"")
    )


def manifest_with_one_missing_file(service: Service) -> bytes:
    """ROWS rows: ADM-1's file a real 8x8 image, ADM-<MISSING_ROW>'s missing."""
    (service.source / "admin").mkdir(parents=True, exist_ok=True)
    lines = ["identifier,file_path,title"]
    for number in range(1, ROWS + 1):
        name = f"admin/{number}.png"
        data = png_image(8) if number == 1 else png_bytes(f"admin-{number}")
        if number != MISSING_ROW:
            (service.source / name).write_bytes(data)
        lines.append(f"ADM-{number},{name},Scan {number}")
    return ("\n".join(lines) + "\n").encode()


def test_a_person_starts_watches_downloads_and_cancels_in_the_browser(service, page, request):
    with screenshots_on_failure(page, request.node.name) as screenshots:
        start_watch_download_and_cancel(service, page, screenshots)


def start_watch_download_and_cancel(service: Service, page, screenshots: Screenshots) -> None:
    from playwright.sync_api import expect

    superuser_create(service)
    manifest = manifest_with_one_missing_file(service)
    page.add_init_script(PROGRESS_RECORDER)

    # given a person logged into the admin
    page.goto(f"{service.base_url}/admin/")
    screenshots.take("login")
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page).to_have_url(f"{service.base_url}/admin/")
    screenshots.take("index")

    # when they start an import from the list's start page, with a manifest with a failing row
    page.goto(f"{service.base_url}/admin/imports/import/")
    screenshots.take("imports")
    page.get_by_role("link", name="Start an import").click()
    expect(page.locator("#import_start_form")).to_be_visible()
    screenshots.take("start")
    page.set_input_files(
        "#id_manifest", files=[{"name": "m.csv", "mimeType": "text/csv", "buffer": manifest}]
    )
    page.select_option("#id_on_conflict", "fail")
    page.fill("#id_batch_size", "2")
    page.get_by_role("button", name="Start the import").click()

    # then the import's page follows it to 100 % by itself, without being reloaded
    expect(page).to_have_url(re.compile(r"/admin/imports/import/[0-9a-f-]{36}/change/$"))
    page.evaluate("window.__notReloaded = true")
    panel = page.locator("#import-progress")
    cancel = page.locator('[data-change="cancel"]')
    expect(cancel).to_be_visible()
    screenshots.take("import-started")
    expect(panel.locator('[data-field="status"]')).to_have_text("finished", timeout=WAIT_MS)
    screenshots.take("import-finished")
    expect(panel.locator('[data-field="progress"]')).to_have_text("100.0")
    expect(panel.locator('[data-field="processed_rows"]')).to_have_text(str(ROWS))
    expect(panel.locator('[data-field="total_rows"]')).to_have_text(str(ROWS))
    expect(panel.locator('[data-field="failed_rows"]')).to_have_text("1")
    expect(cancel).to_be_hidden()  # an ended import cannot be cancelled
    assert page.evaluate("window.__notReloaded") is True
    seen = [float(text) for text in page.evaluate("window.__progressSeen")]
    assert any(0 < percent < 100 for percent in seen), seen

    # and its report downloads, with the failed row and why
    report_link = panel.get_by_role("link", name="the report")
    expect(report_link).to_be_visible()
    with page.expect_download() as downloading:
        report_link.click()
    with open(downloading.value.path(), newline="", encoding="utf-8") as report:
        rows = list(csv.DictReader(report))
    assert len(rows) == ROWS
    [failed] = [row for row in rows if row["import_status"] == "failed"]
    assert failed["identifier"] == f"ADM-{MISSING_ROW}"
    assert "no such file" in failed["import_comment"]

    # when another import stays open (created through the API, waiting for its manifest)
    created = service.request("POST", "/api/v1/imports/create")
    assert created.status == 201, created.body
    pending = created.json()

    # and is cancelled from the list with the admin's action
    page.goto(f"{service.base_url}/admin/imports/import/")
    screenshots.take("imports-with-pending")
    page.check(f'input[name="_selected_action"][value="{pending["uuid"]}"]')
    page.select_option('select[name="action"]', "cancel")
    page.get_by_role("button", name="Go").click()

    # then it is cancelled, and the list says so
    expect(page.locator(".messagelist")).to_contain_text(f"Import {pending['uuid']}: cancelled.")
    screenshots.take("cancelled")
    assert service.request("GET", pending["status_url"]).json()["status"] == "cancelled"

    # and the documents are found by identifier, an image's thumbnail drawn from its file
    page.goto(f"{service.base_url}/admin/imports/document/?q=ADM-1")
    page.get_by_role("link", name="ADM-1", exact=True).click()
    thumbnail = page.locator("img.document-thumbnail")
    expect(thumbnail).to_be_visible()
    screenshots.take("document")
    assert thumbnail.evaluate("image => image.complete && image.naturalWidth") == 8
