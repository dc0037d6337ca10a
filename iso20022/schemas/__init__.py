"""Official ISO 20022 XSDs: pinned manifest, fetch/verify, and the SchemaSet loader."""

from iso20022.errors import SchemaIntegrityError, SchemaViolation
from iso20022.schemas.fetch import fetch, verify
from iso20022.schemas.loader import SchemaSet
from iso20022.schemas.manifest import (
    default_cache_dir,
    default_schema_dir,
    default_shared_dir,
    load_manifest,
)

__all__ = [
    "SchemaIntegrityError",
    "SchemaSet",
    "SchemaViolation",
    "default_cache_dir",
    "default_schema_dir",
    "default_shared_dir",
    "fetch",
    "load_manifest",
    "verify",
]
