"""`tokenbudget analyze DIR`: propose budgets from the cassettes a team already has.

Every recorder's files under DIR are read (providers/recorders.py: vcrpy, pydantic-ai, Ruby VCR,
R vcr, batch results), their calls parsed (providers/usage.py) and grouped into the endpoints a
team would write: by default one per cassette folder, which is the test module in
pytest-recording's ``tests/cassettes/<module>/<test>.yaml`` and the endpoint in this
plugin's ``cassettes/<endpoint>/<case>.yaml``; ``--by file`` or ``--by model`` group
otherwise. The proposal is the measured value plus headroom, rounded to a readable
number, printed as a token_budgets.yml that `tokenbudget check` accepts. Every file it
could not use is named with the reason.

Model names come from the recorded responses and file names from the folder: in the
proposal each is a YAML scalar written by the YAML emitter (it reads back as itself,
whatever its characters), and in a comment or a printed line its control characters are
escapes (plain_text), so none can end its line and start another.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pytest_tokenbudget.config.budgets import MAX_ENDPOINT_NAME_LENGTH
from pytest_tokenbudget.errors import CassetteError
from pytest_tokenbudget.formatting import nice_ceiling
from pytest_tokenbudget.measure.samples import SAMPLE_KINDS, Sample
from pytest_tokenbudget.measure.stats import EndpointStats, endpoint_stats
from pytest_tokenbudget.plain_text import one_line
from pytest_tokenbudget.pricing.prices import PriceBook
from pytest_tokenbudget.providers import bedrock
from pytest_tokenbudget.providers.recorders import (
    FORMATS,
    Exchange,
    NotACassetteError,
    read_recording,
)
from pytest_tokenbudget.providers.usage import PROVIDERS, Call, Usage, decode_body, parse_provider

GROUPINGS = ("folder", "file", "model")
SUFFIXES = frozenset({".yaml", ".yml", ".json", ".jsonl", ".ndjson"})
_UNSEARCHED = frozenset({"__pycache__", "node_modules", "site-packages"})
_ENDPOINT_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")  # as the config schema says


@dataclass(frozen=True)
class Skipped:
    """A file analyze could not use, and why."""

    path: str
    reason: str  # "unreadable: ...", "no usage: ...", "not a cassette: ..."
    line: int | None = None

    def __str__(self) -> str:
        return one_line(f"{self.path}{f':{self.line}' if self.line else ''}: {self.reason}")


@dataclass(frozen=True)
class CassetteCalls:
    """The calls with usage in one file, each with the case it belongs to."""

    path: Path  # relative to DIR
    format: str  # a key of recorders.FORMATS
    calls: tuple[tuple[str, Call], ...]
    left_out: tuple[str, ...] = ()  # calls that carried no usage


@dataclass
class Analysis:
    found: list[CassetteCalls] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def files(self) -> int:
        return len(self.found) + len(self.skipped)


# -- reading ----------------------------------------------------------------------------
def cassette_files(directory: Path) -> list[Path]:
    """Every file under DIR a recorder may have written; hidden and package folders left out."""
    found = []
    for path in directory.rglob("*"):
        parts = path.relative_to(directory).parts[:-1]
        if any(p.startswith(".") or p in _UNSEARCHED for p in parts):
            continue
        if path.suffix.lower() in SUFFIXES and not path.name.startswith(".") and path.is_file():
            found.append(path)
    return sorted(found)


def analyze(directory: Path) -> Analysis:
    analysis = Analysis()
    for path in cassette_files(directory):
        result = read_calls(path, directory)
        if isinstance(result, Skipped):
            analysis.skipped.append(result)
        else:
            analysis.found.append(result)
    return analysis


def read_calls(path: Path, directory: Path) -> CassetteCalls | Skipped:
    """The calls with usage in one file, or why there are none."""
    relative = path.relative_to(directory)
    shown = relative.as_posix()
    try:
        recording = read_recording(path)
    except NotACassetteError as err:
        return Skipped(shown, f"not a cassette: {err.message}", err.line)
    except CassetteError as err:
        return Skipped(shown, f"unreadable: {err.message}", err.line)
    case_id = relative.with_suffix("").as_posix()
    calls: list[tuple[str, Call]] = []
    empty: list[str] = []
    left_out: list[str] = []
    for index, exchange in enumerate(recording.exchanges):
        case = f"{case_id}:{recording.request_ids[index]}" if recording.request_ids else case_id
        try:
            found = _api_calls(exchange)
        except CassetteError as err:
            other = _other_models_stream(exchange)
            if other:  # a valid recording of a format no parser here reads
                empty.append(other)
                continue
            return Skipped(
                shown, f"unreadable: interaction {index}: {err.message}", recording.line_of(index)
            )
        if found is None:
            empty.append(_not_an_api_call(exchange))
        elif not found:
            empty.append(_no_call(exchange))
        for call in found or ():
            if call.kind not in SAMPLE_KINDS:
                empty.append(f"{call.kind} only (counts the prompt, generates nothing)")
            elif call.note and call.usage == Usage():
                left_out.append(call.note)
            else:
                calls.append((case, call))
    if not calls:
        return Skipped(shown, "no usage: " + _summary(left_out + empty))
    return CassetteCalls(relative, recording.format, tuple(calls), tuple(left_out))


def _api_calls(exchange: Exchange) -> list[Call] | None:
    """The calls of an exchange; None when it is not an API call any provider knows."""
    for provider in PROVIDERS:
        calls = parse_provider(exchange, provider)
        if calls is not None:
            return calls
    return None


_BATCHES = re.compile(r"/v1/(?:messages/)?batches(?P<id>/[^/]+)?(?P<op>/cancel)?$")
_BEDROCK_INVOKE = re.compile(r"/model/(?P<model>[^/]+)/invoke-with-response-stream$")


def _other_models_stream(exchange: Exchange) -> str:
    """Why a Bedrock InvokeModel stream of a model that is not Claude has no usage here
    (its chunks are that model's own format, and Bedrock's invocation metrics are absent);
    "" for any other exchange."""
    found = _BEDROCK_INVOKE.search(urlsplit(exchange.url).path)
    model = unquote(found["model"]) if found else ""
    if not model or bedrock.bedrock_model(model) is not None or model.startswith("arn:"):
        return ""
    return (
        f"Bedrock stream of {model} (not a Claude model) without usage "
        "(no amazon-bedrock-invocationMetrics in its chunks)"
    )


def _not_an_api_call(exchange: Exchange) -> str:
    path = urlsplit(exchange.url).path.rstrip("/") or exchange.url
    batch = _BATCHES.search(path)
    if batch and batch["op"]:
        return "batch cancel"
    if batch and batch["id"]:
        return "batch status (usage comes with the batch results)"
    if batch and exchange.method == "POST":
        return "batch create (usage comes with the batch results)"
    if batch:
        return "batch list"
    return f"not an API call ({exchange.method} {path})"


def _no_call(exchange: Exchange) -> str:
    """Why an API call's response holds no call: an error, or a batch request that failed."""
    if not 200 <= exchange.status < 300:
        return f"error response (HTTP {exchange.status})"
    try:
        body = decode_body(exchange.headers, exchange.body)
    except CassetteError:
        body = exchange.body
    if bedrock.is_event_stream(body):
        return f"stream ended in an exception ({_exception_type(body)})"
    if body.lstrip().startswith((b"event:", b"data:")):
        return "stream ended in an error event"
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        data = None
    result = data.get("result") if isinstance(data, dict) else None
    if isinstance(result, dict):
        return f"batch request {result.get('type') or 'without a result'}"
    if "/batches/" in exchange.url:
        return "batch results with no succeeded request"
    return "error response (in the body)"


def _exception_type(body: bytes) -> str:
    """The exception an AWS event stream ended in, as its frame names it."""
    try:
        frames, _cut = bedrock.decode_frames(body)
    except CassetteError:
        frames = []
    for frame in frames:
        if frame.headers.get(":message-type") in ("exception", "error"):
            kind = frame.headers.get(":exception-type") or frame.headers.get(":error-code")
            return str(kind or "error")
    return "error"


def _summary(reasons: Iterable[str]) -> str:
    counts = Counter(reasons)
    if not counts:
        return "no interactions"
    return "; ".join(r if n == 1 else f"{r} ×{n}" for r, n in counts.items())


# -- grouping ---------------------------------------------------------------------------
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


def _yaml_str(text: str) -> str:
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
        lines += [f"  {_yaml_str(name)}:", f"    # {about}"]
        if priced:
            lines += [f"    # {_comment(why)}" for why in choice.why]
            lines.append(f"    target_model: {_yaml_str(target)}")
            if choice.escalation_models:
                listed = ", ".join(_yaml_str(e) for e in choice.escalation_models)
                lines.append(f"    escalation_models: [{listed}]")
        else:
            lines.append(
                f"    # target_model: {_yaml_str(target)}   # no price: add it to `pricing:`"
            )
            notes.append(
                f"{name}: {target} has no price (genai-prices, `pricing:`), so target_model is "
                f"commented out and costs are left out; add `pricing: {{{_yaml_str(target)}: "
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


def _escalation_lines(rate: Any, stats: EndpointStats, choice: Target) -> list[str]:
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


def _cache_lines(hit: Any) -> list[str]:
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


def _rates(price: Any) -> tuple[Fraction, Fraction]:
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


# -- command ----------------------------------------------------------------------------
def add_analyze_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "analyze",
        help="propose budgets from existing cassettes",
        description="Read the cassettes under DIR (vcrpy/pytest-recording YAML or JSON, "
        "pydantic-ai, Ruby VCR, R vcr, batch results JSONL) and print a token_budgets.yml "
        "with proposed budgets. Files it cannot use are listed on stderr with the reason.",
    )
    parser.add_argument("directory", type=Path, metavar="DIR")
    parser.add_argument(
        "--by",
        choices=GROUPINGS,
        default="folder",
        help="one endpoint per cassette folder (default: pytest-recording's test module, "
        "this plugin's endpoint), per cassette file (one test), or per model",
    )
    parser.add_argument(
        "--headroom",
        type=float,
        default=20.0,
        metavar="PCT",
        help="headroom over the measured values (default 20)",
    )
    parser.set_defaults(func=cmd_analyze)
    return parser


def cmd_analyze(args: argparse.Namespace) -> int:
    directory: Path = args.directory
    if not directory.is_dir():
        print(f"tokenbudget analyze: {one_line(directory)}: not a directory", file=sys.stderr)
        return 2
    if args.headroom < 0 or not math.isfinite(args.headroom):
        print("tokenbudget analyze: --headroom must be 0 or more", file=sys.stderr)
        return 2
    analysis = analyze(directory)
    err = sys.stderr
    print(
        f"tokenbudget analyze: {one_line(directory)}: {_count(analysis.files, 'file')} read, "
        f"{len(analysis.found)} with usage, {len(analysis.skipped)} skipped",
        file=err,
    )
    for skipped in analysis.skipped:
        print(f"  skipped {skipped}", file=err)  # Skipped writes itself on one line
    if not analysis.found:
        print(
            f"tokenbudget analyze: no API calls with usage found under {one_line(directory)}",
            file=err,
        )
        return 2
    samples = group(analysis, by=args.by, root=endpoint_name(directory.resolve().name))
    text, notes = propose(
        samples,
        headroom_pct=args.headroom,
        formats=formats_by_endpoint(samples, analysis),
        header=[_comment(f"# tokenbudget analyze {directory.as_posix()} --by {args.by}")],
    )
    sys.stdout.write(text)
    for cassette in analysis.found:
        if cassette.left_out:
            notes.append(f"{cassette.path.as_posix()}: left out: {_summary(cassette.left_out)}")
    for note in notes:
        print(f"# note: {one_line(note)}")
    return 0
