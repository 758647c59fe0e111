"""Partner nodes: who this node federates with, at which address, under which pinned log key.

``atalaya partners add MEX https://mex.example --key VKEY --token-file F``
registers a partner node. Its transparency-log verifier key is pinned then
(out of band, as with any trust anchor): every checkpoint later received from
it must verify under that key. The API token this node presents to it is a
credential, so it is kept as a file beside the node's signing key
(``keys/partners/PARTY.token``, mode 0600), never in the knowledge store
(whose backups and replicas travel further).

>>> validate_url("https://mex.example:8443/")
'https://mex.example:8443'
>>> validate_url("ftp://x")
Traceback (most recent call last):
...
atalaya.core.errors.ValidationError: 'ftp://x' is not an http(s) URL
  hint: give the partner node's base URL, e.g. https://atalaya.mex.example
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import select

from atalaya.core.errors import AtalayaError, ValidationError
from atalaya.core.workspace import Workspace
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks
from atalaya.store.translog import NoteVerifier

_PARTY = re.compile(r"^[A-Z0-9]{2,16}$")


@dataclass(frozen=True)
class Partner:
    """A registered partner node."""

    party: str
    url: str
    verifier_key: str
    origin: str
    log_size: int
    checkpoint: str | None
    synced_at: datetime | None
    cursors: dict[str, str]
    """Per partner TAXII collection: ``date_added`` of the newest object received."""
    witness_key: str | None = None
    """Its witness cosignature key, if registered."""

    @property
    def verifier(self) -> NoteVerifier:
        return NoteVerifier.from_vkey(self.verifier_key)


def validate_url(url: str) -> str:
    """A partner's base URL without a trailing slash; refuses anything but http(s)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationError(
            f"{url!r} is not an http(s) URL", hint="give the partner node's base URL, e.g. https://atalaya.mex.example"
        )
    return url.strip().rstrip("/")


def token_path(ws: Workspace, party: str) -> Path:
    """Where the API token this node presents to ``party`` is kept."""
    return ws.root / "keys" / "partners" / f"{party.upper()}.token"


def _write_secret(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text.strip() + "\n")
    os.replace(tmp, path)


def partner_token(ws: Workspace, party: str) -> str:
    """The API token for ``party``'s node; refuses one others can read."""
    path = token_path(ws, party)
    try:
        mode = path.stat().st_mode & 0o077
    except FileNotFoundError:
        raise ValidationError(
            f"no API token for partner {party}", hint=f"atalaya partners add {party} URL --key VKEY --token-file F"
        ) from None
    if mode:
        raise ValidationError(f"{path} can be read by others", hint=f"chmod 600 {path}")
    return path.read_text(encoding="utf-8").strip()


def add_partner(
    ws: Workspace,
    store: KnowledgeStore,
    party: str,
    url: str,
    *,
    verifier_key: str,
    token: str,
    witness_key: str | None = None,
) -> Partner:
    """Register (or update the address and token of) a partner node; its pinned key cannot change."""
    code = party.upper()
    if not _PARTY.match(code) or code == ws.party:
        raise ValidationError(f"invalid partner party {party!r}", hint="a 2–16 letter code other than this node's")
    base = validate_url(url)
    try:
        verifier = NoteVerifier.from_vkey(verifier_key.strip())
    except (ValueError, AtalayaError) as e:
        raise ValidationError(
            f"the verifier key for {code} does not parse: {e}",
            hint="copy it from the partner's `atalaya log checkpoint --json` (verifier_key) or /api/log/checkpoint",
        ) from e
    wkey = None
    if witness_key:
        try:
            wkey = NoteVerifier.from_vkey(witness_key.strip()).vkey()
        except (ValueError, AtalayaError) as e:
            raise ValidationError(
                f"the witness key for {code} does not parse: {e}",
                hint="copy it from the partner's `atalaya log export-key --witness`",
            ) from e
    if not token.strip():
        raise ValidationError("empty API token", hint="ask the partner's admin for a token of a liaison user")
    with store.begin() as conn:
        row = conn.execute(select(ks.partners).where(ks.partners.c.party == code)).first()
        if row is not None and row.verifier_key != verifier.vkey():
            raise ValidationError(
                f"partner {code} is registered with another log key",
                hint="a partner's log key is pinned; remove the partner first if its key really changed",
            )
        if row is None:
            conn.execute(ks.partners.insert().values(party=code, url=base, verifier_key=verifier.vkey(),
                                                     origin=verifier.name, added_at=datetime.now(UTC),
                                                     witness_key=wkey))  # fmt: skip
        else:
            values: dict[str, object] = {"url": base}
            if wkey:
                values["witness_key"] = wkey
            conn.execute(ks.partners.update().where(ks.partners.c.party == code).values(**values))
    _write_secret(token_path(ws, code), token)
    return get_partner(store, code)


def get_partner(store: KnowledgeStore, party: str) -> Partner:
    """A registered partner; refuses an unknown one."""
    code = party.upper()
    with store.begin() as conn:
        r = conn.execute(select(ks.partners).where(ks.partners.c.party == code)).first()
    if r is None:
        raise ValidationError(f"partner {code} is not registered", hint="atalaya partners add PARTY URL --key VKEY …")
    return Partner(party=r.party, url=r.url, verifier_key=r.verifier_key, origin=r.origin, log_size=int(r.log_size),
                   checkpoint=r.checkpoint, synced_at=r.synced_at, cursors=dict(r.cursors or {}),
                   witness_key=r.witness_key)  # fmt: skip


def list_partners(store: KnowledgeStore) -> list[Partner]:
    """Every registered partner, by party."""
    with store.begin() as conn:
        rows = conn.execute(select(ks.partners.c.party).order_by(ks.partners.c.party)).all()
    return [get_partner(store, r.party) for r in rows]


def remove_partner(ws: Workspace, store: KnowledgeStore, party: str) -> bool:
    """Forget a partner and its token; whether it was registered."""
    code = party.upper()
    with store.begin() as conn:
        n = conn.execute(ks.partners.delete().where(ks.partners.c.party == code)).rowcount
    token_path(ws, code).unlink(missing_ok=True)
    return bool(n)
