"""The workspace: one node's directory with its config, identity, keys and stores.

Layout::

    WORKSPACE/
      atalaya.toml          config: party identity, database URL, defaults
      keys/signing.key      Ed25519 private key (PEM, mode 0600)
      keys/signing.pub      its public key (PEM)
      lake/                 observation lake (Parquet, partitioned by day and source)
      quarantine/           rejected records, one JSON Lines file per ingest unit
      translog/             transparency log
      knowledge.sqlite      knowledge store (default; PostgreSQL by URL instead)
      exports/              files written by exports and reports

Everything :func:`init_workspace` creates is private to the node's user: files 0600, directories 0700 (the
lake and the ingest pipeline keep to the same modes for what they write).
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from atalaya.core.errors import ConfigError, WorkspaceError

CONFIG_NAME = "atalaya.toml"
ENV_WORKSPACE = "ATALAYA_WORKSPACE"
ENV_DB = "ATALAYA_DB"
ENV_LOCK_WAIT = "ATALAYA_LOCK_WAIT"
_PARTY_RE = re.compile(r"^[A-Z][A-Z0-9_-]{1,15}$")


@dataclass(frozen=True, kw_only=True)
class PartyIdentity:
    """The party that runs this node."""

    code: str
    """Short party code, e.g. ``USA`` or ``MEX`` (upper case)."""
    name: str
    """Human-readable name."""
    role: str = "collecting"
    """``collecting`` or ``host`` (informative; agreements define the real relations)."""


@dataclass(frozen=True, kw_only=True)
class WorkspaceConfig:
    """Contents of ``atalaya.toml``."""

    party: PartyIdentity
    """This node's party."""
    db_url: str = ""
    """Knowledge store URL; empty means the SQLite file in the workspace."""
    log_origin: str = ""
    """Transparency log origin line (C2SP checkpoint); defaults to ``atalaya.<party>/log``."""
    lock_wait: float = 0.0
    """Seconds a writer waits for the lake's writer lock before it reports the lake busy (``[store] lock_wait``)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Other sections, kept as read."""

    def table(self, *path: str) -> dict[str, Any]:
        """A table of the other sections by its path (``table("sites", "thresholds")`` is ``[sites.thresholds]``);
        empty when absent, :class:`ConfigError` when the path names a value that is not a table."""
        node: Any = self.extra
        for i, key in enumerate(path):
            node = node.get(key, {}) if isinstance(node, dict) else node
            if not isinstance(node, dict):
                name = ".".join(path[: i + 1])
                raise ConfigError(f"{CONFIG_NAME}: {name} is not a table", hint=f"write it as a [{name}] section")
        return dict(node)


@dataclass(frozen=True, kw_only=True)
class Workspace:
    """An opened workspace directory."""

    root: Path
    """Workspace directory."""
    config: WorkspaceConfig
    """Parsed configuration."""
    db_override: str | None = None
    """Database URL given on the command line (``--db``), overriding config and environment."""

    @property
    def lake_dir(self) -> Path:
        return self.root / "lake"

    @property
    def quarantine_dir(self) -> Path:
        return self.root / "quarantine"

    @property
    def log_dir(self) -> Path:
        return self.root / "translog"

    @property
    def exports_dir(self) -> Path:
        return self.root / "exports"

    @property
    def key_path(self) -> Path:
        return self.root / "keys" / "signing.key"

    @property
    def party(self) -> str:
        return self.config.party.code

    @property
    def log_origin(self) -> str:
        return self.config.log_origin or f"atalaya.{self.party.lower()}/log"

    @property
    def lock_wait(self) -> float:
        """Seconds a writer waits for the lake's writer lock: ``ATALAYA_LOCK_WAIT`` > ``[store] lock_wait`` > 0."""
        env = os.environ.get(ENV_LOCK_WAIT)
        if env:
            return _seconds(env, ENV_LOCK_WAIT)
        return self.config.lock_wait

    @property
    def db_url(self) -> str:
        """Effective knowledge-store URL: ``--db`` > ``ATALAYA_DB`` > config > workspace SQLite file."""
        url = self.db_override or os.environ.get(ENV_DB) or self.config.db_url
        return url or f"sqlite:///{self.root / 'knowledge.sqlite'}"

    def signing_key(self) -> Ed25519PrivateKey:
        """Load the node's Ed25519 signing key, refusing a key file others can read."""
        p = self.key_path
        if not p.exists():
            raise WorkspaceError(f"signing key missing: {p}", hint="run `atalaya init` to create a workspace")
        mode = stat.S_IMODE(p.stat().st_mode)
        if mode & 0o077:
            raise WorkspaceError(f"signing key {p} is readable by others (mode {mode:o})", hint=f"run `chmod 600 {p}`")
        key = serialization.load_pem_private_key(p.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise WorkspaceError(f"{p} is not an Ed25519 private key")
        return key

    def public_key(self) -> Ed25519PublicKey:
        """The node's Ed25519 public key."""
        return self.signing_key().public_key()

    @classmethod
    def open(cls, root: Path | str, *, db_override: str | None = None) -> Workspace:
        """Open an existing workspace (raises :class:`WorkspaceError` with a hint if absent)."""
        root = Path(root).resolve()
        cfg_path = root / CONFIG_NAME
        if not cfg_path.exists():
            raise WorkspaceError(
                f"no Atalaya workspace at {root} ({CONFIG_NAME} not found)",
                hint=f"run `atalaya init {root}` first, or pass --workspace / set {ENV_WORKSPACE}",
            )
        return cls(root=root, config=load_config(cfg_path), db_override=db_override)

    @classmethod
    def find(cls, start: Path | str | None = None, *, db_override: str | None = None) -> Workspace:
        """Open the workspace named by ``start``, ``$ATALAYA_WORKSPACE``, or the nearest parent with a config."""
        if start is not None:
            return cls.open(start, db_override=db_override)
        env = os.environ.get(ENV_WORKSPACE)
        if env:
            return cls.open(env, db_override=db_override)
        here = Path.cwd().resolve()
        for d in (here, *here.parents):
            if (d / CONFIG_NAME).exists():
                return cls.open(d, db_override=db_override)
        raise WorkspaceError(
            "no Atalaya workspace found here or in any parent directory",
            hint=f"run `atalaya init DIR`, then pass --workspace DIR or set {ENV_WORKSPACE}=DIR",
        )


def _seconds(value: object, what: str) -> float:
    try:
        secs = float(str(value))
    except ValueError:
        secs = -1.0
    if not secs >= 0 or secs == float("inf"):
        raise ConfigError(f"{what} = {value!r} is not a number of seconds", hint=f"set {what} to e.g. 30 (or 0)")
    return secs


def load_config(path: Path) -> WorkspaceConfig:
    """Parse ``atalaya.toml``."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read {path}: {e}", hint="fix the TOML syntax or re-run `atalaya init`") from e
    party = data.get("party") or {}
    code = str(party.get("code", "")).upper()
    if not _PARTY_RE.match(code):
        raise ConfigError(f"{path}: [party] code {code!r} is not a valid party code", hint='use e.g. code = "USA"')
    store = data.get("store") or {}
    log = data.get("log") or {}
    extra = {k: v for k, v in data.items() if k not in ("party", "store", "log")}
    return WorkspaceConfig(
        party=PartyIdentity(code=code, name=str(party.get("name", code)), role=str(party.get("role", "collecting"))),
        db_url=str(store.get("db_url", "")),
        lock_wait=_seconds(store.get("lock_wait", 0), f"{path}: [store] lock_wait"),
        log_origin=str(log.get("origin", "")),
        extra=extra,
    )


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def init_workspace(
    root: Path | str, *, party: str, name: str | None = None, role: str = "collecting", db_url: str = ""
) -> Workspace:
    """Create a workspace: config, Ed25519 key pair (0600), store directories.

    Refuses to overwrite an existing workspace (its key is the node's identity).
    """
    root = Path(root).resolve()
    code = party.upper()
    if not _PARTY_RE.match(code):
        raise ConfigError(f"invalid party code {party!r}", hint="use 2–16 letters/digits, e.g. USA or MEX")
    if (root / CONFIG_NAME).exists():
        raise WorkspaceError(f"{root} is already a workspace", hint="use it as it is, or choose another directory")
    if not root.exists():
        root.mkdir(parents=True)
        os.chmod(root, 0o700)  # a directory the user named and already had keeps its mode
    for sub in ("keys", "lake", "quarantine", "translog", "exports"):
        (root / sub).mkdir(exist_ok=True)
        os.chmod(root / sub, 0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    key_path = root / "keys" / "signing.key"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.chmod(key_path, 0o600)
    _write_private(
        root / "keys" / "signing.pub",
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
    )
    lines = [
        "# Atalaya workspace configuration",
        "[party]",
        f"code = {_toml_str(code)}",
        f"name = {_toml_str(name or code)}",
        f"role = {_toml_str(role)}",
        "",
        "[store]",
        "# Knowledge store URL; empty = knowledge.sqlite in this directory.",
        "# PostgreSQL: postgresql://user@host:5432/dbname",
        f"db_url = {_toml_str(db_url)}",
        "# Seconds a writer (ingest) waits for another to finish before it reports the lake busy.",
        "lock_wait = 0",
        "",
        "[log]",
        f"origin = {_toml_str(f'atalaya.{code.lower()}/log')}",
        "",
    ]
    _write_private(root / CONFIG_NAME, "\n".join(lines).encode())
    ws = Workspace.open(root)
    default_db = root / "knowledge.sqlite"
    if ws.db_url == f"sqlite:///{default_db}" and not default_db.exists():
        # an empty file is an empty SQLite database; SQLite gives its -wal and -shm files the same mode
        _write_private(default_db, b"")
    return ws


def _write_private(path: Path, data: bytes) -> None:
    """Write a new file readable by its owner only (0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)
