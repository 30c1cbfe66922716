"""The DuckDB catalog: schema, locking, and helpers shared by every subsystem."""

from .db import Catalog, dict_rows, has_table, load_records, table_columns, upsert_records

__all__ = ["Catalog", "dict_rows", "has_table", "load_records", "table_columns", "upsert_records"]
