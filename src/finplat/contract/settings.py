"""Settings of the schema commands (`finplat schemas ...`)."""

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class SchemaSettings(BaseSettings):
    """Where the schemas live and which registry guards them."""

    model_config = SettingsConfigDict(env_prefix="FINPLAT_SCHEMAS_", frozen=True, extra="forbid")

    registry_url: str = "http://127.0.0.1:8081/apis/ccompat/v7"
    """Confluent-compatible API root of the Schema Registry."""
    subject: str = "price-updates-value"
    """Subject of the PriceUpdate value schema (topic name strategy)."""
    schema_dir: Path = Path("schemas")
    """Directory of the generated .avsc files."""
    timeout_s: float = 10.0
    """Timeout of each registry request."""
