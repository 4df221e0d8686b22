from fractions import Fraction

import pytest

from pytest_tokenbudget.errors import PricingError
from pytest_tokenbudget.measure.samples import Sample
from pytest_tokenbudget.measure.stats import endpoint_stats, percentiles
from pytest_tokenbudget.pricing.prices import PriceBook, source_name
from pytest_tokenbudget.providers.usage import Usage


@pytest.mark.parametrize(
    ("n", "pct", "expected"),
    [
        (100, 95, 95),
        (100, 99, 99),
        (100, 50, 50),
        (20, 95, 19),
        (10, 50, 5),
        (1, 95, 1),
        (3, 50, 2),
    ],
)
def test_percentiles_are_nearest_rank(n, pct, expected):
    metrics = {}
    percentiles(list(range(n, 0, -1)), "v", metrics)  # in no order: stats counts each value
    assert metrics[f"v_p{pct}"] == expected
    assert metrics["v_max"] == n


def nearest_rank(sorted_values: list[int], pct: int) -> int:
    """The reference the figures are checked against: the smallest value with at least pct%
    of the values at or below it, read off the sorted values."""
    rank = -(-pct * len(sorted_values) // 100)  # ceil without floats
    return sorted_values[max(rank, 1) - 1]


def sample(case, model, **usage):
    return Sample("ep", case, f"t::{case}", 0, model, Usage(**usage))


@pytest.mark.parametrize("cases_without_calls, requests", [("exclude", 2), ("count", 3)])
def test_whole_prompt_rates_and_costs(cases_without_calls, requests):
    samples = [
        sample(
            "a", "claude-sonnet-4-6", input_tokens=100, cache_write_5m_tokens=1000, output_tokens=50
        ),
        sample("a", "claude-opus-4-7", input_tokens=100, cache_read_tokens=1000, output_tokens=200),
        sample(
            "b", "claude-sonnet-4-6", input_tokens=300, cache_read_tokens=1000, output_tokens=10
        ),
    ]
    stats = endpoint_stats(
        "ep",
        samples,
        ["a", "b", "c"],  # c ran but made no call: left out, or a $0 request
        book=PriceBook(),
        target_model="claude-sonnet-4-6",
        requests_per_day=1000,
        cases_without_calls=cases_without_calls,
    )
    assert (stats.cases, stats.requests, stats.no_call_cases) == (3, requests, ["c"])
    m = stats.metrics
    # caching never shrinks the prompt: 1100, 1100, 1300
    assert (m["input_tokens_p50"], m["input_tokens_max"]) == (1100, 1300)
    assert m["output_tokens_p95"] == 200
    assert m["cache_hit_rate"] == Fraction(2000, 3500)
    assert m["escalation_rate"] == Fraction(1, requests)
    sonnet_a = Fraction(100 * 3 + 1000 * Fraction("3.75") + 50 * 15, 10**6)
    opus_a = Fraction(100 * 5 + 1000 * Fraction("0.5") + 200 * 25, 10**6)
    sonnet_b = Fraction(300 * 3 + 1000 * Fraction("0.3") + 10 * 15, 10**6)
    total = sonnet_a + opus_a + sonnet_b
    assert stats.per_case["a"].cost == sonnet_a + opus_a
    assert m["cost_per_call_usd"] == total / 3  # 3 calls either way
    assert m["cost_per_request_usd"] == total / requests
    assert m["monthly_cost_usd"] == total / requests * 1000 * 30


def test_escalation_models_list_and_batch():
    samples = [
        sample("a", "claude-haiku-4-5", input_tokens=1000, output_tokens=1000),
        sample("b", "claude-sonnet-4-6", input_tokens=1000, output_tokens=1000),
    ]
    stats = endpoint_stats(
        "ep", samples, [], book=PriceBook(), escalation_models=["claude-opus-4-7"], batch=True
    )
    assert stats.metrics["escalation_rate"] == 0
    assert stats.cost_total == Fraction(1000 * 6 + 1000 * 18, 10**6) / 2


def test_no_rule_no_calls():
    stats = endpoint_stats("ep", [], ["a"], book=PriceBook())
    assert stats.calls == 0 and stats.cases == 1
    assert stats.metrics["input_tokens_p95"] is None
    assert stats.metrics["escalation_rate"] is None
    assert stats.metrics["cost_per_request_usd"] is None  # no case made a call: no request
    counted = endpoint_stats("ep", [], ["a"], book=PriceBook(), cases_without_calls="count")
    assert counted.metrics["cost_per_request_usd"] == 0  # one $0 request


def test_unpriced_models_leave_every_dollar_figure_they_touch_unknown():
    samples = [
        sample("a", "claude-sonnet-4-6", input_tokens=100, output_tokens=10),
        sample("b", "mystery-9", input_tokens=200, output_tokens=20),
        sample("b", "claude-sonnet-4-6", input_tokens=100, output_tokens=10),
        sample("c", "mystery-9", input_tokens=300, output_tokens=30),
    ]
    with pytest.raises(PricingError, match="no price for model 'mystery-9'"):
        endpoint_stats("ep", samples, ["a", "b", "c"], book=PriceBook())
    stats = endpoint_stats(
        "ep",
        samples,
        ["a", "b", "c"],
        book=PriceBook(),
        target_model="claude-sonnet-4-6",
        requests_per_day=10,
        strict=False,
    )
    assert stats.unpriced == {"mystery-9": ["b", "c"]}
    assert stats.calls == 4 and stats.metrics["input_tokens_max"] == 300  # tokens still count
    assert stats.metrics["escalation_rate"] == Fraction(2, 3)
    for metric in ("cost_per_call_usd", "cost_per_request_usd", "monthly_cost_usd"):
        assert stats.metrics[metric] is None
    assert stats.cost_total is None
    assert stats.per_case["a"].cost == Fraction(100 * 3 + 10 * 15, 10**6)
    assert stats.per_case["b"].cost is None and stats.per_case["c"].cost is None
    assert stats.price_sources == {"claude-sonnet-4-6": source_name()}


# -- the same numbers as the obvious computation, whatever the order and grouping ---------
MODELS = ("claude-sonnet-4-6", "claude-opus-4-7", "claude-haiku-4-5")


def _random_samples(seed: int) -> list[Sample]:
    import random

    rng = random.Random(seed)
    out = []
    for i in range(rng.randint(1, 80)):
        case = f"c{rng.randint(0, 9)}"
        usage = Usage(
            rng.randint(0, 5000),
            rng.randint(0, 900),
            rng.choice((0, 1200)),
            rng.choice((0, 0, 77)),
            rng.choice((0, 2400)),
        )
        out.append(
            Sample(
                "ep",
                case,
                f"t{rng.randint(0, 2)}::{case}",
                i % 4,
                rng.choice(MODELS),
                usage,
                batch=rng.random() < 0.2,
                input_only=rng.random() < 0.1,
            )
        )
    return out


@pytest.mark.parametrize("seed", range(25))
def test_figures_equal_the_per_sample_computation(seed):
    samples = _random_samples(seed)
    book = PriceBook()
    stats = endpoint_stats(
        "ep",
        samples,
        ["c0", "c1"],
        book=book,
        target_model=MODELS[0],
        requests_per_day=1000,
        batch=seed % 3 == 0,
    )
    prompts = sorted(s.usage.prompt_tokens for s in samples)
    outputs = sorted(s.usage.output_tokens for s in samples if not s.input_only)
    for pct in (50, 90, 95, 99):
        assert stats.metrics[f"input_tokens_p{pct}"] == nearest_rank(prompts, pct)
        assert stats.metrics[f"output_tokens_p{pct}"] == (
            nearest_rank(outputs, pct) if outputs else None
        )
    assert stats.metrics["input_tokens_max"] == prompts[-1]
    assert stats.prompt_tokens == [s.usage.prompt_tokens for s in samples]  # call order
    assert stats.call_cases == [s.case_id for s in samples]
    per_case: dict[str, Fraction] = {}
    for s in samples:  # one Fraction per call: the reference
        cost = book.price(s.model).cost(s.usage, batch=s.batch or seed % 3 == 0)
        per_case[s.case_id] = per_case.get(s.case_id, Fraction(0)) + cost
    assert stats.cost_total == sum(per_case.values(), Fraction(0))
    assert {c: v.cost for c, v in stats.per_case.items() if v.calls} == per_case
    assert sum(sum(t.values(), Fraction(0)) for t in stats.tier_costs.values()) == stats.cost_total
    assert list(stats.models) == list(dict.fromkeys(s.model for s in samples))


def test_tests_in_any_order_sort_as_a_serial_run_collects_them():
    from pytest_tokenbudget.measure.samples import case_samples, in_test_order

    samples = _random_samples(3)
    reference = sorted(samples, key=lambda s: (s.test_id, s.index))  # the old sort, per sample
    parts = case_samples(samples)
    ordered = [s for part in in_test_order(parts[::-1]) for s in part.samples()]
    assert sorted(ordered, key=lambda s: (s.test_id, s.index)) == ordered
    assert sorted(map(repr, ordered)) == sorted(map(repr, reference))
    # one test whose calls came in two pieces with interleaving indices
    a = Sample("ep", "x", "t::x", 0, MODELS[0], Usage(1, 1))
    b = Sample("ep", "x", "t::x", 0, MODELS[1], Usage(2, 2))
    c = Sample("ep", "x", "t::x", 1, MODELS[0], Usage(3, 3))
    mixed = in_test_order(case_samples([a, c]) + case_samples([b]))
    assert [s for p in mixed for s in p.samples()] == sorted([a, c, b], key=lambda s: s.index)
