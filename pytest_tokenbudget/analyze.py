"""`tokenbudget analyze DIR`: propose budgets from cassettes a team already has.

Cassettes laid out as DIR/<endpoint>/<case>.yaml give one endpoint per folder; any
other cassette belongs to the endpoint named after its folder. The proposal is the
measured value plus headroom, rounded to a readable number, printed as YAML to paste
into token_budgets.yml.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter, defaultdict
from fractions import Fraction
from pathlib import Path
from typing import Any

from .errors import PricingError, TokenBudgetError
from .pricing import PriceBook
from .samples import SAMPLE_KINDS, Sample
from .stats import endpoint_stats
from .usage import load_cassette_file, parse_exchange


def nice_ceiling(value: float) -> int:
    """Round up to 2 significant digits: 3,310 -> 3,400; 87 -> 87; 0.4 -> 1."""
    if value <= 0:
        return 0
    digits = max(int(math.floor(math.log10(value))) - 1, 0)
    step = 10**digits
    return int(math.ceil(value / step) * step)


def read_samples(directory: Path, errors: list[str]) -> dict[str, list[Sample]]:
    found: dict[str, list[Sample]] = defaultdict(list)
    for path in sorted(
        p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()
    ):
        relative = path.relative_to(directory)
        endpoint = relative.parts[0] if len(relative.parts) > 1 else directory.resolve().name
        try:
            exchanges = load_cassette_file(path)
            calls = [c for e in exchanges for c in parse_exchange(e) if c.kind in SAMPLE_KINDS]
        except TokenBudgetError as err:
            errors.append(f"skipped {err}")
            continue
        for index, call in enumerate(calls):
            found[endpoint].append(
                Sample(endpoint, path.stem, str(relative), index, call.model, call.usage,
                       provider=call.provider, batch=call.batch, note=call.note)
            )  # fmt: skip
    return dict(found)


def propose(samples: dict[str, list[Sample]], *, headroom_pct: float) -> tuple[str, list[str]]:
    factor = 1 + headroom_pct / 100
    book = PriceBook()
    lines = [
        f"# Proposed by `tokenbudget analyze` with {headroom_pct:g}% headroom over what was measured.",
        "# Review each number; add requests_per_day and monthly_budget_usd for a monthly projection.",
        "endpoints:",
    ]
    notes: list[str] = []
    for name, items in sorted(samples.items()):
        cases = sorted({s.case_id for s in items})
        models = Counter(s.model for s in items)
        target = models.most_common(1)[0][0]
        try:
            stats = endpoint_stats(name, items, cases, book=book, target_model=target)
        except PricingError as err:
            notes.append(f"{name}: costs left out: {err.message.splitlines()[0]}")
            stats = endpoint_stats(name, items, cases, book=_free(), target_model=target)
            stats.metrics["cost_per_request_usd"] = None
        m = stats.metrics
        lines += [f"  {name}:", f"    # {len(cases)} cassettes, {stats.calls} calls; models: "
                  + ", ".join(f"{k} ×{v}" for k, v in models.most_common())]  # fmt: skip
        lines.append(f"    target_model: {target}")
        for side in ("input", "output"):
            p95 = m[f"{side}_tokens_p95"]
            if p95 is not None:
                lines.append(
                    f"    max_{side}_tokens_p95: {nice_ceiling(p95 * factor)}   # measured {p95}"
                )
        rate = m["escalation_rate"]
        if rate:
            allowed = min(1.0, round(float(rate) + 0.05, 2))
            lines.append(f"    allowed_escalation_rate: {allowed}   # measured {float(rate):.2f}")
        hit = m["cache_hit_rate"]
        if hit:
            lines.append(
                f"    min_cache_hit_rate: {max(0.0, round(float(hit) - 0.1, 2))}   # measured {float(hit):.2f}"
            )
        cost = m["cost_per_request_usd"]
        if cost:
            limit = float(Fraction(cost) * Fraction(str(factor)))
            lines.append(
                f"    max_cost_per_request_usd: {_money(limit)}   # measured {_money(float(cost))}"
            )
        if stats.calls < 20:
            notes.append(f"{name}: only {stats.calls} calls; percentiles are indicative")
    return "\n".join(lines) + "\n", notes


def _money(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".")


def _free() -> PriceBook:
    """A price book that prices unknown models at zero, only to finish the token statistics."""
    return PriceBook(fallback=lambda model: {"input": 0, "output": 0})


def add_analyze_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "analyze",
        help="propose budgets from existing cassettes",
        description="Read vcrpy cassettes (DIR/<endpoint>/<case>.yaml) and print proposed "
        "token_budgets.yml entries.",
    )
    parser.add_argument("directory", type=Path, metavar="DIR")
    parser.add_argument("--headroom", type=float, default=20.0, metavar="PCT",
                        help="headroom over the measured values (default 20)")  # fmt: skip
    parser.set_defaults(func=cmd_analyze)
    return parser


def cmd_analyze(args: argparse.Namespace) -> int:
    if not args.directory.is_dir():
        print(f"tokenbudget analyze: {args.directory}: not a directory", file=sys.stderr)
        return 2
    errors: list[str] = []
    samples = read_samples(args.directory, errors)
    for error in errors:
        print(f"tokenbudget analyze: {error}", file=sys.stderr)
    if not samples:
        print(
            f"tokenbudget analyze: no API calls found in cassettes under {args.directory}",
            file=sys.stderr,
        )
        return 2
    text, notes = propose(samples, headroom_pct=args.headroom)
    sys.stdout.write(text)
    for note in notes:
        print(f"# note: {note}")
    return 0
