"""SchemaSet: the official XSDs of a verified schema directory, compiled once.

lxml is the fast path (every message); xmlschema is the slow path, used only to explain a reject
with precise element paths and to read facets such as xs:maxLength, so limits are never retyped.
"""

from __future__ import annotations

from pathlib import Path

import xmlschema
from lxml import etree

from iso20022.errors import SchemaIntegrityError, SchemaViolation
from iso20022.parsing import parse_untrusted
from iso20022.schemas.manifest import load_manifest, normalise, schema_file, sha256_hex

_XSD_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


class SchemaSet:
    """The manifest's XSDs in schema_dir; each file is hash-checked when first used."""

    def __init__(self, schema_dir: Path) -> None:
        self.schema_dir = Path(schema_dir)
        self._lxml: dict[str, etree.XMLSchema] = {}
        self._xmlschema: dict[str, xmlschema.XMLSchema] = {}

    @property
    def message_ids(self) -> frozenset[str]:
        return frozenset(load_manifest().entries)

    def xml_schema(self, message_id: str) -> etree.XMLSchema:
        """The compiled lxml schema (built once per SchemaSet)."""
        schema = self._lxml.get(message_id)
        if schema is None:
            document = etree.fromstring(self._verified_bytes(message_id), _XSD_PARSER)
            schema = self._lxml[message_id] = etree.XMLSchema(document)
        return schema

    def validate(self, root: etree._Element, message_id: str) -> None:
        """Raise SchemaViolation unless root (a Document element) validates."""
        schema = self.xml_schema(message_id)
        if not schema.validate(root):
            errors = [f"line {e.line}: {e.message}" for e in schema.error_log]
            raise SchemaViolation(message_id, errors)

    def explain(self, xml_bytes: bytes, message_id: str) -> list[str]:
        """Every violation with its element path (slow: use for rejects only)."""
        root = parse_untrusted(xml_bytes)
        return [f"{error.path}: {error.reason}" for error in self._xsd(message_id).iter_errors(root)]

    def text_max_length(self, message_id: str, type_name: str) -> int:
        """xs:maxLength of a named simple type, e.g. Max140Text -> 140."""
        simple_type = self._xsd(message_id).types[type_name]
        length = getattr(simple_type, "max_length", None)
        if length is None:
            raise KeyError(f"{message_id}: type {type_name} has no maxLength facet")
        return int(length)

    def _xsd(self, message_id: str) -> xmlschema.XMLSchema:
        schema = self._xmlschema.get(message_id)
        if schema is None:
            text = self._verified_bytes(message_id).decode("utf-8")
            schema = self._xmlschema[message_id] = xmlschema.XMLSchema(text)
        return schema

    def _verified_bytes(self, message_id: str) -> bytes:
        entry = load_manifest().entries.get(message_id)
        if entry is None:
            raise KeyError(f"{message_id} is not in the schema manifest")
        path = schema_file(self.schema_dir, message_id)
        if not path.exists():
            raise SchemaIntegrityError(path, "missing (run: python -m iso20022.schemas fetch)")
        data = normalise(path.read_bytes())
        actual = sha256_hex(data)
        if actual != entry.sha256:
            raise SchemaIntegrityError(path, f"sha256 {actual} differs from manifest {entry.sha256}")
        return data
