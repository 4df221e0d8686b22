"""Metric facts live in one table (metrics.py), and everything that judges or shows a
metric reads them there: the gate, the diff, Markdown and the ratchet. The recorded and
predicted cache-hit rates never disagree without a note saying why."""

from __future__ import annotations

import copy
import json

from project_files import copy_example
from reports import BASE, budget, compared, report

from pytest_tokenbudget.cache.prediction import CacheTotals
from pytest_tokenbudget.config.budgets import BUDGET_KEYS
from pytest_tokenbudget.measure import metrics
from pytest_tokenbudget.measure.evaluation import EndpointCache, cache_note
from pytest_tokenbudget.measure.samples import Sample
from pytest_tokenbudget.measure.stats import endpoint_stats
from pytest_tokenbudget.pricing.prices import PriceBook
from pytest_tokenbudget.providers.usage import Usage
from pytest_tokenbudget.report.json_io import report_from_json
from pytest_tokenbudget.report.markdown import metric_label, render_diff_markdown
from pytest_tokenbudget.report.ratchet import plan_update


def test_every_metric_the_plugin_computes_has_its_facts():
    stats = endpoint_stats(
        "chat",
        [Sample("chat", "a", "t::a", 0, "claude-sonnet-4-6", Usage(10, 5))],
        ["a"],
        book=PriceBook({}),
        target_model="claude-sonnet-4-6",
        requests_per_day=10,
    )
    computed = set(stats.metrics) | {"predicted_cache_hit_rate"}  # session adds the prediction
    assert computed <= set(metrics.METRICS), computed - set(metrics.METRICS)
    for name in computed:
        facts = metrics.METRICS[name]
        assert facts.better in (metrics.LOWER, metrics.HIGHER)
        assert facts.unit in (metrics.TOKENS, metrics.RATE, metrics.USD)
        assert facts.label and facts.label != name, name


def test_a_budget_is_a_minimum_exactly_where_higher_is_better():
    for key, (metric, kind) in BUDGET_KEYS.items():
        assert (kind == "min") == metrics.metric(metric).higher_is_better, key


def test_directions_are_the_ones_that_cost_money():
    higher = {name for name, m in metrics.METRICS.items() if m.higher_is_better}
    assert higher == {"cache_hit_rate", "predicted_cache_hit_rate"}


def test_an_unknown_metric_is_shown_but_never_gated():
    facts = metrics.metric("reasoning_tokens_p95")
    assert facts.better is None and facts.label == "reasoning_tokens_p95"
    base = report({"chat": {"status": "pass", "metrics": {"reasoning_tokens_p95": 10}}}, None)
    head = report({"chat": {"status": "pass", "metrics": {"reasoning_tokens_p95": 90}}}, None)
    diff = compared(base, head, max_regression_pct=10)
    (row,) = diff.endpoints[0].metrics
    assert (row.trend, row.status, row.changed) == ("changed", "ok", True)
    assert not diff.failed


def test_predicted_cache_hit_rate_rising_is_better_not_a_regression():
    base = copy.deepcopy(BASE)
    base["endpoints"]["chat"]["metrics"]["predicted_cache_hit_rate"] = 0.5
    head = copy.deepcopy(BASE)
    head["endpoints"]["chat"]["metrics"]["predicted_cache_hit_rate"] = 0.9
    diff = compared(base, head, max_regression_pct=10)
    row = next(m for _, m in diff.rows() if m.metric == "predicted_cache_hit_rate")
    assert (row.trend, row.status) == ("better", "ok")
    assert not diff.failed
    # and falling is the regression
    worse = compared(head, base, max_regression_pct=10)
    row = next(m for _, m in worse.rows() if m.metric == "predicted_cache_hit_rate")
    assert (row.trend, row.status) == ("worse", "regression")
    text = render_diff_markdown(worse)
    assert "| predicted cache-hit rate |" in text
    assert "predicted_cache_hit_rate" not in text and "predicted\\_cache" not in text


def test_markdown_labels_come_from_the_facts():
    for name, facts in metrics.METRICS.items():
        assert metric_label(name).replace("\\", "") == facts.label


def test_the_ratchet_tightens_a_predicted_minimum_upwards():
    class Endpoint:
        min_samples, cases = 1, ()

    class Config:
        def __init__(self) -> None:
            self.endpoints = {"ep": Endpoint()}

    ep = {
        "status": "pass",
        "calls": 30,
        "problems": [],
        "budgets": [
            {**budget("min_cache_hit_rate", "predicted_cache_hit_rate", 0.2, 0.8, 3)},
            {**budget("max_input_tokens_p95", "input_tokens_p95", 9000, 3310, 4)},
        ],
    }
    report = report_from_json({"endpoints": {"ep": ep}})
    plan = plan_update(report, Config(), [], margin_pct=10, loosen=False)  # type: ignore[arg-type]
    assert [(c.key, c.new) for c in plan.changes] == [
        ("min_cache_hit_rate", 0.72),
        ("max_input_tokens_p95", 3700),
    ]


# -- recorded and predicted cache figures ----------------------------------------------------
def _cache(recorded: float, predicted: float, *, calls: int = 10, predicted_calls: int = 10):
    """Cache figures whose hit rates are `recorded` and `predicted` (of 1,000 prompt tokens)."""

    def totals(n: int, rate: float) -> CacheTotals:
        return CacheTotals(n, 1000, round(rate * 1000), 0, 0)

    return EndpointCache(totals(calls, recorded), totals(predicted_calls, predicted), "recorded")


def test_cache_rates_that_agree_need_no_note():
    assert cache_note(_cache(0.846, 0.846), 2000) == ""
    assert cache_note(_cache(0.80, 0.76), 2000) == ""  # within 5 points


def test_sparse_traffic_explains_a_lower_prediction():
    note = cache_note(_cache(0.846, 0.0), 10, checked=True)
    assert note.startswith("cache-hit rate recorded 84.6%, predicted 0.0%: ")
    assert "a request comes every 8,640 s, longer than the cache lives (5 min)" in note
    assert note.endswith("(min_cache_hit_rate checks the recorded rate)")


def test_changed_prompts_and_warm_traffic_explain_the_others():
    note = cache_note(_cache(0.2, 0.7, calls=6, predicted_calls=10), None)
    assert "4 of 10 calls no longer match the prompt they were recorded with" in note
    assert "all at once" in note and "later requests read what earlier ones wrote" in note
    assert "min_cache_hit_rate" not in note  # no such budget on this endpoint


def test_the_run_says_why_when_they_disagree(pytester):
    text = copy_example(pytester.path).replace("requests_per_day: 2000", "requests_per_day: 10")
    (pytester.path / "token_budgets.yml").write_text(text)
    pytester.syspathinsert()
    result = pytester.runpytest("--token-budget", "-p", "no:cacheprovider")
    assert result.ret == 0
    out = pytester.path / ".token-budget"
    chat = json.loads((out / "report.json").read_text())["endpoints"]["chat_reply"]
    assert (
        chat["cache"]["recorded"]["hit_rate"] > 0.8 and chat["cache"]["predicted"]["hit_rate"] < 0.1
    )
    note = chat["cache"]["note"]
    assert note in chat["warnings"] and "every 8,640 s" in note
    result.stdout.fnmatch_lines(
        ["warn chat_reply: cache-hit rate recorded 84.6%, predicted 0.0%: *"]
    )
    assert "every 8,640 s" in (out / "report.md").read_text()
    assert 'data-role="cache-note"' in (out / "report.html").read_text()
