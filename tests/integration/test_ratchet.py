"""--token-budget-update: budgets tighten to what was measured plus a margin, the file kept.

End to end on a copy of the bundled example (its committed cassettes, replayed). The
expected values are worked out here from report.json with a separate small rounding
(Decimal), not with the plugin's own.
"""

from __future__ import annotations

import json
import re
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

import pytest
import ruamel.yaml  # noqa: F401  (loaded out here: pytester's in-process runs drop modules)
import yaml
from paths import REPO
from project_files import copy_example, use_light_sdk

from pytest_tokenbudget import cli
from pytest_tokenbudget.config.budgets import BUDGET_KEYS
from pytest_tokenbudget.report.json_io import report_from_json
from pytest_tokenbudget.report.model import Report
from pytest_tokenbudget.report.ratchet import (
    Change,
    Plan,
    Written,
    number_text,
    plan_update,
    render,
)

ROOT = REPO
EXAMPLE = ROOT / "examples" / "support_bot"
RUN = ("--token-budget", "-p", "no:cacheprovider")
UPDATE = (*RUN, "--token-budget-update")
ARROW = "→"


# -- the example, copied -------------------------------------------------------------------
def example(pytester: pytest.Pytester, *edits: tuple[str, str]) -> str:
    """The example project in the pytester dir; each edit replaces one text in its config."""
    text = copy_example(pytester.path)
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    (pytester.path / "token_budgets.yml").write_text(text)  # as is: no dedent, no strip
    pytester.syspathinsert()
    return text


def config_text(pytester: pytest.Pytester) -> str:
    return (pytester.path / "token_budgets.yml").read_text()


def report_of(pytester: pytest.Pytester) -> dict[str, Any]:
    return json.loads((pytester.path / ".token-budget" / "report.json").read_text())


LOOSE = (
    ("    max_input_tokens_p95: 1300\n", "    max_input_tokens_p95: 8000  # set at launch\n"),
    ("    target_model: claude-haiku-4-5\n", '    target_model: "claude-haiku-4-5"\n'),
    (
        "    min_samples: 5\n",
        "\n    # a small endpoint: fewer calls are enough\n    min_samples: 5\n",
    ),
)


# -- the rule, written out independently -------------------------------------------------
def expected_limit(key: str, limit: float, actual: float, margin: str = "10") -> int | float:
    """measured ± margin, rounded as a person writes it; only ever tighter than `limit`."""
    factor = Decimal(margin) / 100
    value = Decimal(str(actual))
    lower = key.startswith("min_")
    value = value * (1 - factor) if lower else value * (1 + factor)
    rounding = ROUND_FLOOR if lower else ROUND_CEILING
    if key.endswith("_rate"):
        new = min(max(value.quantize(Decimal("0.01"), rounding), Decimal(0)), Decimal(1))
    else:  # two significant digits; token counts are whole
        exponent = value.adjusted() - 1
        if "_tokens_" in key:
            exponent = max(exponent, 0)
        step = Decimal(1).scaleb(exponent)
        new = (value / step).to_integral_value(rounding) * step
    tighter = new > Decimal(str(limit)) if lower else new < Decimal(str(limit))
    if not tighter:
        return limit
    return int(new) if new == new.to_integral_value() else float(new)


def expected_config(report: dict[str, Any], margin: str = "10") -> dict[tuple[str, str], Any]:
    found = {}
    for name, ep in report["endpoints"].items():
        for b in ep["budgets"]:
            assert b["ok"] is not None
            limit = b["limit"]
            found[name, b["key"]] = (
                expected_limit(b["key"], limit, b["actual"], margin) if b["ok"] else limit
            )
    return found


def budgets_in(text: str) -> dict[tuple[str, str], Any]:
    data = yaml.safe_load(text)
    return {
        (name, key): value
        for name, ep in data["endpoints"].items()
        for key, value in ep.items()
        if key in BUDGET_KEYS
    }


LINE = re.compile(r"^(\s*)([a-z0-9_]+): (\S+)(\s+#.*)?$")


def assert_only_values_changed(old: str, new: str) -> dict[int, tuple[str, str, str]]:
    """Same lines, comments, quotes and blank lines; changed lines differ in their value only.

    Returns line number -> (key, old value text, new value text) for each changed line.
    """
    old_lines, new_lines = old.splitlines(), new.splitlines()
    assert len(new_lines) == len(old_lines)
    changed = {}
    for number, (before, after) in enumerate(zip(old_lines, new_lines, strict=True), start=1):
        if before == after:
            continue
        was, now = LINE.match(before), LINE.match(after)
        assert was and now, (before, after)
        assert (now[1], now[2]) == (was[1], was[2]), (before, after)  # indent and key
        assert (now[4] or "").strip() == (was[4] or "").strip(), (before, after)  # comment
        changed[number] = (was[2], was[3], now[3])
    return changed


# -- tightening -------------------------------------------------------------------------
def test_loose_budgets_tighten_to_measured_plus_margin_with_the_file_kept(pytester):
    before = example(pytester, *LOOSE)
    result = pytester.runpytest(*UPDATE)
    assert result.ret == 0
    after = config_text(pytester)
    report = report_of(pytester)
    expected = expected_config(report)

    assert budgets_in(after) == expected
    assert expected["chat_reply", "max_input_tokens_p95"] == 1300  # 1,172 + 10% -> 1,300
    assert expected["chat_reply", "min_cache_hit_rate"] > 0.6  # a min_ budget moves up
    changed = assert_only_values_changed(before, after)
    moved = {k for k, v in expected.items() if v != budgets_in(before)[k]}
    assert len(changed) == len(moved) >= 8
    assert '    target_model: "claude-haiku-4-5"' in after.splitlines()
    assert "    # a small endpoint: fewer calls are enough" in after.splitlines()
    assert "  note " not in result.stdout.str()

    lines = result.stdout.lines
    assert f"budget update: {len(moved)} tightened in token_budgets.yml (measured ± 10%):" in lines
    endpoints_at = {
        line: name
        for name, ep in report["endpoints"].items()
        for line in range(ep["line"], ep["line"] + 30)
    }
    for number, (key, old, new) in changed.items():
        name = endpoints_at[number]
        prefix = f"  token_budgets.yml:{number}: {name}.{key}: {old} {ARROW} {new} (measured "
        assert any(line.startswith(prefix) for line in lines), prefix

    config = pytester.path / "token_budgets.yml"
    assert cli.main(["check", "--config", str(config)]) == 0
    replay = pytester.runpytest(*RUN)
    assert replay.ret == 0
    assert all(b["ok"] for ep in report_of(pytester)["endpoints"].values() for b in ep["budgets"])
    # and once tight, a second update has nothing left to do
    again = pytester.runpytest(*UPDATE)
    assert again.ret == 0
    assert config_text(pytester) == after
    again.stdout.fnmatch_lines(["budget update: nothing to tighten in token_budgets.yml *"])


BROKEN = ("    max_output_tokens_p95: 64\n", "    max_output_tokens_p95: 20\n")  # measured: 30


def test_a_broken_budget_is_never_loosened(pytester):
    before = example(pytester, BROKEN)
    result = pytester.runpytest(*UPDATE, "-k", "triage")
    assert result.ret == 1  # the budget is broken, and stays broken
    after = config_text(pytester)
    report = report_of(pytester)
    broken = next(b for b in report["endpoints"]["triage"]["budgets"] if b["ok"] is False)
    assert (broken["key"], broken["limit"], broken["actual"]) == ("max_output_tokens_p95", 20, 30)
    expected = expected_config(report)
    assert expected["triage", "max_output_tokens_p95"] == 20
    assert {k: v for k, v in budgets_in(after).items() if k[0] == "triage"} == expected
    assert len(assert_only_values_changed(before, after)) == 3  # the other triage budgets
    result.stdout.fnmatch_lines(
        [
            (
                f"  held token_budgets.yml:{broken['line']}: triage.max_output_tokens_p95: 20 is "
                "broken (measured 30): left as it is; --token-budget-update=loosen would set 33"
            )
        ]
    )
    assert "LOOSENED" not in result.stdout.str()


def test_loosen_is_explicit_and_loud_and_the_next_run_passes(pytester):
    before = example(pytester, BROKEN)
    result = pytester.runpytest(*RUN, "--token-budget-update=loosen", "-k", "triage")
    assert result.ret == 1  # this run measured a broken budget: it still fails
    after = config_text(pytester)
    line = next(
        b["line"]
        for b in report_of(pytester)["endpoints"]["triage"]["budgets"]
        if b["key"] == "max_output_tokens_p95"
    )
    assert budgets_in(after)["triage", "max_output_tokens_p95"] == 33  # 30 + 10%
    assert assert_only_values_changed(before, after)[line] == ("max_output_tokens_p95", "20", "33")
    result.stdout.fnmatch_lines(
        [
            (
                f"LOOSENED token_budgets.yml:{line}: triage.max_output_tokens_p95: 20 {ARROW} 33 "
                "(measured 30 broke it): this budget now allows more than before, review it"
            ),
            "LOOSENED budgets were broken in this run, and the run still fails; *",
        ]
    )
    assert pytester.runpytest(*RUN, "-k", "triage").ret == 0


def test_the_margin_is_an_option(pytester):
    example(pytester, *LOOSE)
    result = pytester.runpytest(*UPDATE, "--token-budget-update-margin", "50")
    assert result.ret == 0
    expected = expected_config(report_of(pytester), margin="50")
    assert budgets_in(config_text(pytester)) == expected
    assert expected["chat_reply", "max_input_tokens_p95"] == 1800  # 1,172 × 1.5 = 1,758
    assert expected["triage", "max_output_tokens_p95"] == 45  # 30 × 1.5
    result.stdout.fnmatch_lines(["budget update: * (measured ± 50%):"])


MARGIN = "*--token-budget-update-margin: expected a percentage of 0 or more, such as 10, got "


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--token-budget-update-margin", "-5"), MARGIN + "'-5'"),
        (("--token-budget-update-margin", "abc"), MARGIN + "'abc'"),
        (("--token-budget-update-margin=nan",), MARGIN + "'nan'"),
        (("--token-budget-update=sideways",), "*--token-budget-update: 'sideways' is not a mode *"),
    ],
)
def test_a_bad_update_option_is_one_usage_error(pytester, args, message):
    before = example(pytester)
    result = pytester.runpytest(*UPDATE, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert result.stderr.str().count("error:") == 1
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
    assert config_text(pytester) == before


def test_update_without_token_budget_turns_the_plugin_on(pytester):
    # any --token-budget-* option means the plugin is on: the update runs as with the flag
    before = example(pytester, *LOOSE)
    result = pytester.runpytest("-p", "no:cacheprovider", "--token-budget-update")
    assert result.ret == 0
    assert report_of(pytester)["endpoints"]
    assert config_text(pytester) != before  # loose budgets, tightened


# -- what is not touched -----------------------------------------------------------------
def test_deselected_and_partly_run_endpoints_are_not_touched(pytester):
    before = example(pytester, *LOOSE)
    result = pytester.runpytest(*UPDATE, "-k", "triage")
    assert result.ret == 0
    after = config_text(pytester)
    assert report_of(pytester)["endpoints"]["chat_reply"]["status"] == "not-run"
    old, new = budgets_in(before), budgets_in(after)
    assert {k: v for k, v in new.items() if k[0] == "chat_reply"} == {
        k: v for k, v in old.items() if k[0] == "chat_reply"
    }
    assert new["triage", "max_input_tokens_p95"] < old["triage", "max_input_tokens_p95"]
    result.stdout.fnmatch_lines(["  skipped chat_reply: not run (deselected)"])

    # some of its cases: the p95 of a part is not the endpoint's
    partial = pytester.runpytest(*UPDATE, "-k", "refund_time or tracking")
    assert partial.ret == 0
    assert config_text(pytester) == after
    partial.stdout.fnmatch_lines(
        ["  skipped chat_reply: 2 of its 20 cases ran (the others were deselected): *"]
    )


def test_too_few_samples_are_not_touched(pytester):
    before = example(pytester, ("    min_samples: 5\n", "    min_samples: 10\n"))
    result = pytester.runpytest(*UPDATE, "-k", "triage")
    assert result.ret == 0
    assert config_text(pytester) == before
    result.stdout.fnmatch_lines(
        [
            "budget update: no endpoint in token_budgets.yml was measured fully enough to update",
            "  skipped chat_reply: not run (deselected)",
            "  skipped triage: 6 calls, below min_samples (10)",
        ]
    )


def test_a_budget_from_defaults_is_written_into_each_endpoint(pytester):
    before = example(
        pytester,
        ("  min_samples: 20\n", "  min_samples: 20\n  max_output_tokens_max: 5000  # ceiling\n"),
    )
    result = pytester.runpytest(*UPDATE)
    assert result.ret == 0
    after = config_text(pytester)
    report = report_of(pytester)
    data = yaml.safe_load(after)
    assert data["defaults"]["max_output_tokens_max"] == 5000  # others may still inherit it
    old_lines, new_lines = before.splitlines(), after.splitlines()
    assert len(new_lines) == len(old_lines) + 2
    for name in ("chat_reply", "triage"):
        budgets = report["endpoints"][name]["budgets"]
        entry = next(b for b in budgets if b["key"] == "max_output_tokens_max")
        value = expected_limit("max_output_tokens_max", 5000, entry["actual"])
        assert data["endpoints"][name]["max_output_tokens_max"] == value
        # written after the endpoint's own last budget, at its indentation
        assert (
            f"    monthly_budget_usd: {number_text(data['endpoints'][name]['monthly_budget_usd'])}"
            f"\n    max_output_tokens_max: {value}\n" in after
        )
        number = (
            new_lines.index(
                f"    max_output_tokens_max: {value}",
                0 if name == "chat_reply" else new_lines.index("  triage:"),
            )
            + 1
        )
        result.stdout.fnmatch_lines(
            [
                (
                    f"  token_budgets.yml:{number}: {name}.max_output_tokens_max: 5000 {ARROW} "
                    f"{value} (measured {entry['actual']}); was inherited from defaults: "
                    f"(line {entry['line']}), now set in the endpoint"
                )
            ]
        )
    # apart from the two new lines, the file reads as before (values aside)
    without = [ln for ln in new_lines if not ln.startswith("    max_output_tokens_max:")]
    assert_only_values_changed(before, "\n".join(without) + "\n")
    assert "\n\n  triage:\n" in after  # the blank line between endpoints stays where it was
    assert "  note " not in result.stdout.str()  # no other line was re-indented
    assert pytester.runpytest(*RUN).ret == 0


def test_under_xdist_the_controller_writes_the_file_once(pytester):
    example(pytester, *LOOSE)
    use_light_sdk(pytester.path / "support_bot.py")  # three processes import no SDK
    # a subprocess: with the oldest pytest-xdist, workers of an in-process controller do not
    # get the project on sys.path (No module named 'support_bot')
    result = pytester.runpytest_subprocess(*UPDATE, "-n", "2", "-k", "triage")
    assert result.ret == 0
    found = {k: v for k, v in budgets_in(config_text(pytester)).items() if k[0] == "triage"}
    assert found == expected_config(report_of(pytester))
    assert found["triage", "max_input_tokens_p95"] == 150  # 135 + 10%
    assert result.stdout.str().count("budget update:") == 1


# -- the plan and its wording, without pytest ------------------------------------------------
class _Endpoint:
    def __init__(self, min_samples: int = 1, cases: tuple[dict[str, Any], ...] = ()) -> None:
        self.min_samples, self.cases = min_samples, cases


class _Config:
    def __init__(self, **endpoints: _Endpoint) -> None:
        self.endpoints = endpoints


def _report(*budgets: dict[str, Any], calls: int = 30) -> Report:
    """A run's report of one endpoint, as its report.json would read."""
    ep = {"status": "pass", "calls": calls, "problems": [], "budgets": list(budgets)}
    return report_from_json({"endpoints": {"ep": ep}})


def _budget(key: str, limit: float, actual: float, ok: bool = True) -> dict[str, Any]:
    metric = {
        "min_cache_hit_rate": "cache_hit_rate",
        "allowed_escalation_rate": "escalation_rate",
        "monthly_budget_usd": "monthly_cost_usd",
    }.get(key, key.split("_", 1)[1])
    return {"key": key, "metric": metric, "limit": limit, "actual": actual, "ok": ok, "line": 3}


def _plan(*budgets: dict[str, Any], margin: float = 10.0, loosen: bool = False) -> Plan:
    return plan_update(
        _report(*budgets), _Config(ep=_Endpoint()), [], margin_pct=margin, loosen=loosen
    )  # type: ignore[arg-type]


def test_rates_stay_between_0_and_1_and_never_pass_the_measurement():
    plan = _plan(
        _budget("allowed_escalation_rate", 1, 0.95),  # 0.95 × 1.1 > 1: capped at 1, not tighter
        _budget("min_cache_hit_rate", 0.2, 0.845582),  # × 0.9 = 0.761 -> 0.76
        _budget("max_cost_per_request_usd", 1, 0.000012345),  # -> 0.000014
        margin=10,
    )
    assert [(c.key, c.new) for c in plan.changes] == [
        ("min_cache_hit_rate", 0.76),
        ("max_cost_per_request_usd", 0.000014),
    ]
    assert plan.unchanged == 1
    # margin 0: the report rounds rates to 6 digits, so the limit keeps above what it says
    exact = _plan(_budget("allowed_escalation_rate", 0.5, 0.1), margin=0)
    assert exact.changes[0].new == 0.11
    assert _plan(_budget("max_input_tokens_p95", 9000, 3310), margin=0).changes[0].new == 3400


def test_numbers_are_written_as_plain_decimals():
    assert [number_text(v) for v in (0.000014, 0.0018, 110, 0.11, 1e-9, 0)] == [
        "0.000014",
        "0.0018",
        "110",
        "0.11",
        "0.000000001",
        "0",
    ]
    assert yaml.safe_load(number_text(0.000014)) == 0.000014  # YAML 1.1 reads 1.4e-05 as text


def test_the_summary_names_file_line_key_and_both_values():
    change = Change(
        "ep", "max_input_tokens_p95", "input_tokens_p95", "max", 8000, 1300, 1172, line=13
    )
    lines = render(Plan(), Written([change], []), shown="token_budgets.yml", margin_pct=10)
    assert lines == [
        "",
        "budget update: 1 tightened in token_budgets.yml (measured ± 10%):",
        f"  token_budgets.yml:13: ep.max_input_tokens_p95: 8000 {ARROW} 1300 (measured 1,172)",
    ]
