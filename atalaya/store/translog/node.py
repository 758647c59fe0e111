"""Wiring a workspace to its log and its witness: paths, key names, signers.

The log lives in ``WORKSPACE/translog/`` and signs with the workspace key under
the key name = the log origin (e.g. ``atalaya.usa/log``). The same node acting
as a witness for a partner's log keeps its state in ``WORKSPACE/translog/witness/``
and cosigns as ``atalaya.<party>/witness``. One Ed25519 key serves both roles:
note signatures (type 0x01) sign a checkpoint body, which never starts with
``cosignature/v1`` (origins with that prefix are refused), so the two signed
messages cannot collide.
"""

from __future__ import annotations

import time

from atalaya.core.errors import StoreError
from atalaya.core.workspace import Workspace
from atalaya.store.translog.checkpoint import NoteSigner
from atalaya.store.translog.log import TransparencyLog
from atalaya.store.translog.witness import Witness

WITNESS_DIR = "witness"


def log_signer(ws: Workspace) -> NoteSigner:
    """The signer of this workspace's log checkpoints (key name = log origin)."""
    return NoteSigner(name=ws.log_origin, key=ws.signing_key())


def witness_name(ws: Workspace) -> str:
    """Key name this node cosigns with, e.g. ``atalaya.mex/witness``."""
    return f"atalaya.{ws.party.lower()}/witness"


def open_log(ws: Workspace, *, readonly: bool = False, wait_s: float = 0.0) -> TransparencyLog:
    """Open the workspace's transparency log.

    A writer waits up to ``wait_s`` seconds for another process's writer to finish
    (the log has exactly one writer at a time) before giving up with its error.
    A writer also checks the stored checkpoint's signature with the workspace key
    and refuses damaged files (:class:`~atalaya.core.errors.LogDamagedError`).
    """
    deadline = time.monotonic() + wait_s
    delay = 0.01
    while True:
        try:
            verifier = None if readonly else log_signer(ws).verifier()
            return TransparencyLog.open(ws.log_dir, origin=ws.log_origin, readonly=readonly, verifier=verifier)
        except StoreError as e:
            if readonly or "open for writing" not in e.message or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(0.2, delay * 2)


def witness_for(ws: Workspace) -> Witness:
    """This workspace acting as a witness for other logs."""
    return Witness(state_dir=ws.log_dir / WITNESS_DIR, signer=NoteSigner(name=witness_name(ws), key=ws.signing_key()))
