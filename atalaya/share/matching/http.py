"""The comparison over HTTP: the initiator's side of ``/api/federation/match`` on the partner's node."""

from __future__ import annotations

import base64
from typing import Any

from atalaya.share.federation.client import PartnerClient
from atalaya.share.matching.service import Transport


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: Any, what: str) -> bytes:
    from atalaya.core.errors import ValidationError

    try:
        return base64.b64decode(str(text), validate=True)
    except (ValueError, TypeError) as e:
        raise ValidationError(f"{what} is not base64: {e}") from e


class HttpTransport(Transport):
    """Reaches the responder's ``/api/federation/match`` with this node's token for it."""

    def __init__(self, client: PartnerClient) -> None:
        self.client = client

    def answer(self, *, kind: str, reveal: str, request: bytes) -> dict[str, Any]:
        r = self.client.post_json(
            "/api/federation/match", {"selector": kind, "reveal": reveal, "request": b64(request)}
        )
        return {
            "match_id": str(r["match_id"]),
            "setup": unb64(r["setup"], "setup"),
            "response": unb64(r["response"], "response"),
            "request": unb64(r["request"], "request"),
        }

    def complete(self, *, match_id: str, setup: bytes, response: bytes) -> dict[str, Any]:
        return self.client.post_json(
            f"/api/federation/match/{match_id}/complete", {"setup": b64(setup), "response": b64(response)}
        )
