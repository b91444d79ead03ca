"""`agl view`: a local web page that shows what the model saw, said, and was trained on.

Where this sits: beside the loop, read-only — the trainer's step records (`agentlightning.verl.records`), its
`metrics.jsonl` and its store → `source.RunSource` → `app.build_app` (routes) → `pages` (HTML).

Run: `agl view outputs/calc_x/cpu` (after `make demo`), `agl view runs/train.db`, or `agl view http://HOST:PORT`
(a store server), then open http://127.0.0.1:4748/. Everything is served from the package; nothing is loaded from
the internet.
"""

from __future__ import annotations

from agentlightning.view.app import build_app, serve
from agentlightning.view.source import RunSource

__all__ = ["RunSource", "build_app", "serve"]
