"""A file's type against what is allowed and what its row declares. Pure: no storage."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imports.files import content_type_problems, sniff_content_type

DEFAULT_ALLOWED = ("image/*", "application/pdf")


@pytest.mark.parametrize(
    "sniffed", ["image/png", "image/jpeg", "image/tiff", "image/webp", "application/pdf"]
)
def test_images_and_pdf_are_allowed_by_the_default(sniffed):
    assert content_type_problems(sniffed, "", DEFAULT_ALLOWED) == []


@pytest.mark.parametrize(
    "sniffed", ["text/plain", "application/zip", "application/octet-stream", "video/mp4"]
)
def test_a_type_outside_the_allowed_ones_is_a_problem(sniffed):
    problems = content_type_problems(sniffed, "", DEFAULT_ALLOWED)

    assert problems == [f"the file's type is {sniffed}, which is not allowed here"]


@pytest.mark.parametrize(
    ("sniffed", "allowed", "problem_count"),
    [
        ("image/png", ["image/png"], 0),
        ("image/png", ["IMAGE/PNG"], 0),
        ("IMAGE/PNG", ["image/*"], 0),
        ("image/png", [" image/* "], 0),
        ("image/png", ["*/*"], 0),
        ("image/png", ["image/jpeg", "application/pdf"], 1),
        ("image/png", ["imag/*"], 1),
        ("application/pdf", ["image/*"], 1),
        ("image/png", ["image"], 1),
        ("image/png", [""], 1),
        ("image/png", [], 1),
    ],
)
def test_allowed_entries_are_exact_types_or_wildcards_in_any_case(sniffed, allowed, problem_count):
    assert len(content_type_problems(sniffed, "", allowed)) == problem_count


def test_a_declared_type_that_differs_from_the_sniffed_one_is_a_problem():
    problems = content_type_problems("image/png", "application/pdf", DEFAULT_ALLOWED)

    assert problems == ["content_type says application/pdf but the file is image/png"]


def test_the_declared_type_is_quoted_trimmed_as_the_row_wrote_it():
    problems = content_type_problems("image/png", "  Image/JPEG; q=1 ", DEFAULT_ALLOWED)

    assert problems == ["content_type says Image/JPEG; q=1 but the file is image/png"]


@pytest.mark.parametrize(
    "declared", ["image/png", "IMAGE/PNG", " image/png ", "image/png; charset=binary", "", "  "]
)
def test_a_declared_type_matching_after_case_space_and_parameters_is_no_problem(declared):
    assert content_type_problems("image/png", declared, DEFAULT_ALLOWED) == []


def test_a_file_neither_allowed_nor_as_declared_has_both_problems():
    problems = content_type_problems("text/plain", "application/pdf", DEFAULT_ALLOWED)

    assert problems == [
        "the file's type is text/plain, which is not allowed here",
        "content_type says application/pdf but the file is text/plain",
    ]


def test_a_wildcard_does_not_excuse_a_declared_type_that_differs():
    problems = content_type_problems("image/png", "image/*", DEFAULT_ALLOWED)

    assert problems == ["content_type says image/* but the file is image/png"]


token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.+-", min_size=1, max_size=12)


@given(kind=token, subtype=token, parameters=st.sampled_from(["", "; charset=utf-8", ";a=b"]))
def test_a_type_declared_in_any_case_with_parameters_matches_itself(kind, subtype, parameters):
    sniffed = f"{kind}/{subtype}"
    declared = f" {kind.upper()}/{subtype.title()}{parameters} "

    assert content_type_problems(sniffed, declared, [f"{kind}/*"]) == []


@given(kind=token, subtype=token, other=token)
def test_a_wildcard_allows_its_own_kind_only(kind, subtype, other):
    problems = content_type_problems(f"{kind}/{subtype}", "", [f"{other}/*"])

    assert len(problems) == (0 if kind == other else 1)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"),
        (b"%PDF-1.4\n%%EOF\n", "application/pdf"),
        (b"II*\x00\x08\x00\x00\x00" + bytes(8), "image/tiff"),
        (b"MM\x00*\x00\x00\x00\x08" + bytes(8), "image/tiff"),
        (b"plain text, not a scan\n", "application/octet-stream"),
        (b"", "application/octet-stream"),
    ],
)
def test_the_type_is_sniffed_from_the_first_bytes(head, expected):
    assert sniff_content_type(head) == expected
