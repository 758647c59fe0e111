"""The two-way private set intersection both nodes run: each learns the overlap (or its size), nothing else.

Built on OpenMined's PSI (ECDH over P-256 with a Golomb-compressed set of the
server's doubly-encrypted items). One PSI run tells only its *client* the
result, so a comparison runs it both ways, each node the client of its own list:

1. the initiator sends its **request** (its items, encrypted under its key);
2. the responder answers the request with its **setup** (its own items under its
   key, compressed) and **response** (the initiator's items re-encrypted under
   its key), and sends its own request;
3. the initiator computes its result, and answers the responder's request the
   same way; the responder computes its result.

What crosses the wire is points on an elliptic curve and a filter of hashes:
neither side can read the other's items, only test its own against them. Each
side learns the other's list size (the request has one point per item). When
the agreement reveals only the size, each side answers with the server's
``reveal_intersection`` off: the response is shuffled, so the client can count
the overlap but not tell which of its items are in it.

The model is semi-honest, as for every PSI library: a party can lie about its
list (bounded by the agreement's ``max_items`` and ``max_per_day``, and every
comparison is logged on both sides with the digest of each message).

>>> a = Party(["phone:+1", "phone:+2", "phone:+3"], reveal=True)
>>> b = Party(["phone:+2", "phone:+3", "phone:+4", "phone:+5"], reveal=True)
>>> setup_b, response_b = b.answer(a.request())
>>> sorted(a.result(setup_b, response_b))
[1, 2]
>>> setup_a, response_a = a.answer(b.request())
>>> sorted(b.result(setup_a, response_a))
[0, 1]
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import private_set_intersection.python as psi
from google.protobuf.message import DecodeError

from atalaya.core.errors import ValidationError

FALSE_POSITIVE_RATE = 1e-9
"""Chance that one of a client's items is wrongly reported in the overlap (per comparison)."""


def message_digest(data: bytes) -> str:
    """SHA-256 of a protocol message, as both sides log it."""
    return hashlib.sha256(data).hexdigest()


def request_size(data: bytes) -> int:
    """How many items a peer's request carries (what the responder learns of the initiator's list)."""
    return len(_parse(psi.Request, data, "request").encrypted_elements)  # type: ignore[attr-defined]


def _parse(cls: type, data: bytes, what: str) -> object:
    msg = cls()
    try:
        msg.ParseFromString(data)
    except (DecodeError, ValueError) as e:
        raise ValidationError(f"the peer's {what} is not a PSI message: {e}") from e
    return msg


class Party:
    """One side of a comparison: the client of its own items, the server for the peer's.

    ``reveal`` is what the agreement allows: ``True`` to learn the common items,
    ``False`` to learn only how many there are. Each side enforces it for what
    it answers, so a peer cannot obtain more than the agreement grants.
    """

    def __init__(self, items: Sequence[str], *, reveal: bool, key: bytes | None = None) -> None:
        self.items = list(items)
        self.reveal = reveal
        if key is None:
            self._client = psi.client.CreateWithNewKey(reveal)
            self._server = psi.server.CreateWithNewKey(reveal)
        else:
            self._client = psi.client.CreateFromKey(key[:32], reveal)
            self._server = psi.server.CreateFromKey(key[32:], reveal)

    @property
    def key(self) -> bytes:
        """Both private keys (to resume the party in another request; keep it secret, drop it after)."""
        return bytes(self._client.GetPrivateKeyBytes()) + bytes(self._server.GetPrivateKeyBytes())

    def request(self) -> bytes:
        """This side's items, encrypted under its client key."""
        return bytes(self._client.CreateRequest(self.items).SerializeToString())

    def answer(self, peer_request: bytes) -> tuple[bytes, bytes]:
        """``(setup, response)`` for the peer's request: this side's items, and the peer's re-encrypted."""
        req = _parse(psi.Request, peer_request, "request")
        if bool(getattr(req, "reveal_intersection", False)) and not self.reveal:
            raise ValidationError(
                "the peer asks to learn the common items, but the agreement reveals only their number",
                hint="start the comparison with reveal=size",
            )
        n_peer = len(req.encrypted_elements)  # type: ignore[attr-defined]
        setup = self._server.CreateSetupMessage(FALSE_POSITIVE_RATE, max(n_peer, 1), self.items)
        response = self._server.ProcessRequest(req)
        return bytes(setup.SerializeToString()), bytes(response.SerializeToString())

    def result(self, setup: bytes, response: bytes) -> list[int] | int:
        """Positions of this side's items the peer also holds, or only their number when not revealing."""
        s = _parse(psi.ServerSetup, setup, "setup")
        r = _parse(psi.Response, response, "response")
        try:
            if self.reveal:
                return sorted(int(i) for i in self._client.GetIntersection(s, r))
            return int(self._client.GetIntersectionSize(s, r))
        except RuntimeError as e:
            raise ValidationError(f"the peer's answer does not fit this comparison: {e}") from e
