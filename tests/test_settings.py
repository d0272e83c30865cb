"""Settings chosen by environment variables alone: the embedded defaults, and the production
stack (PostgreSQL, Redis, S3). Each case loads imports.settings in a fresh process with exactly
the variables given, so what the test run itself is configured with plays no part.

The tests marked needs_* check the live services of a stack run, and are skipped otherwise."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]

RESOLVE = """
import json
import re
import django
from django.conf import settings
django.setup()
from django.core.files.storage import default_storage
from imports.celery import app

default_storage._setup()
storage = default_storage._wrapped
print(json.dumps({
    "DATABASE": settings.DATABASES["default"],
    "STORAGE": settings.STORAGES["default"],
    "storage_class": type(storage).__name__,
    "storage": {
        name: getattr(storage, name, None)
        for name in (
            "location", "bucket_name", "endpoint_url", "region_name", "addressing_style",
            "file_overwrite", "default_acl", "querystring_auth", "access_key", "secret_key",
        )
    },
    "AWS": {name: getattr(settings, name) for name in dir(settings) if name.startswith("AWS_")},
    "broker_url": app.conf.broker_url,
    "broker_transport": app.conf.broker_transport,
    "broker_transport_options": app.conf.broker_transport_options,
    "worker_enable_remote_control": app.conf.worker_enable_remote_control,
    "task_default_queue": app.conf.task_default_queue,
    "task_acks_late": app.conf.task_acks_late,
}, default=str))
"""


def resolved(tmp_path: Path, **variables: str) -> dict:
    """The settings imports.settings resolves with exactly these environment variables."""
    env = {
        "PATH": os.environ["PATH"],
        "DATA_DIR": str(tmp_path / "data"),
        "DJANGO_SETTINGS_MODULE": "imports.settings",
        **variables,
    }
    done = subprocess.run(
        [sys.executable, "-c", RESOLVE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


STACK = {
    "DATABASE_URL": "postgres://importer:s3cret@db.internal:5433/archive",
    "CELERY_BROKER_URL": "redis://redis.internal:6379/2",
    "STORAGE_BUCKET": "archive-documents",
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "secret-example",
    "AWS_S3_REGION_NAME": "eu-central-1",
}


def test_no_variable_gives_the_embedded_defaults_under_data_dir(tmp_path):
    # when no variable is set
    found = resolved(tmp_path)
    # then SQLite, the filesystem broker and local storage, all under DATA_DIR
    data = tmp_path / "data"
    assert found["DATABASE"]["ENGINE"] == "django.db.backends.sqlite3"
    assert found["DATABASE"]["NAME"] == str(data / "db.sqlite3")
    assert found["broker_url"] == "filesystem://"
    # (kombu's transport, each message written whole before a worker sees it: test_broker.py)
    assert found["broker_transport"] == "imports.celery:FilesystemTransport"
    assert found["broker_transport_options"]["data_folder_in"] == str(data / "broker" / "queue")
    # and workers answer a ping (the commands ask whether one runs) through the broker's folders
    assert found["worker_enable_remote_control"] is True
    assert found["broker_transport_options"]["control_folder"] == str(data / "broker" / "control")
    assert found["storage_class"] == "FileSystemStorage"
    assert found["storage"]["location"] == str(data / "media")
    assert found["task_default_queue"] == "celery"
    assert found["AWS"]["AWS_S3_ENDPOINT_URL"] is None
    assert found["AWS"]["AWS_ACCESS_KEY_ID"] is None


def test_database_url_selects_postgresql_through_psycopg_3(tmp_path):
    # when DATABASE_URL names a PostgreSQL server
    found = resolved(tmp_path, DATABASE_URL=STACK["DATABASE_URL"])
    # then Django's PostgreSQL backend connects there, one connection per request by default,
    # checked before reuse when kept
    assert {
        key: found["DATABASE"][key]
        for key in ("ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT", "CONN_MAX_AGE")
    } == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "archive",
        "USER": "importer",
        "PASSWORD": "s3cret",
        "HOST": "db.internal",
        "PORT": 5433,
        "CONN_MAX_AGE": 0,
    }
    assert found["DATABASE"]["CONN_HEALTH_CHECKS"] is True
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    assert is_psycopg3, "Django's PostgreSQL backend would use psycopg2"


def test_database_connections_can_be_kept(tmp_path):
    found = resolved(tmp_path, DATABASE_URL=STACK["DATABASE_URL"], DATABASE_CONN_MAX_AGE="60")
    assert found["DATABASE"]["CONN_MAX_AGE"] == 60


def test_redis_broker_redelivers_after_the_visibility_timeout_and_keeps_remote_control(tmp_path):
    # when the broker is Redis
    found = resolved(tmp_path, CELERY_BROKER_URL=STACK["CELERY_BROKER_URL"])
    # then a dead worker's task comes back after an hour, and `celery inspect` works
    assert found["broker_url"] == "redis://redis.internal:6379/2"
    assert found["broker_transport"] is None
    assert found["broker_transport_options"] == {"visibility_timeout": 3600}
    assert found["worker_enable_remote_control"] is True
    assert found["task_acks_late"] is True


def test_visibility_timeout_and_queue_name_come_from_the_environment(tmp_path):
    found = resolved(
        tmp_path,
        CELERY_BROKER_URL=STACK["CELERY_BROKER_URL"],
        CELERY_BROKER_VISIBILITY_TIMEOUT="7200",
        CELERY_TASK_DEFAULT_QUEUE="archive-imports",
    )
    assert found["broker_transport_options"] == {"visibility_timeout": 7200}
    assert found["task_default_queue"] == "archive-imports"


def test_storage_bucket_stores_in_s3_on_aws(tmp_path):
    # when a bucket is named, with AWS credentials and region
    found = resolved(tmp_path, **STACK)
    # then documents go to S3 through django-storages, private, overwriting their own copies
    assert found["STORAGE"]["BACKEND"] == "storages.backends.s3.S3Storage"
    assert found["storage_class"] == "S3Storage"
    assert found["storage"] == {
        "location": "",
        "bucket_name": "archive-documents",
        "endpoint_url": None,
        "region_name": "eu-central-1",
        "addressing_style": None,
        "file_overwrite": True,
        "default_acl": None,
        "querystring_auth": True,
        "access_key": "AKIAEXAMPLE",
        "secret_key": "secret-example",
    }


def test_an_endpoint_url_is_addressed_by_path_and_read_by_sources_too(tmp_path):
    # when the bucket is on another S3 service (MinIO, Ceph, moto), under a prefix
    found = resolved(
        tmp_path,
        **STACK,
        AWS_S3_ENDPOINT_URL="http://minio.internal:9000",
        STORAGE_PREFIX="/bulk-import/",
    )
    # then the storage reaches it by path, and the same values are settings others can read
    assert found["storage"]["endpoint_url"] == "http://minio.internal:9000"
    assert found["storage"]["addressing_style"] == "path"
    assert found["storage"]["location"] == "bulk-import"
    assert {
        name: found["AWS"][name]
        for name in (
            "AWS_S3_ENDPOINT_URL",
            "AWS_S3_ADDRESSING_STYLE",
            "AWS_S3_REGION_NAME",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        )
    } == {
        "AWS_S3_ENDPOINT_URL": "http://minio.internal:9000",
        "AWS_S3_ADDRESSING_STYLE": "path",
        "AWS_S3_REGION_NAME": "eu-central-1",
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "secret-example",
    }


def test_the_addressing_style_can_be_chosen(tmp_path):
    found = resolved(
        tmp_path,
        **STACK,
        AWS_S3_ENDPOINT_URL="https://s3.example.net",
        AWS_S3_ADDRESSING_STYLE="virtual",
    )
    assert found["storage"]["addressing_style"] == "virtual"


def test_empty_variables_count_as_unset(tmp_path):
    # given variables left blank, as an env file or a compose file often has them
    blank = {name: "" for name in ("STORAGE_BUCKET", "AWS_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID")}
    found = resolved(tmp_path, **blank)
    assert found["storage_class"] == "FileSystemStorage"
    assert found["AWS"]["AWS_S3_ENDPOINT_URL"] is None
    assert found["AWS"]["AWS_ACCESS_KEY_ID"] is None


# The live stack, when this run is on it.


@pytest.mark.needs_postgres
def test_the_database_is_postgresql_through_psycopg_3(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        (version,) = cursor.fetchone()
    assert version.startswith("PostgreSQL")
    assert type(connection.connection).__module__.startswith("psycopg")


@pytest.mark.needs_redis
def test_the_redis_broker_applies_the_visibility_timeout():
    from imports.celery import app

    with app.connection_for_write() as broker:
        broker.ensure_connection(max_retries=3)
        channel = broker.default_channel
        assert channel.client.ping()
        assert (
            channel.visibility_timeout
            == settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
        )


@pytest.mark.needs_s3
def test_the_configured_bucket_stores_and_reads_back(storage):
    # given the run's S3 storage, under this test's own prefix
    name = default_storage.save("probe/hello.txt", ContentFile(b"hello"))
    # then the object is in the bucket under the prefix, and reads back
    bucket = default_storage.bucket
    body = bucket.Object(f"{storage}/{name}").get()["Body"].read()
    assert body == b"hello"
    with default_storage.open(name) as stored:
        assert stored.read() == b"hello"


def test_every_variable_the_operations_guide_lists_is_read_by_the_settings():
    # given the variables table of docs/operations.md
    guide = (ROOT / "docs" / "operations.md").read_text()
    table = guide.split("### Environment variables", 1)[1].split("\n### ", 1)[0]
    listed = {
        name
        for line in table.splitlines()
        if line.startswith("| `")
        for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1])
    }
    # then each one is an environment variable imports/settings.py reads
    read = set(
        re.findall(
            r'env\.\w+\(\s*"([A-Z][A-Z0-9_]+)"', (ROOT / "imports" / "settings.py").read_text()
        )
    )
    assert len(listed) >= 15
    assert listed - read == set()
