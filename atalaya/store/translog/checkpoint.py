"""C2SP signed notes, tlog-checkpoints and tlog-cosignatures (Ed25519).

A checkpoint (c2sp.org/tlog-checkpoint) is the body of a signed note
(c2sp.org/signed-note)::

    atalaya.usa/log                                  origin
    1024                                             tree size, decimal
    3Y2g...base64 root hash...=                      root hash
    <optional extension lines>
                                                     blank line
    — atalaya.usa/log AbCdEf...base64(key ID || signature)...

Key ID (Ed25519 note signature, type 0x01)::

    SHA-256(<key name> || 0x0A || 0x01 || 32-byte public key)[:4]

Verifier keys use the vkey text form ``<name>+<hex key ID>+<base64(type || public key)>``.

A witness adds a c2sp.org/tlog-cosignature v1 line (type 0x04): the signature
bytes are ``key ID || u64 big-endian timestamp || Ed25519 signature`` over
``"cosignature/v1\\ntime <timestamp>\\n" || checkpoint body``.

>>> from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
>>> signer = NoteSigner(name="example.org/log", key=Ed25519PrivateKey.generate())
>>> cp = Checkpoint(origin="example.org/log", size=3, root=bytes(32))
>>> note = sign_note(cp.body(), signer)
>>> open_checkpoint(note.text(), signer.verifier()) == cp
True
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
import time
from dataclasses import dataclass, field
from typing import Final, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from atalaya.core.errors import LogIntegrityError
from atalaya.store.translog.merkle import HASH_SIZE

EM_DASH = "\u2014"
"""U+2014, the first character of every signature line."""
SigType = Literal[1, 4]
"""Supported signature types."""
SIG_ED25519: Final[Literal[1]] = 1
"""Signature type 0x01: plain Ed25519 note signatures."""
SIG_COSIGNATURE_V1: Final[Literal[4]] = 4
"""Signature type 0x04: Ed25519 tlog-cosignature/v1 signatures."""
COSIGNATURE_HEADER = "cosignature/v1"


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def _unb64(s: str, what: str) -> bytes:
    try:
        return base64.b64decode(s.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as e:
        raise LogIntegrityError(f"{what} is not valid base64: {s[:40]!r}") from e


def _check_name(name: str) -> None:
    if not name or any(c.isspace() for c in name) or "+" in name:
        raise LogIntegrityError(
            f"invalid note key name {name!r}",
            hint="key names are non-empty and contain no spaces, newlines or '+'",
        )


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of an Ed25519 public key."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(name: str, sig_type: int, public_key: bytes) -> bytes:
    """``SHA-256(name || "\\n" || type || public key)[:4]``."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([sig_type]) + public_key).digest()[:4]


# --------------------------------------------------------------------------- checkpoints
@dataclass(frozen=True, kw_only=True)
class Checkpoint:
    """A C2SP tlog-checkpoint: what the log commits to."""

    origin: str
    """The log's origin line (unique name of the log)."""
    size: int
    """Tree size: the number of entries."""
    root: bytes
    """RFC 9162 root hash of the first ``size`` entries (32 bytes)."""
    extensions: tuple[str, ...] = ()
    """Optional extension lines after the root hash."""

    def body(self) -> str:
        """The note body: origin, size and base64 root hash lines, then extensions, each newline-terminated."""
        lines = [self.origin, str(self.size), _b64(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        """Parse a checkpoint body (as produced by :meth:`body`)."""
        if not body.endswith("\n"):
            raise LogIntegrityError("checkpoint body does not end with a newline")
        lines = body[:-1].split("\n")
        if len(lines) < 3:
            raise LogIntegrityError(f"checkpoint body has {len(lines)} lines, needs origin, size and root hash")
        origin, size_s, root_s, *ext = lines
        if not origin:
            raise LogIntegrityError("checkpoint origin line is empty")
        if not size_s.isdigit() or (len(size_s) > 1 and size_s[0] == "0"):
            raise LogIntegrityError(f"checkpoint size {size_s!r} is not a decimal number without leading zeros")
        root = _unb64(root_s, "checkpoint root hash")
        if len(root) != HASH_SIZE:
            raise LogIntegrityError(f"checkpoint root hash is {len(root)} bytes, expected {HASH_SIZE}")
        if any(not e for e in ext):
            raise LogIntegrityError("checkpoint has an empty extension line")
        return cls(origin=origin, size=int(size_s), root=root, extensions=tuple(ext))


# --------------------------------------------------------------------------- keys
@dataclass(frozen=True, kw_only=True)
class NoteVerifier:
    """A public key that checks note signatures (or cosignatures) by one named key."""

    name: str
    """Key name, as it appears on signature lines."""
    public_key: bytes
    """Raw 32-byte Ed25519 public key."""
    sig_type: SigType = SIG_ED25519
    """``0x01`` plain note signature, ``0x04`` tlog-cosignature/v1."""

    @property
    def key_id(self) -> bytes:
        """The 4-byte key ID."""
        return key_id(self.name, self.sig_type, self.public_key)

    def vkey(self) -> str:
        """The vkey text ``name+hexid+base64(type || key)``."""
        return f"{self.name}+{self.key_id.hex()}+{_b64(bytes([self.sig_type]) + self.public_key)}"

    @classmethod
    def from_vkey(cls, text: str) -> NoteVerifier:
        """Parse vkey text; the key ID in it must match the name and key."""
        text = text.strip()
        parts = text.split("+")
        # base64 may itself contain '+': name and key id are the first two fields.
        if len(parts) < 3:
            raise LogIntegrityError(
                f"not a verifier key: {text[:60]!r}",
                hint="expected <name>+<hex key id>+<base64 key>, e.g. from `atalaya log export-key`",
            )
        name, hex_id, rest = parts[0], parts[1], "+".join(parts[2:])
        _check_name(name)
        raw = _unb64(rest, f"verifier key {name}")
        if len(raw) != 33 or raw[0] not in (SIG_ED25519, SIG_COSIGNATURE_V1):
            raise LogIntegrityError(
                f"verifier key {name} is not an Ed25519 key (type {raw[:1].hex() or 'none'}, {len(raw)} bytes)",
                hint="only Ed25519 (type 01) and Ed25519 cosignature (type 04) keys are supported",
            )
        sig_type: SigType = SIG_ED25519 if raw[0] == SIG_ED25519 else SIG_COSIGNATURE_V1
        v = cls(name=name, public_key=raw[1:], sig_type=sig_type)
        if v.key_id.hex() != hex_id.lower():
            raise LogIntegrityError(
                f"verifier key {name}: key ID {hex_id} does not match the key (expected {v.key_id.hex()})",
                hint="the vkey text was altered or mistyped",
            )
        return v

    def check(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is a valid Ed25519 signature of ``message``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True, kw_only=True)
class NoteSigner:
    """A named Ed25519 private key that signs notes."""

    name: str
    """Key name written on signature lines (e.g. the log origin, or a witness URL)."""
    key: Ed25519PrivateKey
    """The private key."""

    def __post_init__(self) -> None:
        _check_name(self.name)

    def verifier(self, sig_type: SigType = SIG_ED25519) -> NoteVerifier:
        """The matching verifier (``sig_type=0x04`` for this key's cosignatures)."""
        return NoteVerifier(name=self.name, public_key=raw_public_key(self.key.public_key()), sig_type=sig_type)


# --------------------------------------------------------------------------- notes
@dataclass(frozen=True, kw_only=True)
class NoteSignature:
    """One signature line of a note."""

    name: str
    """Key name."""
    key_id: bytes
    """4-byte key ID."""
    signature: bytes
    """Signature bytes after the key ID (for cosignatures: timestamp then signature)."""

    def line(self) -> str:
        """The signature line, without its newline."""
        return f"{EM_DASH} {self.name} {_b64(self.key_id + self.signature)}"


@dataclass(frozen=True, kw_only=True)
class SignedNote:
    """A C2SP signed note: text body plus signature lines."""

    body: str
    """Note text, newline-terminated (for checkpoints: :meth:`Checkpoint.body`)."""
    signatures: tuple[NoteSignature, ...] = field(default_factory=tuple)
    """Signature lines in order."""

    def text(self) -> str:
        """The note as text: body, blank line, one line per signature."""
        return self.body + "\n" + "".join(s.line() + "\n" for s in self.signatures)

    def with_signature(self, sig: NoteSignature) -> SignedNote:
        """A copy with ``sig`` appended (replacing an earlier signature by the same key)."""
        kept = tuple(s for s in self.signatures if (s.name, s.key_id) != (sig.name, sig.key_id))
        return SignedNote(body=self.body, signatures=(*kept, sig))

    @classmethod
    def parse(cls, text: str) -> SignedNote:
        """Parse a signed note (raises :class:`LogIntegrityError` on any malformation)."""
        sep = text.rfind("\n\n")
        if sep < 0:
            raise LogIntegrityError("signed note has no blank line between text and signatures")
        body, sig_text = text[: sep + 1], text[sep + 2 :]
        if not sig_text.endswith("\n"):
            raise LogIntegrityError("signed note does not end with a newline")
        sigs: list[NoteSignature] = []
        for line in sig_text[:-1].split("\n"):
            prefix = EM_DASH + " "
            if not line.startswith(prefix):
                raise LogIntegrityError(f"note signature line does not start with an em dash: {line[:50]!r}")
            fields = line[len(prefix) :].split(" ")
            if len(fields) != 2:
                raise LogIntegrityError(f"malformed note signature line: {line[:60]!r}")
            name, b64 = fields
            _check_name(name)
            raw = _unb64(b64, f"signature by {name}")
            if len(raw) < 5:
                raise LogIntegrityError(f"signature by {name} is too short ({len(raw)} bytes)")
            sigs.append(NoteSignature(name=name, key_id=raw[:4], signature=raw[4:]))
        if not sigs:
            raise LogIntegrityError("signed note has no signatures")
        return cls(body=body, signatures=tuple(sigs))


def sign_note(body: str, signer: NoteSigner) -> SignedNote:
    """Sign ``body`` (newline-terminated) with a plain Ed25519 note signature."""
    if not body.endswith("\n"):
        raise LogIntegrityError("note text must end with a newline")
    v = signer.verifier(SIG_ED25519)
    sig = signer.key.sign(body.encode("utf-8"))
    return SignedNote(body=body, signatures=(NoteSignature(name=signer.name, key_id=v.key_id, signature=sig),))


def _find(note: SignedNote, verifier: NoteVerifier) -> NoteSignature:
    for s in note.signatures:
        if s.name == verifier.name and s.key_id == verifier.key_id:
            return s
    names = ", ".join(f"{s.name} ({s.key_id.hex()})" for s in note.signatures)
    raise LogIntegrityError(
        f"note has no signature by key {verifier.name} ({verifier.key_id.hex()}); it is signed by: {names}",
        hint="check that you were given this log's verifier key (`atalaya log export-key`)",
    )


def verify_note(note: SignedNote, verifier: NoteVerifier) -> None:
    """Require a valid plain Ed25519 signature by ``verifier`` on ``note``."""
    s = _find(note, verifier)
    if not verifier.check(note.body.encode("utf-8"), s.signature):
        raise LogIntegrityError(
            f"bad signature by {verifier.name} ({verifier.key_id.hex()}) on the note",
            hint="the checkpoint text or its signature was altered",
        )


def cosignature_message(body: str, timestamp: int) -> bytes:
    """The bytes a tlog-cosignature/v1 signs."""
    return f"{COSIGNATURE_HEADER}\ntime {timestamp}\n{body}".encode()


def cosign(note: SignedNote, signer: NoteSigner, *, timestamp: int | None = None) -> SignedNote:
    """Add a tlog-cosignature/v1 line by ``signer`` to ``note``."""
    ts = int(time.time()) if timestamp is None else timestamp
    if not 0 <= ts < 1 << 63:
        raise LogIntegrityError(f"cosignature timestamp {ts} is out of range")
    v = signer.verifier(SIG_COSIGNATURE_V1)
    sig = signer.key.sign(cosignature_message(note.body, ts))
    return note.with_signature(NoteSignature(name=signer.name, key_id=v.key_id, signature=struct.pack(">Q", ts) + sig))


def verify_cosignature(note: SignedNote, verifier: NoteVerifier) -> int:
    """Check a tlog-cosignature/v1 by ``verifier`` (type 0x04); returns its timestamp."""
    if verifier.sig_type != SIG_COSIGNATURE_V1:
        raise LogIntegrityError(f"verifier key {verifier.name} is not a cosignature key (type 04)")
    s = _find(note, verifier)
    if len(s.signature) != 8 + 64:
        raise LogIntegrityError(f"cosignature by {verifier.name} has {len(s.signature)} bytes, expected 72")
    ts = struct.unpack(">Q", s.signature[:8])[0]
    if not verifier.check(cosignature_message(note.body, ts), s.signature[8:]):
        raise LogIntegrityError(
            f"bad cosignature by witness {verifier.name} ({verifier.key_id.hex()})",
            hint="the checkpoint or the cosignature line was altered",
        )
    return int(ts)


def open_checkpoint(text: str, log_key: NoteVerifier, *, witnesses: tuple[NoteVerifier, ...] = ()) -> Checkpoint:
    """Parse a signed checkpoint, verify the log's signature (and each given witness's cosignature)."""
    note = SignedNote.parse(text)
    verify_note(note, log_key)
    cp = Checkpoint.parse(note.body)
    for w in witnesses:
        verify_cosignature(note, w)
    return cp
