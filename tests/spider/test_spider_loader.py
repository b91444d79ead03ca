"""Spider layout loader: bundled data loads; missing databases are reported together."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from examples.spider.data.loader import MissingDatabaseError, SpiderDataError, bundled_root, load_spider


def test_bundled_mini_spider_loads() -> None:
    dev = load_spider("dev", bundled_root())
    train = load_spider("train", bundled_root())
    assert len(dev) > 0 and len(train) > len(dev)
    assert all(dev.db_path(e.db_id).is_file() for e in dev.examples)


def test_root_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPIDER_DATA_DIR", str(bundled_root()))
    assert load_spider("dev").root == bundled_root()
    monkeypatch.delenv("SPIDER_DATA_DIR")
    with pytest.raises(SpiderDataError, match="SPIDER_DATA_DIR"):
        load_spider("dev")


def test_missing_databases_reported_in_one_error(tmp_path: Path) -> None:
    root = tmp_path / "spider"
    shutil.copytree(bundled_root(), root)
    shutil.rmtree(root / "database" / "store")
    shutil.rmtree(root / "database" / "flight")
    dev = json.loads((root / "dev.json").read_text())
    dev.append({"db_id": "ghost_db", "question": "?", "query": "SELECT 1"})
    (root / "dev.json").write_text(json.dumps(dev))
    with pytest.raises(MissingDatabaseError) as info:
        load_spider("dev", root)
    assert info.value.missing == ["flight", "ghost_db", "store"]
    message = str(info.value)
    assert "flight" in message and "store" in message and "ghost_db" in message and "tables.json" in message


@pytest.mark.parametrize(("content", "message"), [
    ([{"db_id": "store", "question": 7, "query": "SELECT 1"}], r"example 0: question must be non-empty text, got"),
    ([{"db_id": "store", "question": "Q?", "query": "  "}], "query must be non-empty text"),
    ([{"db_id": "store", "question": "Q?"}], "query must be non-empty text"),
    (["SELECT 1"], "example 0: db_id, question, query"),
    ({"db_id": "store"}, "holds a dict"),
])
def test_malformed_examples_are_named(tmp_path: Path, content: object, message: str) -> None:
    root = tmp_path / "spider"
    shutil.copytree(bundled_root(), root)
    (root / "dev.json").write_text(json.dumps(content))
    with pytest.raises(SpiderDataError, match=message) as info:
        load_spider("dev", root)
    assert "Fix:" in str(info.value)
