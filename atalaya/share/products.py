"""The vocabulary of product kinds: what agreements' sharing terms name and what the egress checks.

One list, used by the agreement validator, the egress policy and every API
route that releases data to a partner.

>>> "sites" in PRODUCT_KINDS
True
"""

from __future__ import annotations

PRODUCT_KINDS: dict[str, str] = {
    "sites": "suspected sites with their score breakdown and evidence",
    "tracks": "fused tracks of moving objects",
    "sorties": "collection sorties: manifests, flown tracks, overflight figures and compliance verdicts",
    "crossings": "border-crossing points and hot spots",
    "corridors": "smuggling corridors (flows over an H3 grid)",
    "maritime": "maritime events: dark gaps, rendezvous, loitering",
    "reports": "partner reports (overflight and compliance)",
    "entities": "people, organisations, companies, vehicles, phones, accounts",
    "transactions": "money movements and typology findings",
}
"""Product kind → what it covers."""
