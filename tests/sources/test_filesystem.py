"""Resolving a row's file_path inside a filesystem source, and opening it. Uses tmp_path; only
the test through a whole import uses the database."""

import os
import socket
import stat
import unicodedata
from pathlib import Path

import pytest

from imports.errors import SourceMisconfigured, SourceProblem, SourceUnreadable
from imports.models import Document, ImportStatus
from imports.sources.filesystem import FilesystemSource

from ..factories import csv_bytes, import_run, png_bytes


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A source folder holding scans/a.png, with secret.txt next to it (outside)."""
    root = tmp_path / "source"
    (root / "scans").mkdir(parents=True)
    (root / "scans" / "a.png").write_bytes(b"png")
    (tmp_path / "secret.txt").write_text("outside")
    (tmp_path / "x").write_text("outside")
    return root


def problem_of(root: Path, file_path: str) -> str:
    """The problem resolving `file_path` raises, checked to name it and not the server path."""
    with pytest.raises(SourceProblem) as caught:
        FilesystemSource(root).resolve(file_path)
    message = str(caught.value)
    assert repr(file_path) in message
    assert str(root.parent) not in message
    return message


@pytest.mark.parametrize(
    "file_path", ["scans/a.png", "scans\\a.png", "./scans/a.png", "scans/../scans/a.png"]
)
def test_a_file_inside_the_source_resolves(root, file_path):
    assert FilesystemSource(root).resolve(file_path) == (root / "scans" / "a.png").resolve()


def test_nested_folders_and_non_ascii_names_resolve(root):
    # given
    target = root / "Jahr 2020" / "März" / "Café Überweg.pdf"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"pdf")

    # when
    resolved = FilesystemSource(root).resolve("Jahr 2020/März/Café Überweg.pdf")

    # then
    assert resolved == target.resolve()
    assert resolved.read_bytes() == b"pdf"


SCAN = "Café Überweg/scan 01 – ½.png"


def spelled(form: str, text: str) -> str:
    """`text` in one Unicode normal form, checked to differ from the other one."""
    other = {"NFC": "NFD", "NFD": "NFC"}[form]
    assert unicodedata.normalize(form, text) != unicodedata.normalize(other, text)
    return unicodedata.normalize(form, text)


@pytest.mark.parametrize(("stored", "written"), [("NFD", "NFC"), ("NFC", "NFD")])
def test_a_name_stored_in_one_unicode_form_resolves_when_written_in_the_other(
    root, stored, written
):
    # given a folder and file with spaces and accents, stored in one form
    target = root / spelled(stored, SCAN)
    target.parent.mkdir()
    target.write_bytes(b"png")
    assert not (root / spelled(written, SCAN)).exists()

    # when the manifest writes the other form
    resolved = FilesystemSource(root).resolve(spelled(written, SCAN))

    # then
    assert resolved == target.resolve()
    assert resolved.read_bytes() == b"png"


@pytest.mark.parametrize("form", ["NFC", "NFD"])
def test_the_spelling_as_written_wins_when_both_are_stored(root, form):
    for stored in ("NFC", "NFD"):
        target = root / spelled(stored, SCAN)
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(stored.encode())

    resolved = FilesystemSource(root).resolve(spelled(form, SCAN))

    assert resolved.read_bytes() == form.encode()


@pytest.mark.parametrize("form", ["NFC", "NFD"])
def test_a_name_missing_in_every_spelling_is_no_such_file(root, form):
    (root / spelled("NFC", "Café Überweg")).mkdir()

    assert problem_of(root, spelled(form, SCAN)).endswith("no such file")


def test_a_folder_in_the_other_spelling_is_not_a_file(root):
    (root / spelled("NFD", "Café Überweg")).mkdir()

    assert problem_of(root, spelled("NFC", "Café Überweg")).endswith("is a directory, not a file")


@pytest.mark.parametrize(
    "file_path",
    ["../Café Überweg.txt", "scans/../../Café Überweg.txt", "scans\\..\\..\\Café Überweg.txt"],
)
def test_climbing_out_in_the_other_unicode_spelling_is_refused(root, tmp_path, file_path):
    # given a file outside the source, stored in NFC
    (tmp_path / spelled("NFC", "Café Überweg.txt")).write_text("outside")

    # when the manifest climbs out to it in NFD, then
    assert problem_of(root, spelled("NFD", file_path)).endswith("path outside source")


def test_a_symlink_out_found_through_the_other_spelling_is_refused(root, tmp_path):
    os.symlink(tmp_path / "secret.txt", root / spelled("NFD", "Überweg.txt"))

    assert problem_of(root, spelled("NFC", "Überweg.txt")).endswith("path outside source")


def test_a_dangling_symlink_out_in_the_other_spelling_is_refused(root, tmp_path):
    os.symlink(tmp_path / "gone.txt", root / spelled("NFC", "Überweg.txt"))

    assert problem_of(root, spelled("NFD", "Überweg.txt")).endswith("path outside source")


@pytest.mark.parametrize(
    "file_path",
    [
        "/etc/passwd",
        "../x",
        "../gone",
        "a/../../x",
        "a/../../gone",
        "scans/../../x",
        "a\x00b",
        "\\x",
        "..\\x",
        "C:\\x",
        "C:/scans/a.png",
        "\\\\server\\share\\x",
    ],
)
def test_a_path_leading_out_of_the_source_is_refused(root, file_path):
    assert problem_of(root, file_path).endswith("path outside source")


def test_an_absolute_path_to_a_file_under_the_source_is_still_refused(root):
    file_path = str(root / "scans" / "a.png")

    with pytest.raises(SourceProblem, match="path outside source"):
        FilesystemSource(root).resolve(file_path)


def test_a_symlink_leading_out_of_the_source_is_refused(root, tmp_path):
    os.symlink(tmp_path / "secret.txt", root / "scans" / "link.txt")

    assert problem_of(root, "scans/link.txt").endswith("path outside source")


def test_a_dangling_symlink_leading_out_of_the_source_is_refused(root, tmp_path):
    os.symlink(tmp_path / "gone.txt", root / "gone.txt")

    assert problem_of(root, "gone.txt").endswith("path outside source")


def test_a_symlinked_folder_leading_out_of_the_source_is_refused(root, tmp_path):
    os.symlink(tmp_path, root / "up")

    assert problem_of(root, "up/secret.txt").endswith("path outside source")


def test_a_symlink_pointing_inside_the_source_resolves(root):
    os.symlink(root / "scans" / "a.png", root / "alias.png")

    assert FilesystemSource(root).resolve("alias.png") == (root / "scans" / "a.png").resolve()


@pytest.mark.parametrize("file_path", ["missing.pdf", "scans/missing.png", "scans\\missing.png"])
def test_a_missing_file_is_no_such_file(root, file_path):
    assert problem_of(root, file_path).endswith("no such file")


@pytest.mark.parametrize("file_path", ["scans", "scans/", "", "."])
def test_a_directory_is_not_a_file(root, file_path):
    assert "directory" in problem_of(root, file_path)


def test_a_colon_in_a_relative_name_is_no_drive(root):
    (root / "C:x.png").write_bytes(b"png")

    assert FilesystemSource(root).resolve("C:x.png") == (root / "C:x.png").resolve()


def test_a_symlink_loop_is_a_problem_not_a_crash(root):
    os.symlink("loop", root / "loop")

    problem_of(root, "loop")


def test_check_passes_on_a_directory(root):
    FilesystemSource(root).check()


def test_check_refuses_a_missing_directory(tmp_path):
    with pytest.raises(SourceMisconfigured):
        FilesystemSource(tmp_path / "nowhere").check()


def test_check_refuses_a_regular_file(root, tmp_path):
    with pytest.raises(SourceMisconfigured):
        FilesystemSource(tmp_path / "secret.txt").check()


# Special files: a FIFO opened for reading waits for a writer forever, so none may be opened.
# Each test that could block has a short timeout of its own.


def make_fifo(path: Path) -> None:
    os.mkfifo(path)


def make_socket(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Bound by a relative name: a socket's path is limited to about 100 bytes.
    monkeypatch.chdir(path.parent)
    with socket.socket(socket.AF_UNIX) as bound:
        bound.bind(path.name)


def make_device(path: Path, kind: int) -> None:
    try:
        os.mknod(path, kind | 0o600, os.makedev(1, 3))  # what /dev/null is
    except PermissionError:
        pytest.skip("making a device node needs root (CAP_MKNOD)")


@pytest.mark.timeout(10)
def test_a_fifo_is_not_a_regular_file(root):
    make_fifo(root / "pipe.png")

    assert problem_of(root, "pipe.png").endswith("is a named pipe (FIFO), not a regular file")


@pytest.mark.timeout(10)
def test_a_unix_socket_is_not_a_regular_file(root, monkeypatch):
    make_socket(root / "socket.png", monkeypatch)

    assert problem_of(root, "socket.png").endswith("is a socket, not a regular file")


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("kind", "words"),
    [(stat.S_IFCHR, "is a character device"), (stat.S_IFBLK, "is a block device")],
)
def test_a_device_is_not_a_regular_file(root, kind, words):
    make_device(root / "device.png", kind)

    assert problem_of(root, "device.png").endswith(f"{words}, not a regular file")


@pytest.mark.timeout(10)
def test_a_symlink_inside_the_source_to_a_fifo_is_not_a_regular_file(root):
    make_fifo(root / "pipe")
    os.symlink(root / "pipe", root / "alias.png")

    assert problem_of(root, "alias.png").endswith("is a named pipe (FIFO), not a regular file")


def test_a_directory_is_still_named_a_directory(root):
    assert problem_of(root, "scans").endswith("is a directory, not a file")


HARD_LINKS = (
    "the file has other hard links, which may lead outside the source; "
    "set IMPORT_ALLOW_HARD_LINKS=true to accept them"
)


def test_a_hard_link_to_a_file_outside_the_source_is_refused(root, tmp_path):
    os.link(tmp_path / "secret.txt", root / "linked.txt")

    assert problem_of(root, "linked.txt").endswith(HARD_LINKS)


def test_a_file_with_a_second_link_inside_the_source_is_refused_too(root):
    # A link count cannot tell where the other names are: one inside looks like one outside.
    os.link(root / "scans" / "a.png", root / "again.png")

    assert problem_of(root, "scans/a.png").endswith(HARD_LINKS)


def test_hard_links_are_accepted_when_the_setting_allows_them(root, tmp_path, settings):
    settings.IMPORT_ALLOW_HARD_LINKS = True
    os.link(tmp_path / "secret.txt", root / "linked.txt")
    source = FilesystemSource(root)

    with source.open(source.resolve("linked.txt")) as opened:
        assert opened.read() == b"outside"


# What was resolved may be changed before it is opened: open checks again, on what it opened.


def swapped(root: Path, make) -> tuple[FilesystemSource, Path]:
    """A source, and scans/a.png as resolved; then something else is put in its place."""
    source = FilesystemSource(root)
    resolved = source.resolve("scans/a.png")
    replacement = root / "replacement"
    make(replacement)
    (root / "scans" / "a.png").unlink()
    os.rename(replacement, root / "scans" / "a.png")
    return source, resolved


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "make",
    [
        make_fifo,
        lambda path: os.link(path.parent.parent / "secret.txt", path),
        lambda path: os.symlink(path.parent.parent / "secret.txt", path),
        lambda path: path.mkdir(),
    ],
    ids=["fifo", "hard link out", "symlink out", "directory"],
)
def test_a_file_swapped_after_it_was_resolved_is_not_opened(root, make):
    source, resolved = swapped(root, make)

    with pytest.raises(SourceUnreadable):
        source.open(resolved).close()


def test_a_hard_link_swapped_in_opens_when_the_setting_allows_them(root, settings):
    settings.IMPORT_ALLOW_HARD_LINKS = True
    source, resolved = swapped(root, lambda path: os.link(path.parent.parent / "x", path))

    with source.open(resolved) as opened:
        assert opened.read() == b"outside"


def test_an_opened_file_reads_whole_and_blocking(root):
    source = FilesystemSource(root)

    with source.open(source.resolve("scans/a.png")) as opened:
        assert opened.read() == b"png"
        assert os.get_blocking(opened.fileno())


@pytest.mark.django_db
@pytest.mark.timeout(20)
def test_special_files_and_hard_links_fail_their_rows_in_an_import(source, tmp_path):
    # given a good file, a FIFO, and a hard link to a file outside the source
    (source / "ok.png").write_bytes(png_bytes("ok"))
    make_fifo(source / "pipe.png")
    (tmp_path / "outside.png").write_bytes(png_bytes("outside"))
    os.link(tmp_path / "outside.png", source / "linked.png")
    manifest = csv_bytes(
        "identifier,file_path,title", "A,ok.png,Fine", "B,pipe.png,Pipe", "C,linked.png,Link"
    )

    # when
    job = import_run(manifest, batch_size=3)

    # then the import ends, and only the good row is a document
    assert (job.status, job.imported_rows, job.failed_rows) == (ImportStatus.FINISHED, 1, 2)
    comments = dict(job.rows.values_list("identifier", "comment"))
    assert comments["B"] == "file_path 'pipe.png': is a named pipe (FIFO), not a regular file"
    assert comments["C"] == f"file_path 'linked.png': {HARD_LINKS}"
    assert list(Document.objects.values_list("identifier", flat=True)) == ["A"]
