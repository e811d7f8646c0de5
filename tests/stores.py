"""Stores of a test's own on the real stack: an InfluxDB bucket and Redis keys, created for
one test or run and removed afterwards, so the user's data never sees test data (Kafka topics
are made and deleted with `finplat.kafka.admin`)."""

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import redis

from finplat.core.connections import InfluxSettings


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
