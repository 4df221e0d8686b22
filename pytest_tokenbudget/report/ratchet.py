"""`--token-budget-update`: tighten token_budgets.yml to what this run measured, plus a margin.

In: the run's report (each budget's key, metric, limit, actual and verdict), the loaded
config (min_samples, cases) and which cases ran. Out: the file rewritten through
ruamel.yaml's round trip, so its comments, key order, quoting and blank lines stay, and
the lines that say what changed. A `max_*` budget moves down to measured × (1 + margin),
a `min_*` one up to measured × (1 − margin), each rounded to a number a person would
write and never past what was measured. A broken budget is never loosened unless asked
(`--token-budget-update=loosen`). Only the controller writes (xdist workers return
before the end of the run).
"""

from __future__ import annotations

import difflib
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_tokenbudget.formatting import nice_ceiling
from pytest_tokenbudget.measure.metrics import MONEY_DIGITS, RATE_DIGITS
from pytest_tokenbudget.measure.metrics import metric as metric_facts
from pytest_tokenbudget.report.model import BudgetCheck, EndpointReport, Report, UpdateVerdict
from pytest_tokenbudget.report.reader import NOT_RUN

if TYPE_CHECKING:
    from pytest_tokenbudget.config.budgets import Config, Endpoint
    from pytest_tokenbudget.measure.samples import CaseRun

DEFAULT_MARGIN_PCT = 10.0
RATE_PLACES = 2  # allowed_escalation_rate: 0.15
USD_DIGITS = 2  # significant digits of a dollar budget: 0.0018, 110
ARROW = "→"


# -- the plan: pure, from the report ------------------------------------------------------
@dataclass(frozen=True)
class Change:
    """One budget, moved (or, when held, the move that was not made)."""

    endpoint: str
    key: str
    metric: str
    kind: str  # "max" tightens downwards, "min" upwards
    old: int | float  # the limit this run checked
    new: int | float  # what is written
    measured: int | float
    loosened: bool = False
    line: int = 0  # of the key: in the rewritten file once written, else in the run's file
    from_defaults: int | None = None  # line in `defaults:` when the endpoint inherited it


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)
    held: list[Change] = field(default_factory=list)  # broken, left as they were
    skipped: list[tuple[str, str]] = field(default_factory=list)  # endpoint, why
    unchanged: int = 0  # measured, and already within the margin
    notes: list[str] = field(default_factory=list)


def plan_update(
    report: Report,
    config: Config,
    case_runs: Iterable[CaseRun],
    *,
    margin_pct: float,
    loosen: bool,
) -> Plan:
    """What to write, endpoint by endpoint; nothing is read from or written to disk."""
    plan = Plan()
    runs = list(case_runs)
    for ep in report.endpoints:
        name = ep.name
        endpoint = config.endpoints.get(name)
        if endpoint is None:
            continue
        why = _not_measured(ep, endpoint, runs)
        if why:
            plan.skipped.append((name, why))
            continue
        for budget in ep.budgets:
            if budget.ok is None or budget.actual is None:
                continue  # not measurable in this run: the report says why
            change = _propose(name, budget, margin_pct)
            if budget.ok is False:
                if loosen:
                    plan.changes.append(replace(change, loosened=True))
                else:
                    plan.held.append(change)
            elif _tighter(change):
                plan.changes.append(change)
            else:
                plan.unchanged += 1
    return plan


def _not_measured(ep: EndpointReport, endpoint: Endpoint, runs: list[CaseRun]) -> str:
    """Why an endpoint's figures are not a full measurement, or ''."""
    if ep.status == NOT_RUN:
        return "not run (deselected)"
    if ep.all_problems:
        return "its run has problems (see above)"
    mine = [r for r in runs if r.endpoint == ep.name]
    failed = sorted({r.case_id for r in mine if r.outcome == "failed"})
    if failed:
        return f"a test failed (cases: {', '.join(failed[:5])}): its calls may be incomplete"
    configured = [str(case["id"]) for case in endpoint.cases]
    seen = {r.case_id for r in mine}
    missing = [c for c in configured if c not in seen]
    if missing:
        return (
            f"{len(configured) - len(missing)} of its {len(configured)} cases ran "
            "(the others were deselected): run it whole to update it"
        )
    calls = ep.calls
    if calls < endpoint.min_samples:
        return (
            f"{calls} call{'s' if calls != 1 else ''}, below min_samples ({endpoint.min_samples})"
        )
    return ""


def _propose(name: str, budget: BudgetCheck, margin_pct: float) -> Change:
    """measured ± margin, rounded away from the measurement (never past it)."""
    assert budget.actual is not None  # plan_update proposes only for measured budgets
    unit, up = metric_facts(budget.metric).unit, budget.kind == "max"
    measured = Fraction(str(budget.actual))
    margin = Fraction(str(margin_pct)) / 100
    # The report rounds rates and dollars: the exact figure is within half a unit of it.
    digits = {"tokens": None, "rate": RATE_DIGITS, "usd": MONEY_DIGITS}[unit]
    slack = Fraction(1, 2 * 10**digits) if digits is not None else Fraction(0)
    if up:
        target = max(measured * (1 + margin), measured + slack)
    else:
        target = min(measured * (1 - margin), measured - slack)
    value = _round(target, unit, up=up)
    if unit == "rate":
        value = min(max(value, Fraction(0)), Fraction(1))
    return Change(
        endpoint=name,
        key=budget.key,
        metric=budget.metric,
        kind=budget.kind,
        old=budget.limit,
        new=_plain(value),
        measured=budget.actual,
        line=budget.line or 0,
    )


def _tighter(change: Change) -> bool:
    new, old = Fraction(str(change.new)), Fraction(str(change.old))
    return new < old if change.kind == "max" else new > old


def _round(value: Fraction, unit: str, *, up: bool) -> Fraction:
    """A number a person would write: 3,400 tokens, 0.15, $0.0018."""
    if unit == "tokens":
        if up:
            return Fraction(nice_ceiling(value))
        return _significant(value, 2, up=False, whole=True)
    if unit == "rate":
        step = Fraction(1, 10**RATE_PLACES)
        steps = math.ceil(value / step) if up else math.floor(value / step)
        return steps * step
    return _significant(value, USD_DIGITS, up=up)


def _significant(value: Fraction, digits: int, *, up: bool, whole: bool = False) -> Fraction:
    if value <= 0:
        return Fraction(0)
    exponent = math.floor(math.log10(value))
    while Fraction(10) ** exponent > value:  # log10 of a float can be off by one
        exponent -= 1
    while Fraction(10) ** (exponent + 1) <= value:
        exponent += 1
    step = Fraction(10) ** (exponent - digits + 1)
    if whole:
        step = max(step, Fraction(1))
    steps = math.ceil(value / step) if up else math.floor(value / step)
    return steps * step


def _plain(value: Fraction) -> int | float:
    """An int when whole (110), else the float of the decimal (0.0018)."""
    if value.denominator == 1:
        return int(value)
    return float(value)


def number_text(value: float) -> str:
    """How a limit is written in YAML: plain decimal, never 1e-05 (YAML 1.1 reads a string)."""
    if isinstance(value, int):
        return str(int(value))
    text = format(Decimal(repr(float(value))).normalize(), "f")
    return text if "." in text else text + ".0"


# -- the rewrite: ruamel.yaml round trip -------------------------------------------------
class _Decimal(float):
    """A float that ruamel.yaml writes as plain decimal text."""


def _yaml(text: str, doc: Any = None) -> Any:
    from ruamel.yaml import YAML

    yaml = YAML()  # round trip: comments, order, quotes, anchors
    yaml.preserve_quotes = True
    yaml.width = 100_000  # never fold a long line the author wrote on one
    yaml.representer.add_representer(
        _Decimal,
        lambda rep, value: rep.represent_scalar("tag:yaml.org,2002:float", number_text(value)),
    )
    if doc is not None:
        mapping, sequence, offset = _indents(doc)
        yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    first = next(
        (s for s in (ln.strip() for ln in text.splitlines()) if s and not s.startswith("#")), ""
    )
    yaml.explicit_start = first.startswith("---")
    return yaml


def _indents(doc: Any) -> tuple[int, int, int]:
    """The file's own indentation: mapping step, block-sequence step and dash offset."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    mapping = sequence = offset = None
    stack = [doc]
    while stack and (mapping is None or sequence is None):
        node = stack.pop(0)
        if not isinstance(node, CommentedMap):
            if isinstance(node, CommentedSeq):
                stack.extend(node)
            continue
        for key in _own_keys(node):  # keys a merge (<<) brings have no place here
            value, column = node[key], node.lc.key(key)[1]
            inner = _own_keys(value) if isinstance(value, CommentedMap) else []
            if inner and mapping is None and not value.fa.flow_style():
                mapping = value.lc.key(inner[0])[1] - column
            block = isinstance(value, CommentedSeq) and len(value) and not value.fa.flow_style()
            if block and sequence is None:
                offset = max(value.lc.col - column, 0)
                sequence = max(value.lc.item(0)[1] - column, offset + 2)
            stack.append(value)
    mapping = mapping if mapping and mapping > 0 else 2
    if sequence is None:
        sequence, offset = mapping, 0
    return mapping, sequence, offset or 0


def _insert_after(mapping: Any, after: str | None, key: str, value: Any) -> None:
    """Add a key after `after` (first when None); lines that followed `after` stay below."""
    from ruamel.yaml.tokens import CommentToken

    keys = list(mapping)
    mapping.insert(keys.index(after) + 1 if after is not None else 0, key, value)
    entry = mapping.ca.items.get(after) if after is not None else None
    token = entry[2] if entry and len(entry) > 2 else None
    if token is None or "\n" not in token.value:
        return
    head, tail = token.value.split("\n", 1)
    if tail:  # blank lines and comments below `after` belong above whatever came next
        token.value = head + "\n"
        mapping.ca.items[key] = [None, None, CommentToken("\n" + tail, token.start_mark), None]


def _own_keys(mapping: Any) -> list[str]:
    own = getattr(mapping, "_ok", None)
    return [k for k in mapping if own is None or k in own]


@dataclass
class Written:
    changes: list[Change]  # as written, with their lines in the new file
    notes: list[str]


def rewrite(path: Path, changes: list[Change]) -> Written:
    """Apply the changes to the file; every other value, comment and blank line stays."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    from pytest_tokenbudget.config.budgets import BUDGET_KEYS
    from pytest_tokenbudget.errors import ConfigError
    from pytest_tokenbudget.files.atomic import write_atomic

    text = path.read_text(encoding="utf-8-sig")
    doc = _yaml(text).load(text)
    yaml = _yaml(text, doc)
    doc = yaml.load(text)
    endpoints = doc.get("endpoints") if isinstance(doc, CommentedMap) else None
    defaults = doc.get("defaults") if isinstance(doc, CommentedMap) else None
    applied: list[Change] = []
    notes: list[str] = []
    for change in changes:
        mapping = endpoints.get(change.endpoint) if isinstance(endpoints, CommentedMap) else None
        if not isinstance(mapping, CommentedMap):
            notes.append(f"{change.endpoint}: no longer in the file: left as it is")
            continue
        own = _own_keys(mapping)
        inherited = change.key not in mapping
        if not inherited and change.key not in own:
            notes.append(
                f"{change.endpoint}.{change.key} comes through a YAML merge key (<<): "
                f"edit it by hand (measured {number_text(change.measured)}, "
                f"proposed {number_text(change.new)})"
            )
            continue
        current = (defaults or {}).get(change.key) if inherited else mapping[change.key]
        if not _same_number(current, change.old):
            notes.append(
                f"{change.endpoint}.{change.key} changed in the file during the run: left as it is"
            )
            continue
        value = _Decimal(change.new) if isinstance(change.new, float) else change.new
        if inherited:
            scalars = [k for k in own if not isinstance(mapping[k], (CommentedMap, CommentedSeq))]
            budgets = [k for k in scalars if k in BUDGET_KEYS]
            after = (budgets or scalars)[-1] if budgets or scalars else None
            _insert_after(mapping, after, change.key, value)
            change = replace(change, from_defaults=change.line)
        else:
            mapping[change.key] = value
        applied.append(change)
    if not applied:
        return Written([], notes)
    out = io.StringIO()
    yaml.dump(doc, out)
    new = out.getvalue()
    _same_data_but(text, new, applied, path)
    reloaded = yaml.load(new)["endpoints"]
    applied = [replace(c, line=reloaded[c.endpoint].lc.key(c.key)[0] + 1) for c in applied]
    others = _other_edits(text, new, applied)
    if others:
        notes.append(
            f"ruamel.yaml also re-indented or re-spaced {others} other line(s); "
            "the values are unchanged: review the diff"
        )
    try:  # the user's own file: it keeps its mode, and a symlink to it stays a symlink
        write_atomic(path, new, keep_mode=True, follow_symlinks=True)
    except OSError as err:
        raise ConfigError(f"cannot write: {err.strerror or err}", path=str(path)) from None
    return Written(applied, notes)


def _same_number(value: Any, limit: float) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return Fraction(str(value)) == Fraction(str(limit))


def _same_data_but(old: str, new: str, changes: list[Change], path: Path) -> None:
    """The rewritten file reads (as the plugin reads it) exactly as the old one plus changes."""
    import yaml

    from pytest_tokenbudget.errors import ConfigError

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    expected = yaml.load(old, Loader=loader)
    for change in changes:
        expected["endpoints"][change.endpoint][change.key] = change.new
    if yaml.load(new, Loader=loader) != expected:
        raise ConfigError(
            "could not rewrite it without changing other values; nothing was written",
            path=str(path),
        )


def _other_edits(old: str, new: str, changes: list[Change]) -> int:
    """Lines the round trip changed that no change asked for."""
    mine = {c.line for c in changes}
    count = 0
    matcher = difflib.SequenceMatcher(None, old.splitlines(), new.splitlines(), autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        ours = sum(1 for line in range(j1 + 1, j2 + 1) if line in mine)
        count += max(i2 - i1, j2 - j1) - ours
    return max(count, 0)


# -- the end of the run ------------------------------------------------------------------
def update_budgets(
    report: Report,
    config: Config,
    case_runs: Iterable[CaseRun],
    *,
    margin_pct: float | None,
    loosen: bool,
    shown: str,
) -> UpdateVerdict:
    """Plan, rewrite, and say what changed (old → new, per key, with file:line). Not ok
    when the file should have changed and could not be written: that fails the run."""
    from pytest_tokenbudget.errors import TokenBudgetError

    margin = DEFAULT_MARGIN_PCT if margin_pct is None else margin_pct
    plan = plan_update(report, config, case_runs, margin_pct=margin, loosen=loosen)
    written = Written([], [])
    ok = True
    failure = ""
    if plan.changes:
        try:
            written = rewrite(config.path, plan.changes)
        except TokenBudgetError as err:
            ok, failure = False, str(err)
        except Exception as err:  # noqa: BLE001 - ruamel.yaml refusing a file PyYAML read
            ok, failure = False, f"{shown}: cannot rewrite: {type(err).__name__}: {err}"
    lines = render(plan, written, shown=shown, margin_pct=margin, failure=failure)
    return UpdateVerdict(ok, failure, tuple(lines))


def render(
    plan: Plan, written: Written, *, shown: str, margin_pct: float, failure: str = ""
) -> list[str]:
    margin = f"{margin_pct:g}%"
    tightened = [c for c in written.changes if not c.loosened]
    loosened = [c for c in written.changes if c.loosened]
    lines = [""]
    if failure:
        lines.append(f"FAIL budget update: {failure}")
    elif tightened or loosened:
        parts = [f"{len(tightened)} tightened"] + (
            [f"{len(loosened)} LOOSENED"] if loosened else []
        )
        lines.append(f"budget update: {', '.join(parts)} in {shown} (measured ± {margin}):")
    elif plan.unchanged or plan.held:
        lines.append(
            f"budget update: nothing to tighten in {shown} "
            f"(each measured budget is already within the {margin} margin)"
        )
    else:
        lines.append(f"budget update: no endpoint in {shown} was measured fully enough to update")
    for c in tightened:
        lines.append(f"  {_where(c, shown)}: {_move(c)} (measured {_measured(c)}){_origin(c)}")
    for c in loosened:
        lines.append(
            f"LOOSENED {_where(c, shown)}: {_move(c)} (measured {_measured(c)} broke it){_origin(c)}"
            ": this budget now allows more than before, review it"
        )
    for c in plan.held:
        lines.append(
            f"  held {_where(c, shown)}: {number_text(c.old)} is broken "
            f"(measured {_measured(c)}): left as it is; --token-budget-update=loosen "
            f"would set {number_text(c.new)}"
        )
    for name, why in plan.skipped:
        lines.append(f"  skipped {name}: {why}")
    lines.extend(f"  note {note}" for note in plan.notes + written.notes)
    if loosened:
        lines.append(
            "LOOSENED budgets were broken in this run, and the run still fails; "
            "the next run checks the new values"
        )
    return lines


def _where(c: Change, shown: str) -> str:
    return f"{shown}:{c.line}: {c.endpoint}.{c.key}" if c.line else f"{shown}: {c.endpoint}.{c.key}"


def _move(c: Change) -> str:
    return f"{number_text(c.old)} {ARROW} {number_text(c.new)}"


def _measured(c: Change) -> str:
    from pytest_tokenbudget.formatting import metric

    return metric(c.metric, c.measured)


def _origin(c: Change) -> str:
    if c.from_defaults is None:
        return ""
    return f"; was inherited from defaults: (line {c.from_defaults}), now set in the endpoint"
