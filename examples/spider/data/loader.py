"""Load a Spider dataset laid out as in the official release.

Expected layout under the root (given as an argument or through the ``SPIDER_DATA_DIR`` environment variable)::

    tables.json                       schemas (``test_tables.json`` for the test split, when present)
    train_spider.json / train_others.json / dev.json / test.json
    database/<db_id>/<db_id>.sqlite   databases (``test_database/`` for the test split, when present)

``load_spider`` checks that every example's ``db_id`` has a schema and a database file and reports all the
missing ones in a single error. ``bundled_root()`` points at the small mini-Spider shipped with this example.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from examples.spider.spider_eval.schema import DbSchema, load_tables_json

__all__ = [
    "ENV_VAR",
    "SPLIT_FILES",
    "MissingDatabaseError",
    "SpiderDataError",
    "SpiderDataset",
    "SpiderExample",
    "bundled_root",
    "load_spider",
    "resolve_root",
]

ENV_VAR = "SPIDER_DATA_DIR"
SPLIT_FILES: dict[str, str] = {
    "train": "train_spider.json",
    "train_others": "train_others.json",
    "dev": "dev.json",
    "test": "test.json",
}


class SpiderDataError(ValueError):
    """The Spider folder is missing or incomplete."""


class MissingDatabaseError(SpiderDataError):
    """Some examples refer to databases that are missing; ``missing`` lists their db_ids."""

    def __init__(self, message: str, missing: list[str]) -> None:
        super().__init__(message)
        self.missing = missing


@dataclass(frozen=True)
class SpiderExample:
    db_id: str
    question: str
    query: str


@dataclass
class SpiderDataset:
    root: Path
    split: str
    examples: list[SpiderExample]
    schemas: dict[str, DbSchema] = field(repr=False)
    db_dir: Path
    tables_path: Path

    def db_path(self, db_id: str) -> Path:
        return self.db_dir / db_id / f"{db_id}.sqlite"

    def __len__(self) -> int:
        return len(self.examples)


def bundled_root() -> Path:
    """The mini-Spider bundled with this example (same layout as the real one)."""
    return Path(__file__).resolve().parent / "mini_spider"


def resolve_root(root: str | Path | None = None) -> Path:
    """The Spider root: ``root`` if given, else ``$SPIDER_DATA_DIR``."""
    if root is None:
        env = os.environ.get(ENV_VAR)
        if not env:
            raise SpiderDataError(
                f"no Spider folder given: pass root=... or set {ENV_VAR} to the folder holding dev.json, "
                f"tables.json and database/ (the bundled mini-Spider is at {bundled_root()})"
            )
        root = env
    path = Path(root).expanduser()
    if not path.is_dir():
        raise SpiderDataError(f"Spider folder not found: {path}")
    return path


def load_spider(split: str = "dev", root: str | Path | None = None) -> SpiderDataset:
    """Load one split and check that every referenced database exists."""
    if split not in SPLIT_FILES:
        raise SpiderDataError(f"unknown split {split!r}; choose one of {', '.join(SPLIT_FILES)}")
    base = resolve_root(root)
    data_file = base / SPLIT_FILES[split]
    if not data_file.is_file():
        raise SpiderDataError(f"{split} file not found: {data_file}")
    tables_path, db_dir = base / "tables.json", base / "database"
    if split == "test" and (base / "test_tables.json").is_file():
        tables_path = base / "test_tables.json"
    if split == "test" and (base / "test_database").is_dir():
        db_dir = base / "test_database"
    schemas = load_tables_json(tables_path)
    try:
        raw = json.loads(data_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise SpiderDataError(f"{data_file}: not JSON ({error.msg}, line {error.lineno}). Fix: a JSON list of "
                              "{db_id, question, query} objects, as in Spider's dev.json") from error
    if not isinstance(raw, list):
        raise SpiderDataError(f"{data_file}: holds a {type(raw).__name__}, not a list of examples. Fix: a JSON list "
                              "of {db_id, question, query} objects, as in Spider's dev.json")
    examples = []
    for index, entry in enumerate(raw):
        bad = [key for key in ("db_id", "question", "query")
               if not isinstance(entry, dict) or not isinstance(entry.get(key), str) or not entry[key].strip()]
        if bad:
            got = {k: entry.get(k) for k in bad} if isinstance(entry, dict) else entry
            raise SpiderDataError(f"{data_file}, example {index}: {', '.join(bad)} must be non-empty text, got "
                                  f"{got!r}. Fix: correct or remove that example")
        examples.append(SpiderExample(entry["db_id"], entry["question"], entry["query"]))

    db_ids = sorted({example.db_id for example in examples})
    no_file = [db_id for db_id in db_ids if not (db_dir / db_id / f"{db_id}.sqlite").is_file()]
    no_schema = [db_id for db_id in db_ids if db_id not in schemas]
    if no_file or no_schema:
        lines = []
        if no_file:
            lines.append(f"{len(no_file)} database file(s) missing under {db_dir}: {', '.join(no_file)}")
        if no_schema:
            lines.append(f"{len(no_schema)} db_id(s) missing from {tables_path}: {', '.join(no_schema)}")
        raise MissingDatabaseError(
            f"{data_file}: " + "; ".join(lines) + ". Expected <db_id>/<db_id>.sqlite for every db_id; "
            "re-extract the Spider archive or point the root at the complete release.",
            sorted(set(no_file) | set(no_schema)),
        )
    return SpiderDataset(base, split, examples, schemas, db_dir, tables_path)
