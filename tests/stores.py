"""Stores of a test's own on the real stack: an InfluxDB bucket, Redis keys and a PostgreSQL
database, created for one test or run and removed afterwards, so the user's data never sees
test data (Kafka topics are made and deleted with `finplat.kafka.admin`)."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import psycopg
import redis
from psycopg import sql
from sqlalchemy import URL

from finplat.core.connections import InfluxSettings
from finplat.stack.settings import StackSettings


@contextmanager
def influx_bucket(settings: InfluxSettings, name: str) -> Iterator[InfluxSettings]:
    """`settings` pointed at a new bucket `name`, deleted on the way out."""
    headers = {"Authorization": f"Token {settings.token.get_secret_value()}"}
    with httpx.Client(base_url=settings.url, headers=headers, timeout=10) as client:
        orgs = client.get("/api/v2/orgs", params={"org": settings.org})
        orgs.raise_for_status()
        created = client.post(
            "/api/v2/buckets",
            json={"name": name, "orgID": orgs.json()["orgs"][0]["id"], "retentionRules": []},
        )
        created.raise_for_status()
        try:
            yield settings.model_copy(update={"bucket": name})
        finally:
            client.delete(f"/api/v2/buckets/{created.json()['id']}").raise_for_status()


def delete_keys(url: str, prefix: str) -> int:
    """Delete every Redis key starting with `prefix`; how many there were."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        return int(client.delete(*keys)) if keys else 0
    finally:
        client.close()


@contextmanager
def postgres_database(settings: StackSettings) -> Iterator[str]:
    """The URL of a new, empty database on the stack's PostgreSQL (as
    `FINPLAT_BACKTEST_DATABASE_URL` would hold it), dropped on the way out with whatever
    connections are still open to it."""
    name = f"test_{uuid.uuid4().hex}"
    url = URL.create(
        "postgresql",
        username=settings.postgres_username,
        password=settings.postgres_password.get_secret_value(),
        host=settings.host,
        port=settings.postgres_port,
        database=name,
    )
    # CREATE and DROP DATABASE refuse to run in a transaction: autocommit.
    with psycopg.connect(
        host=settings.host,
        port=settings.postgres_port,
        user=settings.postgres_username,
        password=settings.postgres_password.get_secret_value(),
        dbname=settings.postgres_database,
        autocommit=True,
        connect_timeout=10,
    ) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield url.render_as_string(hide_password=False)
        finally:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
