"""Seeded generator of the bundled calc_x sample: `train.jsonl` (400 rows) and `test.jsonl` (100 rows).

Why synthetic: no package ships Calc-X, and the default policy (SmolLM2-135M-Instruct) is right on one-digit sums
but wrong on two-digit addition, so RL needs tasks it can *sometimes* solve. Three difficulties:

- `arith1`: one operation on one-digit numbers, "What is 7 + 5?" (sums, differences >= 0, products);
- `word1`: a one-step word problem, "Tom has 3 apples and buys 4 more. How many apples does Tom have?";
- `word2`: a two-step word problem, "... Then Tom gives 2 apples to Mia. How many apples does Tom have now?".

Every row has the Calc-X fields (`id`, `question`, `chain`, `result`, `source`) plus `difficulty`. `chain` uses the
Calc-X markup, one calculator step per gadget, then the result:

    <gadget id="calculator">3 + 4</gadget>
    <output>7</output>
    <result>7</result>

`result` is the exact answer as a string (always a whole number here). Questions are unique within the whole sample,
so train and test are disjoint by question text. The same seed always writes byte-identical files.

Run (a script, not a module: `examples/calc_x/data.py` owns the import name `examples.calc_x.data`):

    python examples/calc_x/data/generate.py [--seed 0] [--train 400] [--test 100] [--out examples/calc_x/data]
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable
from pathlib import Path

__all__ = ["DEFAULT_SEED", "DIFFICULTY_WEIGHTS", "SOURCE", "generate", "main", "write_jsonl"]

DEFAULT_SEED = 0
SOURCE = "agl-synthetic-calc-x-v1"
DIFFICULTY_WEIGHTS = {"arith1": 0.4, "word1": 0.35, "word2": 0.25}
OUT_DIR = Path(__file__).resolve().parent

_NAMES = ["Tom", "Mia", "Sam", "Ana", "Leo", "Eva", "Max", "Zoe", "Ben", "Ida", "Kai", "Lily", "Omar", "Nina"]
_ITEMS = ["apples", "pencils", "books", "marbles", "stickers", "cookies", "cards", "shells", "balloons", "coins"]
_CONTAINERS = ["boxes", "bags", "baskets", "jars", "packs"]

Row = dict[str, str]


def _chain(steps: list[tuple[str, int]], result: int) -> str:
    parts = [f'<gadget id="calculator">{expr}</gadget>\n<output>{out}</output>' for expr, out in steps]
    return "\n".join(parts + [f"<result>{result}</result>"])


def _arith1(rng: random.Random) -> tuple[str, list[tuple[str, int]], int]:
    op = rng.choice(["+", "-", "*"])
    a, b = rng.randint(1, 9), rng.randint(1, 9)
    if op == "-" and b > a:
        a, b = b, a
    value = a + b if op == "+" else a - b if op == "-" else a * b
    word = {"+": "plus", "-": "minus", "*": "times"}[op]
    template = rng.choice(["What is {a} {op} {b}?", "Compute {a} {op} {b}.", "What is {a} {word} {b}?"])
    question = template.format(a=a, op=op, b=b, word=word)
    return question, [(f"{a} {op} {b}", value)], value


def _word1(rng: random.Random) -> tuple[str, list[tuple[str, int]], int]:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    kind = rng.choice(["buy", "lose", "groups", "share"])
    if kind == "buy":
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        question = f"{name} has {a} {item} and buys {b} more. How many {item} does {name} have?"
        return question, [(f"{a} + {b}", a + b)], a + b
    if kind == "lose":
        a = rng.randint(2, 9)
        b = rng.randint(1, a - 1)
        question = f"{name} has {a} {item} and gives {b} away. How many {item} does {name} have left?"
        return question, [(f"{a} - {b}", a - b)], a - b
    if kind == "groups":
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        box = rng.choice(_CONTAINERS)
        question = f"There are {a} {box} with {b} {item} in each. How many {item} are there in total?"
        return question, [(f"{a} * {b}", a * b)], a * b
    b = rng.randint(2, 5)
    each = rng.randint(1, 5)
    a = b * each
    question = f"{name} shares {a} {item} equally among {b} friends. How many {item} does each friend get?"
    return question, [(f"{a} / {b}", each)], each


def _word2(rng: random.Random) -> tuple[str, list[tuple[str, int]], int]:
    name, other = rng.sample(_NAMES, 2)
    item = rng.choice(_ITEMS)
    a, b = rng.randint(1, 9), rng.randint(1, 9)
    first = a + b
    if rng.random() < 0.5:
        c = rng.randint(1, first - 1)
        question = (f"{name} has {a} {item} and buys {b} more. Then {name} gives {c} {item} to {other}. "
                    f"How many {item} does {name} have now?")
        return question, [(f"{a} + {b}", first), (f"{first} - {c}", first - c)], first - c
    c = rng.randint(1, 9)
    question = (f"{name} has {a} {item}. {other} gives {name} {b} more, and then {name} finds {c} more. "
                f"How many {item} does {name} have now?")
    return question, [(f"{a} + {b}", first), (f"{first} + {c}", first + c)], first + c


_MAKERS: dict[str, Callable[[random.Random], tuple[str, list[tuple[str, int]], int]]] = {
    "arith1": _arith1, "word1": _word1, "word2": _word2,
}


def generate(seed: int = DEFAULT_SEED, n_train: int = 400, n_test: int = 100) -> tuple[list[Row], list[Row]]:
    """`(train, test)` rows; deterministic for a seed; no question appears twice across both splits."""
    if n_train < 0 or n_test < 0:
        raise ValueError(f"n_train={n_train}, n_test={n_test} must be >= 0")
    rng = random.Random(seed)
    kinds = list(DIFFICULTY_WEIGHTS)
    weights = [DIFFICULTY_WEIGHTS[k] for k in kinds]
    seen: set[str] = set()
    rows: list[tuple[str, str, list[tuple[str, int]], int]] = []
    attempts = 0
    while len(rows) < n_train + n_test:
        attempts += 1
        if attempts > 100 * (n_train + n_test) + 1000:
            raise RuntimeError(f"could only make {len(rows)} distinct questions; ask for fewer rows")
        kind = rng.choices(kinds, weights)[0]
        question, steps, result = _MAKERS[kind](rng)
        if question in seen:
            continue
        seen.add(question)
        rows.append((kind, question, steps, result))

    def to_row(split: str, index: int, item: tuple[str, str, list[tuple[str, int]], int]) -> Row:
        kind, question, steps, result = item
        return {"id": f"{split}-{index:04d}", "question": question, "chain": _chain(steps, result),
                "result": str(result), "source": SOURCE, "difficulty": kind}

    train = [to_row("train", i, item) for i, item in enumerate(rows[:n_train])]
    test = [to_row("test", i, item) for i, item in enumerate(rows[n_train:])]
    return train, test


def write_jsonl(rows: list[Row], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the synthetic calc_x sample (train.jsonl, test.jsonl).")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--train", type=int, default=400)
    parser.add_argument("--test", type=int, default=100)
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    train, test = generate(args.seed, args.train, args.test)
    write_jsonl(train, args.out / "train.jsonl")
    write_jsonl(test, args.out / "test.jsonl")
    print(f"wrote {len(train)} rows to {args.out / 'train.jsonl'} and {len(test)} rows to {args.out / 'test.jsonl'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
