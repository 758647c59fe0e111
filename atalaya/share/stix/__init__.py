"""STIX 2.1 mapping of what Atalaya shares, with TLP 2.0 and ISA ACS 3.0 markings; import of STIX bundles.

The public API the TAXII server, the federation sync and exports call:

- :class:`StixBuilder` / :func:`to_bundle` — released rows → STIX objects / a self-contained bundle;
- :func:`product_rows` — the rows of a product kind (for the egress, then the builder);
- :func:`read_bundle` — a STIX 2.1 bundle → :class:`Imported` objects with markings and origin;
- :func:`marking_refs` / :func:`marking_from_refs` — an Atalaya marking ↔ STIX marking references;
- :func:`redact_for` — an object without the properties whose granular marking may not go to a recipient;
- :func:`extension_definitions` — our published extension-definition objects.

See docs/federation.md for the mapping, the markings and examples.
"""

from atalaya.share.stix.extension import SDO_TYPES, extension_definitions, extension_id, stix_id
from atalaya.share.stix.importer import Imported, ImportResult, read_bundle
from atalaya.share.stix.mapping import MAPPED_KINDS, LogRef, StixBuilder, to_bundle
from atalaya.share.stix.markings import (
    ACS_EXTENSION_ID,
    TLP2_EXTENSION_ID,
    TLP_MARKING_IDS,
    ReadMarking,
    granular_markings,
    marking_from_refs,
    marking_refs,
    redact_for,
)
from atalaya.share.stix.rows import product_rows

__all__ = [
    "ACS_EXTENSION_ID",
    "MAPPED_KINDS",
    "SDO_TYPES",
    "TLP2_EXTENSION_ID",
    "TLP_MARKING_IDS",
    "ImportResult",
    "Imported",
    "LogRef",
    "ReadMarking",
    "StixBuilder",
    "extension_definitions",
    "extension_id",
    "granular_markings",
    "marking_from_refs",
    "marking_refs",
    "product_rows",
    "read_bundle",
    "redact_for",
    "stix_id",
    "to_bundle",
]
