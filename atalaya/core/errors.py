"""The exception tree of Atalaya, documented in one place.

Every error carries context (what was being done, on which input) and, where it
can, says what to do about it (``hint``).

::

    AtalayaError
    ├── ConfigError            workspace/config missing or invalid
    ├── WorkspaceError         workspace layout or key problems
    ├── StoreError             knowledge store / lake failures
    │   ├── MigrationError     schema migrations could not be applied
    │   └── BusyError          another process (or thread) is writing the lake: its PID and since when
    ├── IngestError            a whole input could not be read (a bad *record* is quarantined instead)
    │   ├── FormatDetectionError
    │   └── UnreadableInputError   truncated or corrupt compression or Parquet, or past a decompression limit
    ├── ValidationError        a document (agreement, marking, plan) fails its schema
    ├── PolicyError            egress denied by markings or agreements
    └── LogIntegrityError      the transparency log or a proof does not verify
        └── LogDamagedError    the log's files are damaged; appends refused until repaired
"""

from __future__ import annotations


class AtalayaError(Exception):
    """Base class. ``hint`` tells the user how to fix the problem."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class ConfigError(AtalayaError):
    """The workspace configuration is missing or invalid."""


class WorkspaceError(AtalayaError):
    """The workspace directory is missing, incomplete or unsafe."""


class StoreError(AtalayaError):
    """A store (lake or knowledge store) failed."""


class MigrationError(StoreError):
    """Schema migrations could not be applied."""


class BusyError(StoreError):
    """The workspace's lake is being written by another process or thread (one writer at a time)."""


class IngestError(AtalayaError):
    """An input as a whole could not be read. Bad records are quarantined, not raised."""


class FormatDetectionError(IngestError):
    """The format of an input could not be detected."""


class ValidationError(AtalayaError):
    """A document does not satisfy its schema or rules."""


class PolicyError(AtalayaError):
    """Egress policy denied a release."""


class LogIntegrityError(AtalayaError):
    """The transparency log, a checkpoint or a proof failed verification."""


class UnreadableInputError(IngestError):
    """An input cannot be read on: truncated or corrupt compressed data or container, or over a reader limit
    (:class:`atalaya.ingest.base.ReaderLimits`) that fails the whole file. Raised by a reader while it streams;
    the batches it yielded before belong to a file that failed, and the next file reads as usual."""


class LogDamagedError(LogIntegrityError):
    """The log's own files are damaged: the writer refuses to append until `atalaya log repair` is run.

    ``findings`` lists each damaged place (file, byte offset, entry index, what is wrong).
    """

    def __init__(self, message: str, *, hint: str | None = None, findings: tuple[str, ...] = ()) -> None:
        super().__init__(message, hint=hint)
        self.findings = findings
