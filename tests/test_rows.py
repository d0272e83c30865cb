"""One manifest row to its values and every problem in it; a file's type against what is allowed
and what its row declares. Pure: no database."""

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imports.problems import checksum_mismatch as checksum_problem
from imports.problems import repeated_identifier as repeated_identifier_problem
from imports.rows import content_type_problems, row_read

COLUMNS = ("identifier", "file_path", "title", "created_date", "language", "checksum")
DIGEST = "ab" * 32
MD5 = "d41d8cd98f00b204e9800998ecf8427e"


def read(**values: str):
    """Read a row under COLUMNS, a valid row unless `values` say otherwise."""
    row = {"identifier": "A1", "file_path": "a.pdf", "title": "First"} | values
    return row_read(COLUMNS, [row.get(name, "") for name in COLUMNS])


def read_one(column: str, value: str):
    """Read a valid row with one optional column set to `value`."""
    return row_read(("identifier", "file_path", "title", column), ["A1", "a.pdf", "T", value])


def test_a_valid_row_has_no_problem():
    values, problems = read(created_date="2020-01-31", language="en", checksum=DIGEST)

    assert problems == []
    assert (values.identifier, values.file_path, values.title) == ("A1", "a.pdf", "First")
    assert values.created_date == date(2020, 1, 31)


def test_every_problem_of_a_row_is_returned_at_once():
    _, problems = read(title=" ", created_date="yesterday", checksum="not-a-digest")

    assert len(problems) == 3
    assert "title is empty" in problems
    assert any("yesterday" in problem for problem in problems)
    assert any("not-a-digest" in problem for problem in problems)


@pytest.mark.parametrize("column", ["identifier", "file_path", "title"])
@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_required_column_is_a_problem(column, value):
    _, problems = read(**{column: value})

    assert problems == [f"{column} is empty"]


def test_created_date_accepts_an_iso_date():
    values, problems = read(created_date="2020-01-31")

    assert problems == []
    assert values.created_date == date(2020, 1, 31)


@pytest.mark.parametrize("text", ["31-01-2020", "2020-02-30", "01/31/2020", "soon"])
def test_created_date_refuses_what_is_not_an_iso_date(text):
    values, problems = read(created_date=text)

    assert values.created_date is None
    assert len(problems) == 1
    assert text in problems[0]
    assert "created_date" in problems[0]


def test_an_empty_created_date_is_no_date_and_no_problem():
    values, problems = read(created_date="")

    assert (values.created_date, problems) == (None, [])


@pytest.mark.parametrize(
    "text",
    [DIGEST, f"sha256:{DIGEST}", DIGEST.upper(), f"SHA256:{DIGEST.upper()}", f"  {DIGEST} "],
)
def test_checksum_accepts_sha256_hex_and_normalises_it(text):
    values, problems = read(checksum=text)

    assert problems == []
    assert values.checksum == DIGEST


@pytest.mark.parametrize("text", [DIGEST[:-1], DIGEST + "a", "g" * 64, f"md5:{DIGEST}", MD5])
def test_checksum_refuses_what_is_not_a_sha256_hex_digest(text):
    values, problems = read(checksum=text)

    assert values.checksum == ""
    assert len(problems) == 1
    assert text in problems[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("en", "en"),  # ISO 639-1
        ("deu", "deu"),  # ISO 639-3 (and 639-2/T)
        ("ger", "ger"),  # ISO 639-2/B, the bibliographic spelling of German
        ("gsw", "gsw"),  # ISO 639-3 only: Swiss German has no two-letter code
        ("FR", "fr"),
        ("Fre", "fre"),
        (" nl ", "nl"),
    ],
)
def test_language_accepts_iso_639_codes_in_any_case_and_stores_them_lowercase(text, expected):
    values, problems = read(language=text)

    assert problems == []
    assert values.language == expected


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("xx", "xx"),  # two letters, but no language
        ("XYZ", "xyz"),
        ("iw", "iw"),  # Hebrew's withdrawn 639-1 code
        ("e", "e"),
        ("engl", "engl"),
        ("en-US", "en-us"),
        ("fr_FR", "fr_fr"),
        ("12", "12"),
    ],
)
def test_language_refuses_what_is_not_an_iso_639_code(text, quoted):
    _, problems = read(language=text)

    assert problems == [f"language '{quoted}' is not an ISO 639 code"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("public", "public"),
        ("Internal", "internal"),
        ("CONFIDENTIAL", "confidential"),
        (" secret ", "secret"),
    ],
)
def test_confidentiality_accepts_the_four_levels_in_any_case(text, expected):
    values, problems = read_one("confidentiality", text)

    assert problems == []
    assert values.confidentiality == expected


@pytest.mark.parametrize("text", ["private", "top secret", "Restricted", "1"])
def test_confidentiality_refuses_other_levels(text):
    _, problems = read_one("confidentiality", text)

    assert problems == [
        f"confidentiality {text.lower()!r} is not one of public, internal, confidential, secret"
    ]


def test_columns_are_matched_by_name_whatever_their_order():
    # given
    columns = (" Title ", "checksum", "FILE_PATH", "Identifier", "Author")

    # when
    values, problems = row_read(columns, ["First", DIGEST, "a.pdf", "A1", "Ann"])

    # then
    assert problems == []
    assert (values.identifier, values.file_path, values.title) == ("A1", "a.pdf", "First")
    assert (values.checksum, values.author, values.extra) == (DIGEST, "Ann", {})


def test_unknown_columns_are_kept_in_extra_by_their_header_name():
    columns = ("identifier", "file_path", "title", "Shelf Mark", "box_NO")

    values, problems = row_read(columns, ["A1", "a.pdf", "First", " S-12 ", "7"])

    assert problems == []
    assert values.extra == {"Shelf Mark": " S-12 ", "box_NO": "7"}


def test_too_few_cells_is_a_problem_naming_both_counts():
    _, problems = row_read(("identifier", "file_path", "title", "author"), ["A1", "a.pdf", "T"])

    assert problems == ["the row has 3 fields where the header has 4"]


def test_too_many_non_empty_cells_is_a_problem_naming_both_counts():
    _, problems = row_read(("identifier", "file_path", "title"), ["A1", "a.pdf", "T", "", "x"])

    assert problems == ["the row has 5 fields where the header has 3"]


def test_trailing_empty_cells_are_not_a_problem():
    values, problems = row_read(("identifier", "file_path", "title"), ["A1", "a.pdf", "T", "", " "])

    assert problems == []
    assert values.extra == {}


@pytest.mark.parametrize(("length", "problem_count"), [(255, 0), (256, 1)])
def test_an_identifier_longer_than_255_characters_is_a_problem(length, problem_count):
    _, problems = read(identifier="x" * length)

    assert len(problems) == problem_count
    assert all("identifier" in problem and "255" in problem for problem in problems)


@pytest.mark.parametrize("separator", ["/", "\\"])
def test_the_file_name_is_the_last_part_of_file_path(separator):
    values, _ = read(file_path=separator.join(["box 1", "folder 2", "scan 3.tif"]))

    assert values.file_name == "scan 3.tif"


@pytest.mark.parametrize(("length", "problems"), [(500, []), (501, ["longer than 500"])])
def test_a_file_name_longer_than_500_characters_is_a_problem(length, problems):
    # S3 keys may be 1,024 bytes long; a document keeps at most 500 characters of its name
    _, found = read(file_path="box/" + "n" * (length - 4) + ".tif")

    assert [problem for problem in found if "file name" in problem] == [
        f"the file name is {words} characters" for words in problems
    ]


def test_repeated_identifier_problem_names_the_identifier_and_first_row():
    problem = repeated_identifier_problem("INV-0042", 17)

    assert "INV-0042" in problem
    assert "row 17" in problem


def test_checksum_problem_names_both_digests():
    expected, actual = "ab" * 32, "cd" * 32

    problem = checksum_problem(expected, actual)

    assert expected in problem
    assert actual in problem
    assert problem.index(expected) < problem.index(actual)


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
