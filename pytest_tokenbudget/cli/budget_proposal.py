"""The token_budgets.yml `tokenbudget analyze` proposes: samples grouped into endpoints,
each budget the measured value plus headroom, rounded to a readable number.

Endpoints are one per cassette folder by default (the test module in pytest-recording's
``tests/cassettes/<module>/<test>.yaml``, the endpoint in this plugin's
``cassettes/<endpoint>/<case>.yaml``), or per file or per model. Model names come from the
recorded responses and file names from the folder: in the proposal each is a YAML scalar
written by the YAML emitter (it reads back as itself, whatever its characters), and in a
comment its control characters are escapes (plain_text), so none can end its line and start
another.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from pytest_tokenbudget.cli.cassette_scan import Analysis
from pytest_tokenbudget.config.budgets import MAX_ENDPOINT_NAME_LENGTH
from pytest_tokenbudget.formatting import nice_ceiling
from pytest_tokenbudget.measure.samples import Sample
from pytest_tokenbudget.measure.stats import EndpointStats, endpoint_stats
from pytest_tokenbudget.plain_text import one_line
from pytest_tokenbudget.pricing.prices import PriceBook
from pytest_tokenbudget.providers.recorders import FORMATS

if TYPE_CHECKING:
    from pytest_tokenbudget.pricing.prices import Price

_ENDPOINT_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")  # as the config schema says


def group(analysis: Analysis, *, by: str, root: str) -> dict[str, list[Sample]]:
    """Samples per proposed endpoint; ``root`` names the endpoint of files directly in DIR."""
    keyed: dict[tuple[str, ...], list[Sample]] = defaultdict(list)
    for cassette in analysis.found:
        batch = cassette.format == "batch-results"  # priced at the Batch API discount
        test_id = cassette.path.as_posix()
        for index, (case, call) in enumerate(cassette.calls):
            if by == "model":
                key: tuple[str, ...] = (call.model or "unknown-model",)
            elif by == "file":
                key = cassette.path.with_suffix("").parts
            else:
                key = cassette.path.parent.parts or (root,)
            sample = Sample(
                "",
                case,
                test_id,
                index,
                call.model,
                call.usage,
                provider=call.provider,
                batch=call.batch or batch,
                note=call.note,
            )
            keyed[key].append(sample)
    names = endpoint_names(list(keyed))
    return {names[key]: keyed[key] for key in sorted(keyed, key=lambda k: names[k])}


def endpoint_names(keys: Sequence[tuple[str, ...]]) -> dict[tuple[str, ...], str]:
    """A valid, unique endpoint name per key: its last part, more parts where two clash.

    `cassettes` folders say nothing about the endpoint, so they are left out of names.
    """
    meaningful = {k: tuple(p for p in k if p.lower() != "cassettes") or k for k in keys}
    depth = dict.fromkeys(keys, 1)
    while True:
        names = {k: endpoint_name(".".join(meaningful[k][-depth[k] :])) for k in keys}
        seen = Counter(names.values())
        clashes = [k for k in keys if seen[names[k]] > 1 and depth[k] < len(meaningful[k])]
        if not clashes:
            break
        for k in clashes:
            depth[k] += 1
    taken: set[str] = set()
    for k in keys:  # names that still clash (they differ only in characters left out)
        name, n = names[k], 2
        while name in taken:
            suffix = f"-{n}"
            name, n = (
                endpoint_name(names[k], MAX_ENDPOINT_NAME_LENGTH - len(suffix)) + suffix,
                n + 1,
            )
        taken.add(name)
        names[k] = name
    return names


def endpoint_name(text: str, limit: int = MAX_ENDPOINT_NAME_LENGTH) -> str:
    """``text`` as an endpoint name the config accepts (`[A-Za-z0-9_-][A-Za-z0-9_.-]*`, at
    most `limit` characters: the end is kept, where a model id or a dotted path is most
    specific)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "endpoint"
    name = name if _ENDPOINT_NAME.fullmatch(name) else f"_{name}"
    return name if len(name) <= limit else name[-limit:].lstrip(".") or "endpoint"


def yaml_scalar(text: str) -> str:
    """A string as one YAML flow scalar that reads back as itself: plain when it can be,
    quoted by the emitter otherwise (`yes`, `1e3`, `a: b`, `[x]`, line breaks, `#`)."""
    import yaml

    def dump(**style: Any) -> str:
        # a one-item flow sequence: the emitter quotes for the strictest context, flow
        out: str = yaml.safe_dump([text], default_flow_style=True, width=math.inf, **style)
        return out.strip()[1:-1]

    out = dump(allow_unicode=True)
    if one_line(out) != out:  # a control character, a line break, `##[`: all as escapes
        out = dump(allow_unicode=False, default_style='"')
        out = out.replace("##[", "##\\x5b")  # the same "[", and no command in a CI log
    return out


def _comment(text: str) -> str:
    """Text for a YAML comment: one line, whatever a model or file name holds."""
    return one_line(text)


# -- proposing --------------------------------------------------------------------------
def propose(
    samples: dict[str, list[Sample]],
    *,
    headroom_pct: float,
    formats: dict[str, Counter[str]] | None = None,
    header: Sequence[str] = (),
) -> tuple[str, list[str]]:
    """The token_budgets.yml text, and notes on what it could not propose."""
    factor = 1 + headroom_pct / 100
    book = PriceBook()
    lines = [
        *header,
        f"# Proposed with {headroom_pct:g}% headroom over what was measured. Review each",
        "# number; add requests_per_day and monthly_budget_usd for a monthly projection.",
        "version: 1",
        "endpoints:",
    ]
    notes: list[str] = []
    for name, items in samples.items():
        cases = sorted({s.case_id for s in items})
        models = Counter(s.model for s in items)
        # First without a target: what each model costs does not depend on it.
        spend = endpoint_stats(name, items, cases, book=book, strict=False)
        choice = choose_target(items, spend, book)
        target = choice.model
        priced = book.lookup(target) is not None
        stats = endpoint_stats(
            name,
            items,
            cases,
            book=book,
            target_model=target if priced else None,
            escalation_models=choice.escalation_models if priced else None,
            strict=False,
        )
        m = stats.metrics
        files = len({s.test_id for s in items})
        kinds = ", ".join(
            f"{FORMATS.get(f, f)}" + (f" ×{n}" if n > 1 else "")
            for f, n in sorted((formats or {}).get(name, Counter()).items())
        )
        read = _count(files, "file") + (f" ({kinds})" if kinds else "")
        used = ", ".join(f"{k} ×{v}" for k, v in models.most_common())
        counted = f"{_count(len(cases), 'case')}, {_count(stats.calls, 'call')}"
        about = _comment(f"{read}, {counted}; models: {used}")
        lines += [f"  {yaml_scalar(name)}:", f"    # {about}"]
        if priced:
            lines += [f"    # {_comment(why)}" for why in choice.why]
            lines.append(f"    target_model: {yaml_scalar(target)}")
            if choice.escalation_models:
                listed = ", ".join(yaml_scalar(e) for e in choice.escalation_models)
                lines.append(f"    escalation_models: [{listed}]")
        else:
            lines.append(
                f"    # target_model: {yaml_scalar(target)}   # no price: add it to `pricing:`"
            )
            notes.append(
                f"{name}: {target} has no price (genai-prices, `pricing:`), so target_model is "
                f"commented out and costs are left out; add `pricing: {{{yaml_scalar(target)}: "
                "{input: ..., output: ...}}` with its real $ per million tokens"
            )
        for side in ("input", "output"):
            p95 = m[f"{side}_tokens_p95"]
            if p95 is not None:
                limit = max(nice_ceiling(p95 * factor), 1)
                lines.append(f"    max_{side}_tokens_p95: {limit}   # measured {p95}")
        lines += _escalation_lines(m["escalation_rate"], stats, choice)
        lines += _cache_lines(m["cache_hit_rate"])
        cost = m["cost_per_request_usd"]
        if cost:
            limit_usd = float(Fraction(cost) * Fraction(str(factor)))
            lines.append(
                f"    max_cost_per_request_usd: {_money(limit_usd)}"
                f"   # measured {_money(float(cost))}"
            )
        elif stats.unpriced and priced:
            unpriced = ", ".join(sorted(stats.unpriced))
            notes.append(f"{name}: no price for {unpriced}, so costs are left out")
        if stats.calls < 20:
            notes.append(f"{name}: only {_count(stats.calls, 'call')}; percentiles are indicative")
    return "\n".join(lines) + "\n", notes


# A proposed limit must be one a run can break: an escalation rate is at most 1.0 and a
# cache-hit rate at least 0.0, so `allowed_escalation_rate: 1.0` or `min_cache_hit_rate:
# 0.0` would pass whatever happens. Such a line is written as a comment saying why.
ESCALATION_MARGIN = 0.05
CACHE_MARGIN = 0.1


def _escalation_lines(
    rate: Fraction | float | None, stats: EndpointStats, choice: Target
) -> list[str]:
    if choice.no_escalation_models:
        return [f"    # allowed_escalation_rate: not proposed: {choice.no_escalation_models}"]
    if not rate:
        return []
    measured = float(rate)
    allowed = round(measured + ESCALATION_MARGIN, 2)
    if allowed < 1:
        return [f"    allowed_escalation_rate: {allowed}   # measured {measured:.2f}"]
    escalated = sum(c.escalated for c in stats.per_case.values() if c.calls)
    requests = sum(1 for c in stats.per_case.values() if c.calls)
    named = "escalation_models" if choice.escalation_models else "a model other than target_model"
    why = (
        f"{escalated} of {requests} cases call {named} (measured {measured:.2f}), "
        "so the limit would be 1.0, which cannot fail"
    )
    return [f"    # allowed_escalation_rate: not proposed: {why}"]


def _cache_lines(hit: Fraction | float | None) -> list[str]:
    if not hit:
        return []
    measured = float(hit)
    floor = round(measured - CACHE_MARGIN, 2)
    if floor > 0:
        return [f"    min_cache_hit_rate: {floor}   # measured {measured:.2f}"]
    why = (
        f"measured {measured:.2f}, so the floor (measured - {CACHE_MARGIN:g}) would be 0.0, "
        "which cannot fail"
    )
    return [f"    # min_cache_hit_rate: not proposed: {why}"]


@dataclass(frozen=True)
class Target:
    """The proposed target_model, why (when it is not plain), and the escalation rule."""

    model: str
    why: tuple[str, ...] = ()  # comment lines above `target_model:`
    escalation_models: tuple[str, ...] | None = None  # None: any model but the target
    no_escalation_models: str = ""  # why no escalation budget is proposed


def choose_target(items: Sequence[Sample], spend: EndpointStats, book: PriceBook) -> Target:
    """The model an endpoint is for: the one doing its work in most cases.

    Models called in more than half the cases are the endpoint's own (the others are
    escalations or exceptions); of those, the one with the most cost. A cheaper model
    called in most cases besides it (a router, a classifier, a first step) is then not
    an escalation: ``escalation_models`` lists the pricier models instead. With a model
    nothing prices, costs cannot be compared: the model of most calls. When the target
    is not both the model of most calls and of most cost, a comment says which are.
    """
    calls = Counter(s.model for s in items)
    cases: dict[str, set[str]] = defaultdict(set)
    for s in items:
        cases[s.model].add(s.case_id)
    every_case = {s.case_id for s in items}
    if spend.unpriced or len(calls) == 1:
        return Target(max(calls, key=lambda model: calls[model]))  # the first of equals
    cost = {model: sum(spend.tier_costs.get(model, {}).values(), Fraction(0)) for model in calls}
    own = [model for model in calls if 2 * len(cases[model]) > len(every_case)]
    if len(own) == 1:
        rule = "the model called in more than half the cases"
    elif own:
        rule = "of the models called in more than half the cases, the one of most cost"
    else:
        own, rule = list(calls), "no model is called in more than half the cases: most cost"
    target = max(own, key=lambda model: (cost[model], calls[model]))
    total = sum(cost.values()) or Fraction(1)

    def facts(model: str) -> str:
        return (
            f"{_count(calls[model], 'call')} in {len(cases[model])} of {len(every_case)} cases, "
            f"{float(cost[model] / total):.0%} of the cost"
        )

    why: list[str] = []
    most_calls = max(calls.values())
    costliest = max(calls, key=lambda model: cost[model])
    leader = next(m for m in calls if calls[m] == most_calls)  # the first of equals
    fewer = calls[target] < most_calls
    if fewer or costliest != target:
        why.append(f"target_model: {target} ({facts(target)}): {rule}")
        if fewer:
            label = "most calls and most cost" if leader == costliest else "most calls"
            why.append(f"{label}: {leader} ({facts(leader)})")
        if costliest != target and not (fewer and leader == costliest):
            why.append(f"most cost: {costliest} ({facts(costliest)})")
    rate = _rates(book.lookup(target))
    cheaper = [m for m in own if not book.same_model(m, target) and _rates(book.lookup(m)) < rate]
    if not cheaper:
        return Target(target, tuple(why))
    pricier = tuple(
        m for m in calls if not book.same_model(m, target) and _rates(book.lookup(m)) > rate
    )
    routers = ", ".join(sorted(cheaper))
    if pricier:
        why.append(
            f"{routers}: cheaper, called in most cases (a router or a first step?), so not an "
            "escalation: escalation_models names the pricier models"
        )
        return Target(target, tuple(why), pricier)
    return Target(
        target,
        tuple(why),
        no_escalation_models=f"{routers} (cheaper, called in most cases: a router or a first "
        f"step?) would count as an escalation, and no model pricier than {target} was "
        "called: name the escalation models in escalation_models first",
    )


def _rates(price: Price | None) -> tuple[Fraction, Fraction]:
    return (price.input, price.output) if price is not None else (Fraction(0), Fraction(0))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _money(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".")


def formats_by_endpoint(
    samples: dict[str, list[Sample]], analysis: Analysis
) -> dict[str, Counter[str]]:
    """Which recorders' formats each endpoint's files were in (for the proposal's comments)."""
    by_path = {c.path.as_posix(): c.format for c in analysis.found}
    return {
        name: Counter(by_path[t] for t in {s.test_id for s in items})
        for name, items in samples.items()
    }
