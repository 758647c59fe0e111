"""Knowledge store: SQLAlchemy Core tables, migrations and the store object."""

from atalaya.store.knowledge import schema
from atalaya.store.knowledge.store import KnowledgeStore, upsert

__all__ = ["KnowledgeStore", "schema", "upsert"]
