"""The Schema Registry, through the Confluent REST API only.

Apicurio serves the same API under `/apis/ccompat/v7`, so one client works against the native
stack and against Confluent's registry in compose.
"""

import json
from dataclasses import dataclass
from typing import Any

import httpx

from finplat.contract.avro import AvroSchema
from finplat.contract.errors import ContractError

_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
# Confluent's error code for "subject not found" (HTTP 404).
_SUBJECT_NOT_FOUND = 40401


class RegistryError(ContractError):
    """The registry refused a request or could not be reached."""

    def __init__(
        self, message: str, *, retriable: bool = False, error_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.retriable = retriable
        self.error_code = error_code


@dataclass(frozen=True)
class Compatibility:
    """The registry's verdict on a candidate schema, with its reasons when it refuses."""

    compatible: bool
    messages: tuple[str, ...]
    against_version: int | None


@dataclass(frozen=True)
class Registered:
    """A schema as the registry holds it."""

    schema_id: int
    version: int


class SchemaRegistry:
    """A client of one registry; `base_url` ends with the API root (`.../apis/ccompat/v7`)."""

    def __init__(self, base_url: str, timeout_s: float = 10.0) -> None:
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=timeout_s,
            headers={"Accept": _CONTENT_TYPE, "Content-Type": _CONTENT_TYPE},
        )

    def close(self) -> None:
        """Release the connection pool."""
        self._client.close()

    def __enter__(self) -> "SchemaRegistry":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = self._client.request(method, path, json=body)
        except httpx.TransportError as exc:
            raise RegistryError(
                f"schema registry at {self._client.base_url} unreachable: {exc}", retriable=True
            ) from exc
        payload = response.json() if response.content else None
        if response.is_error:
            detail = payload.get("message", response.text) if isinstance(payload, dict) else ""
            code = payload.get("error_code") if isinstance(payload, dict) else None
            raise RegistryError(
                f"{method} {path}: HTTP {response.status_code}: {detail or response.text}",
                retriable=response.status_code >= 500,
                error_code=code,
            )
        return payload

    @staticmethod
    def _body(schema: AvroSchema) -> dict[str, Any]:
        return {"schema": json.dumps(schema), "schemaType": "AVRO"}

    def register(self, subject: str, schema: AvroSchema) -> Registered:
        """Register `schema` under `subject`; the registry's compatibility rule applies."""
        created = self._request("POST", f"/subjects/{subject}/versions", self._body(schema))
        found = self._request("POST", f"/subjects/{subject}", self._body(schema))
        return Registered(schema_id=int(created["id"]), version=int(found["version"]))

    def latest(self, subject: str) -> Registered | None:
        """The latest version under `subject`, or None when nothing is registered yet."""
        try:
            found = self._request("GET", f"/subjects/{subject}/versions/latest")
        except RegistryError as exc:
            if exc.error_code == _SUBJECT_NOT_FOUND:
                return None
            raise
        return Registered(schema_id=int(found["id"]), version=int(found["version"]))

    def check(self, subject: str, schema: AvroSchema) -> Compatibility:
        """Ask whether `schema` may follow the latest version of `subject`."""
        latest = self.latest(subject)
        if latest is None:
            return Compatibility(compatible=True, messages=(), against_version=None)
        verdict = self._request(
            "POST",
            f"/compatibility/subjects/{subject}/versions/{latest.version}?verbose=true",
            self._body(schema),
        )
        messages = verdict.get("messages") or []
        return Compatibility(
            compatible=bool(verdict["is_compatible"]),
            messages=tuple(str(message) for message in messages),
            against_version=latest.version,
        )
