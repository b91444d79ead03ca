"""Spider schema handling: load ``tables.json`` and introspect SQLite databases.

``tables.json`` is Spider's schema file: a JSON list with one entry per database holding
``db_id``, ``table_names_original``, ``table_names``, ``column_names_original`` (pairs of
``[table_index, column_name]``, index ``-1`` for the ``*`` pseudo column), ``column_names``,
``column_types``, ``primary_keys`` (column indices) and ``foreign_keys`` (pairs of column indices).

Besides loading and validating that file, this module can build such an entry from a SQLite file
(``introspect_sqlite``), which is how the bundled mini-Spider ``tables.json`` is generated.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DbSchema",
    "SchemaError",
    "column_id",
    "introspect_sqlite",
    "load_tables_json",
    "table_id",
]

_REQUIRED_KEYS = ("db_id", "table_names_original", "column_names_original")


class SchemaError(ValueError):
    """Raised when ``tables.json`` is missing, malformed, or lacks a database."""


def column_id(table: str, column: str) -> str:
    """Canonical, case-insensitive id of a column, in the style of Spider's ``process_sql``."""
    return f"__{table.lower()}.{column.lower()}__"


def table_id(table: str) -> str:
    """Canonical, case-insensitive id of a table."""
    return f"__{table.lower()}__"


@dataclass(frozen=True)
class DbSchema:
    """Schema of one Spider database, as described by its ``tables.json`` entry."""

    db_id: str
    table_names: tuple[str, ...]
    columns: tuple[tuple[int, str], ...]
    column_types: tuple[str, ...] = ()
    primary_keys: tuple[int, ...] = ()
    foreign_keys: tuple[tuple[int, int], ...] = ()
    _tables: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        tables: dict[str, list[str]] = {name.lower(): [] for name in self.table_names}
        for table_index, column in self.columns:
            if table_index >= 0:
                tables[self.table_names[table_index].lower()].append(column.lower())
        self._tables.update({name: tuple(cols) for name, cols in tables.items()})

    @property
    def tables(self) -> dict[str, tuple[str, ...]]:
        """Lower-cased table name -> lower-cased column names."""
        return self._tables

    def has_table(self, table: str) -> bool:
        return table.lower() in self._tables

    def has_column(self, table: str, column: str) -> bool:
        return column.lower() in self._tables.get(table.lower(), ())

    def column_ids(self) -> list[str]:
        """Column ids in ``column_names_original`` order (``__all__`` for ``*``)."""
        return [
            "__all__" if table_index < 0 else column_id(self.table_names[table_index], name)
            for table_index, name in self.columns
        ]

    def foreign_key_map(self) -> dict[str, str]:
        """Map each column taking part in a foreign key to one canonical column of its key group.

        Columns linked by foreign keys (transitively) form a group; every member maps to the member with
        the smallest column index, as in the official evaluation's ``build_foreign_key_map``.
        """
        ids = self.column_ids()
        groups: list[set[int]] = []
        for left, right in self.foreign_keys:
            target = next((group for group in groups if left in group or right in group), None)
            if target is None:
                target = set()
                groups.append(target)
            target.update((left, right))
        mapping: dict[str, str] = {}
        for group in groups:
            canonical = ids[min(group)]
            for index in group:
                mapping[ids[index]] = canonical
        return mapping

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> DbSchema:
        missing = [key for key in _REQUIRED_KEYS if key not in entry]
        if missing:
            raise SchemaError(f"tables.json entry {entry.get('db_id', '?')!r} lacks keys {missing}")
        return cls(
            db_id=str(entry["db_id"]),
            table_names=tuple(str(name) for name in entry["table_names_original"]),
            columns=tuple((int(t), str(c)) for t, c in entry["column_names_original"]),
            column_types=tuple(str(t) for t in entry.get("column_types", ())),
            primary_keys=tuple(_flatten_ints(entry.get("primary_keys", []))),
            foreign_keys=tuple((int(a), int(b)) for a, b in entry.get("foreign_keys", [])),
        )


def _flatten_ints(values: list[Any]) -> list[int]:
    """Spider 1.0 stores single ints; later releases use lists for composite keys. Accept both."""
    flat: list[int] = []
    for value in values:
        if isinstance(value, list):
            flat.extend(int(v) for v in value)
        else:
            flat.append(int(value))
    return flat


def load_tables_json(path: str | Path) -> dict[str, DbSchema]:
    """Load a Spider ``tables.json`` into ``{db_id: DbSchema}``."""
    path = Path(path)
    if not path.is_file():
        raise SchemaError(f"tables file not found: {path} (pass the Spider tables.json with --table)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise SchemaError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(data, list):
        raise SchemaError(f"{path}: expected a JSON list of database entries, got {type(data).__name__}")
    return {schema.db_id: schema for schema in (DbSchema.from_entry(entry) for entry in data)}


_TYPE_MAP = (
    ("int", "number"),
    ("real", "number"),
    ("floa", "number"),
    ("doub", "number"),
    ("num", "number"),
    ("dec", "number"),
    ("bool", "boolean"),
    ("date", "time"),
    ("time", "time"),
    ("char", "text"),
    ("text", "text"),
    ("clob", "text"),
)


def _spider_type(declared: str) -> str:
    declared = declared.lower()
    for needle, spider_type in _TYPE_MAP:
        if needle in declared:
            return spider_type
    return "others"


def _natural(name: str) -> str:
    return name.replace("_", " ").lower()


def introspect_sqlite(db_path: str | Path, db_id: str) -> dict[str, Any]:
    """Build a Spider ``tables.json`` entry (with primary and foreign keys) from a SQLite file."""
    conn = sqlite3.connect(f"file:{Path(db_path).resolve()}?mode=ro", uri=True)
    try:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
            )
        ]
        columns: list[list[Any]] = [[-1, "*"]]
        types: list[str] = ["text"]
        primary_keys: list[int] = []
        index_of: dict[tuple[str, str], int] = {}
        for t_index, table in enumerate(tables):
            for _, name, declared, _, _, pk in conn.execute(f'PRAGMA table_info("{table}")'):
                index_of[(table.lower(), name.lower())] = len(columns)
                if pk:
                    primary_keys.append(len(columns))
                columns.append([t_index, name])
                types.append(_spider_type(declared or ""))
        foreign_keys: list[list[int]] = []
        for table in tables:
            for row in conn.execute(f'PRAGMA foreign_key_list("{table}")'):
                ref_table, from_col, to_col = row[2], row[3], row[4]
                foreign_keys.append(
                    [index_of[(table.lower(), from_col.lower())], index_of[(ref_table.lower(), to_col.lower())]]
                )
    finally:
        conn.close()
    return {
        "db_id": db_id,
        "table_names_original": tables,
        "table_names": [_natural(t) for t in tables],
        "column_names_original": columns,
        "column_names": [[t, _natural(c) if t >= 0 else c] for t, c in columns],
        "column_types": types,
        "primary_keys": primary_keys,
        "foreign_keys": foreign_keys,
    }
