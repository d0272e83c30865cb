"""`create_import_token USERNAME [--read-only]`: users, permissions and the printed token."""

import io

from django.contrib.auth import get_user_model
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from tests.conftest import client_with

from .conftest import assert_error, url


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("create_import_token", *args, stdout=out)
    return out.getvalue()


def last_word(output: str) -> str:
    return output.strip().splitlines()[-1].split()[-1]


def user(username: str):
    # Fetched afresh: a user object caches its permissions.
    return get_user_model().objects.get(username=username)


def test_prints_the_token_as_the_last_word_of_the_last_line(db):
    token = last_word(run("alice"))
    assert token == Token.objects.get(user__username="alice").key
    assert len(token) == 40


def test_creates_the_user_with_the_run_permission(db):
    run("alice")
    alice = user("alice")
    assert alice.is_active
    assert alice.has_perm("imports.run_import")
    assert alice.has_perm("imports.view_import")
    assert alice.has_perm("imports.view_document")


def test_second_call_reuses_the_token(db):
    first = last_word(run("alice"))
    second = last_word(run("alice"))
    assert first == second
    assert Token.objects.filter(user__username="alice").count() == 1
    assert get_user_model().objects.filter(username="alice").count() == 1


def test_existing_user_gets_the_permission(db):
    get_user_model().objects.create(username="bob")
    run("bob")
    assert user("bob").has_perm("imports.run_import")


def test_read_only_user_lacks_run_import(db):
    run("carol", "--read-only")
    carol = user("carol")
    assert not carol.has_perm("imports.run_import")
    assert carol.has_perm("imports.view_import")
    assert carol.has_perm("imports.view_document")


def test_read_only_takes_the_run_permission_away(db):
    token = last_word(run("dave"))
    assert last_word(run("dave", "--read-only")) == token
    assert not user("dave").has_perm("imports.run_import")
    client = client_with(token)
    assert_error(client.post(url("imports", "create")), 403, "permission_denied")
    assert client.get(url("imports/")).status_code == 200


def test_full_access_can_be_given_back(db):
    run("erin", "--read-only")
    run("erin")
    assert user("erin").has_perm("imports.run_import")


def test_printed_tokens_work_on_the_api(db):
    runner = client_with(last_word(run("frank")))
    reader = client_with(last_word(run("grace", "--read-only")))
    assert runner.post(url("imports", "create")).status_code == 201
    assert_error(reader.post(url("imports", "create")), 403, "permission_denied")
    assert reader.get(url("documents/")).status_code == 200
