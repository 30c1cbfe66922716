"""The DuckDB catalog: schema, locking, and helpers shared by every subsystem."""

from .db import Catalog, has_table, load_records, table_columns, upsert_records

__all__ = ["Catalog", "has_table", "load_records", "table_columns", "upsert_records"]
