"""How many CertLogic evaluations per second one process manages.

Run ``python -m healthcode.bench.certlogic``. The rule is the shape our rule
sets use most: a test result matched by value and a date-time window, over
records whose instants are aware ``datetime`` objects as the record layer
passes them. Two figures are printed: every resident positive, so that the
whole expression runs, and a mix in which two residents in three are
negative and ``and`` stops early.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from healthcode.rules.certlogic import compile_expression

RULE: dict[str, Any] = {
    "and": [
        {"===": [{"var": "current.result"}, "positive"]},
        {
            "after": [
                {"plusTime": [{"var": "current.sampledAt"}, 14, "day"]},
                {"plusTime": [{"var": "data.now"}, 0, "hour"]},
            ]
        },
    ]
}

# A fixed instant keeps runs comparable; the benchmark decides nothing.
_NOW = datetime(2022, 4, 1, 8, 30, tzinfo=UTC)


def _contexts(count: int, positive_every: int) -> list[dict[str, Any]]:
    facts = {"now": _NOW}
    return [
        {
            "current": {
                "result": "positive" if i % positive_every == 0 else "negative",
                "sampledAt": _NOW - timedelta(days=i % 20, minutes=i % 600),
            },
            "data": facts,
        }
        for i in range(count)
    ]


def measure(
    rule: Callable[[Any], Any], contexts: Sequence[Any], seconds: float
) -> float:
    """Evaluate ``rule`` over ``contexts`` repeatedly; return evaluations/s."""
    done = 0
    started = time.perf_counter()
    while True:
        for context in contexts:
            rule(context)
        done += len(contexts)
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return done / elapsed


def main(argv: Sequence[str] | None = None) -> None:
    """Print evaluations per second for the typical rule."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=2.0, help="time to spend on each figure"
    )
    options = parser.parse_args(argv)
    rule = compile_expression(RULE)
    for label, positive_every in (("all positive", 1), ("one in three", 3)):
        rate = measure(rule, _contexts(10_000, positive_every), options.seconds)
        print(f"certlogic, {label:>12}: {rate:>12,.0f} evaluations/s")


if __name__ == "__main__":
    main()
