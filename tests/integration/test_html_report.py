"""report.html: written on every run, self-contained, its numbers right, and looked at in
a real browser (headless Chromium over the DevTools protocol): every chart with its budget
line, no console errors, sortable cases, a screenshot that is not blank, in light and dark."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest
import yaml
from paths import DATA, REPO
from project_files import copy_example

from pytest_tokenbudget.measure.evaluation import EndpointResult
from pytest_tokenbudget.measure.samples import Sample
from pytest_tokenbudget.measure.stats import endpoint_stats
from pytest_tokenbudget.pricing.prices import PriceBook
from pytest_tokenbudget.providers.usage import Usage
from pytest_tokenbudget.report.build import build_report
from pytest_tokenbudget.report.html import render_html
from pytest_tokenbudget.report.html_charts import distribution_svg, nice_step
from pytest_tokenbudget.report.model import BudgetCheck, EndpointReport, Report

ROOT = REPO
EXAMPLE = ROOT / "examples" / "support_bot"
TIERS = ("input", "cache_write_5m", "cache_write_1h", "cache_read", "output")
# CI must run the browser test, never skip it: .ci/run installs Chromium and sets this.
BROWSER_REQUIRED = bool(os.environ.get("TOKENBUDGET_BROWSER_REQUIRED") or os.environ.get("CI"))


# -- the example, run the way a team runs it ----------------------------------------------
def run_example(directory: Path, *args: str, ca: Path) -> dict:
    """Copy the bundled example to ``directory``, run `pytest --token-budget` there in a
    fresh process (a CA bundle of one certificate: it opens no TLS connection), and return
    its report.json."""
    copy_example(directory, light_sdk=True)
    (directory / "pytest.ini").write_text("[pytest]\npythonpath = .\n")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "GITHUB_", "PYTEST_"))
    }
    env["SSL_CERT_FILE"] = str(ca)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--token-budget",
            "-p",
            "no:cacheprovider",
            "-q",
            "-p",
            "no:xdist",
            *args,
        ],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads((directory / ".token-budget" / "report.json").read_text())


@pytest.fixture(scope="module")
def example(tmp_path_factory, one_ca_bundle) -> Path:
    """The example's report directory after a plain run."""
    directory = tmp_path_factory.mktemp("example")
    run_example(directory, ca=one_ca_bundle)
    return directory / ".token-budget"


@pytest.fixture(scope="module")
def example_with_baseline(example, tmp_path_factory, one_ca_bundle) -> tuple[Path, dict]:
    """A run against a baseline whose p95s differ from the head's, so its lines show."""
    base = json.loads((example / "report.json").read_text())
    for ep in base["endpoints"].values():
        ep["metrics"]["input_tokens_p95"] = int(ep["metrics"]["input_tokens_p95"] * 1.08)
        ep["metrics"]["output_tokens_p95"] = int(ep["metrics"]["output_tokens_p95"] * 1.5)
    base_path = example.parent.parent / "base.json"  # outside the project, as in CI
    base_path.write_text(json.dumps(base))
    directory = tmp_path_factory.mktemp("with-baseline")
    run_example(directory, f"--token-budget-baseline={base_path}", ca=one_ca_bundle)
    return directory / ".token-budget", base


# -- the file: written on every run, nothing remote --------------------------------------
def test_report_html_is_written_beside_json_and_md(example):
    assert {p.name for p in example.iterdir()} >= {"report.json", "report.md", "report.html"}


def test_report_html_loads_nothing_from_anywhere(example):
    text = (example / "report.html").read_text()
    assert not re.search(r"<script[^>]*\bsrc=", text, re.IGNORECASE)
    assert not re.search(r"<link\b", text, re.IGNORECASE)
    assert not re.search(r"url\(", text, re.IGNORECASE)
    assert not re.search(r"@import|@font-face", text, re.IGNORECASE)
    assert not re.search(r"\b(?:src|href)=[\"']?(?:https?:)?//", text, re.IGNORECASE)
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', text)
    assert csp and "default-src 'none'" in csp[1] and "unsafe-inline" not in csp[1]


def test_one_chart_per_endpoint_and_token_side_each_with_its_budget_and_p95(example):
    text = (example / "report.html").read_text()
    report = json.loads((example / "report.json").read_text())
    for name, ep in report["endpoints"].items():
        for side in ("input", "output"):
            charts = re.findall(
                rf'<svg[^>]*data-chart="{side}-tokens" data-endpoint="{name}".*?</svg>',
                text,
                re.DOTALL,
            )
            assert len(charts) == 1, (name, side)
            budget = next(b for b in ep["budgets"] if b["key"] == f"max_{side}_tokens_p95")
            assert re.search(
                rf'data-role="budget" data-key="{budget["key"]}" data-value="{budget["limit"]}"',
                charts[0],
            )
            assert (
                f'data-role="p95" data-value="{ep["metrics"][f"{side}_tokens_p95"]}"' in charts[0]
            )
            assert 'data-role="baseline-p95"' not in charts[0]
            bars = [int(n) for n in re.findall(r'data-role="bar" data-count="(\d+)"', charts[0])]
            assert sum(bars) == ep["calls"]  # every call in the histogram, once


def test_baseline_p95_is_overlaid(example_with_baseline):
    reports, base = example_with_baseline
    text = (reports / "report.html").read_text()
    for name, ep in base["endpoints"].items():
        for side in ("input", "output"):
            chart = re.search(
                rf'<svg[^>]*data-chart="{side}-tokens" data-endpoint="{name}".*?</svg>',
                text,
                re.DOTALL,
            )[0]
            expected = ep["metrics"][f"{side}_tokens_p95"]
            assert f'data-role="baseline-p95" data-value="{expected}"' in chart


# -- the numbers, recomputed by hand from the cassettes and the price table ----------------
def _cassette_usages(path: Path) -> list[tuple[str, dict]]:
    """(model, usage) of each Messages response in a cassette, read by hand (JSON or SSE)."""
    found = []
    for interaction in yaml.safe_load(path.read_text())["interactions"]:
        body = interaction["response"]["body"]["string"]
        if body.lstrip().startswith("{"):
            message = json.loads(body)
            found.append((message["model"], message["usage"]))
            continue
        events = [json.loads(line[5:]) for line in body.splitlines() if line.startswith("data:")]
        message = next(e for e in events if e["type"] == "message_start")["message"]
        usage = dict(message["usage"])
        for e in events:
            if e["type"] == "message_delta" and "usage" in e:
                usage.update({k: v for k, v in e["usage"].items() if v is not None})
        found.append((message["model"], usage))
    return found


def _tier_tokens(usage: dict) -> dict[str, int]:
    creation = usage.get("cache_creation") or {}
    write_1h = creation.get("ephemeral_1h_input_tokens", 0)
    write_5m = creation.get(
        "ephemeral_5m_input_tokens", usage.get("cache_creation_input_tokens", 0) - write_1h
    )
    return {
        "input": usage["input_tokens"],
        "cache_write_5m": write_5m,
        "cache_write_1h": write_1h,
        "cache_read": usage.get("cache_read_input_tokens", 0),
        "output": usage["output_tokens"],
    }


def _rates(model: str) -> dict[str, Fraction]:
    # The old hand-written table: the example's models did not change price since.
    table = json.loads((DATA / "prices" / "prices-2026-11-01.json").read_text())["models"]
    rates = table[re.sub(r"-\d{8}$", "", model)]
    return {tier: Fraction(str(rates[tier])) / 1_000_000 for tier in TIERS}


def test_cost_per_request_by_tier_and_model_matches_the_cassettes_and_the_price_table(example):
    text = (example / "report.html").read_text()
    report = json.loads((example / "report.json").read_text())
    for name, ep in report["endpoints"].items():
        expected: dict[tuple[str, str], Fraction] = {}
        for cassette in (EXAMPLE / "cassettes" / name).glob("*.yaml"):
            for model, usage in _cassette_usages(cassette):
                model = re.sub(r"-\d{8}$", "", model)
                for tier, tokens in _tier_tokens(usage).items():
                    key = (model, tier)
                    expected[key] = expected.get(key, Fraction(0)) + tokens * _rates(model)[tier]
        section = re.search(rf'data-endpoint="{name}">.*?</section>', text, re.DOTALL)[0]
        shown = {
            (m, t): float(v)
            for m, t, v in re.findall(
                r'<td class="num" data-model="([^"]+)" data-tier="(\w+)" data-value="([^"]+)"',
                section,
            )
        }
        cases = ep["cases"]
        for (model, tier), dollars in expected.items():
            assert shown[(model, tier)] == pytest.approx(float(dollars / cases), abs=1e-9)
        models = {m for m, _ in expected}
        if len(models) > 1:
            for tier in TIERS:
                total = sum(expected.get((m, tier), Fraction(0)) for m in models) / cases
                assert shown[("all models", tier)] == pytest.approx(float(total), abs=1e-9)
        # the tiers add up to the report's own cost per request
        per_request = sum(expected.values()) / cases
        assert ep["metrics"]["cost_per_request_usd"] == pytest.approx(float(per_request), abs=1e-9)


def test_tier_costs_add_up_to_the_cost_and_halve_for_batch():
    book = PriceBook()
    usage = Usage(
        input_tokens=1000,
        output_tokens=200,
        cache_write_5m_tokens=3000,
        cache_write_1h_tokens=500,
        cache_read_tokens=9000,
    )
    samples = [
        Sample("faq", "q1", "t::q1", 0, "claude-sonnet-4-6", usage),
        Sample("faq", "q2", "t::q2", 0, "claude-sonnet-4-6", usage, batch=True),
    ]
    stats = endpoint_stats("faq", samples, ["q1", "q2"], book=book)
    tiers = stats.tier_costs["claude-sonnet-4-6"]
    assert sum(tiers.values()) == stats.cost_total
    rates = _rates("claude-sonnet-4-6")
    tokens = {
        "input": 1000,
        "output": 200,
        "cache_write_5m": 3000,
        "cache_write_1h": 500,
        "cache_read": 9000,
    }
    for tier in TIERS:  # one call at full price, one at the Batch API's half
        assert tiers[tier] == tokens[tier] * rates[tier] * Fraction(3, 2)


def _report_of(samples: list[Sample], case_ids: list[str], **stats_args) -> Report:
    stats = endpoint_stats("faq", samples, case_ids, book=PriceBook(), strict=False, **stats_args)
    results = [EndpointResult("faq", "pass", stats, line=3, cases_run=stats.cases)]
    return build_report(results, config_path="token_budgets.yml", price_table_date="x")


def test_case_ids_and_model_names_cannot_become_markup():
    evil = '<img src=x onerror="alert(1)">'
    sample = Sample("faq", evil, "t", 0, evil, Usage(input_tokens=10, output_tokens=2))
    page = render_html(_report_of([sample], [evil]))
    assert evil not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page


def test_unpriced_and_not_run_endpoints_render_without_charts_of_nonsense():
    sample = Sample("faq", "q1", "t", 0, "my-proxy-model", Usage(input_tokens=10, output_tokens=2))
    report = _report_of([sample], ["q1"])
    idle = EndpointReport("idle", "not-run", line=9)
    page = render_html(replace(report, endpoints=(*report.endpoints, idle)))
    assert "No priced call" in page
    assert "Not run" in page
    assert page.count('data-chart="input-tokens"') == 1


def test_a_broken_budget_is_marked_with_its_driving_cases():
    samples = [
        Sample(
            "faq",
            f"q{i}",
            f"t::q{i}",
            0,
            "claude-sonnet-4-6",
            Usage(input_tokens=100 * (i + 1), output_tokens=5),
        )
        for i in range(4)
    ]
    report = _report_of(samples, [s.case_id for s in samples])
    broken = BudgetCheck(
        "max_input_tokens_p95", "input_tokens_p95", "max", 250, 400, False, 4, ("q3", "q2")
    )
    (faq,) = report.endpoints
    page = render_html(replace(report, endpoints=(replace(faq, budgets=(broken,)),)))
    assert re.search(r'<tr class="broken"><td><code>max_input_tokens_p95</code>', page)
    assert "driven by q3, q2" in page
    drivers = re.findall(r'<tr data-case="(\w+)"><td[^>]*>\w+ <span class="badge', page)
    assert sorted(drivers) == ["q2", "q3"]
    chart = re.search(r'<svg[^>]*data-chart="input-tokens".*?</svg>', page, re.DOTALL)[0]
    assert 'data-role="budget" data-key="max_input_tokens_p95" data-value="250"' in chart
    assert len(re.findall(r'class="call over"', chart)) == 2  # 300 and 400 tokens


def test_histogram_puts_each_call_in_one_bar_and_marks_the_calls_over_budget():
    values = [100, 120, 125, 900, 1500]
    budget = BudgetCheck("max_input_tokens_p95", "input_tokens_p95", "max", 1000, None, None, None)
    svg = distribution_svg(values, endpoint="e", side="input", budgets=[budget], p95=1500)
    counts = [int(n) for n in re.findall(r'data-count="(\d+)"', svg)]
    assert sum(counts) == len(values)
    assert len(re.findall(r'class="bar over"', svg)) == 1
    assert len(re.findall(r'class="call over"', svg)) == 1


@pytest.mark.parametrize(
    ("raw", "step"), [(0.3, 0.5), (7, 10), (42, 50), (140, 200), (0.000123, 0.0002), (1, 1)]
)
def test_axis_steps_are_ones_twos_and_fives(raw, step):
    assert nice_step(raw) == pytest.approx(step)


# -- in a real browser ---------------------------------------------------------------------
def chromium_binary() -> str | None:
    for name in (os.environ.get("CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (fds 3 and 4 of the
    browser, NUL-separated JSON): no port, no websocket, no dependency."""

    def __init__(self, binary: str, profile: Path) -> None:
        to_browser, self._write = os.pipe()
        self._read, from_browser = os.pipe()
        args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--mute-audio",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        # The protocol lives on the browser's fds 3 and 4: a shell puts the pipes there
        # (bash: dash takes no fd number above 9).
        self._log = profile / "chromium.log"
        with self._log.open("wb") as log:
            self.process = subprocess.Popen(
                ["bash", "-c", f'exec "$0" "$@" 3<&{to_browser} 4>&{from_browser}', binary, *args],
                pass_fds=(to_browser, from_browser),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        attached = self.call("Target.attachToTarget", targetId=target, flatten=True)
        self.session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=self.session)

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("Chromium did not answer")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                log = self._log.read_text(errors="replace")[-3000:]
                raise EOFError(f"Chromium closed the DevTools pipe; its output:\n{log}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, *, session: str | None = None, **params) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 60
        while True:
            answer = self._receive(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]
            self.events.append(answer)

    def page(self, method: str, **params) -> dict:
        return self.call(method, session=self.session, **params)

    def open(self, url: str) -> None:
        self.page("Page.navigate", url=url)
        deadline = time.monotonic() + 60
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            self.events.append(self._receive(deadline))

    def evaluate(self, expression: str):
        answer = self.page("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in answer:
            raise RuntimeError(answer["exceptionDetails"])
        return answer["result"].get("value")

    def screenshot(self, *, full_page: bool = True, scale: float = 1.0) -> bytes:
        size = self.page("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": scale}
        shot = self.page(
            "Page.captureScreenshot", format="png", captureBeyondViewport=full_page, clip=clip
        )
        return base64.b64decode(shot["data"])

    def errors(self) -> list[str]:
        found = []
        for e in self.events:
            method, params = e.get("method"), e.get("params", {})
            if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                found.append(" ".join(str(a.get("value", a)) for a in params["args"]))
            elif method == "Runtime.exceptionThrown":
                found.append(str(params["exceptionDetails"]))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(params["entry"]["text"])
        return found

    def close(self) -> None:
        with contextlib.suppress(EOFError, OSError, TimeoutError):
            self.call("Browser.close")
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._read)
        os.close(self._write)


@pytest.fixture
def browser(tmp_path):
    binary = chromium_binary()
    if binary is None:
        message = "Chromium is not installed (apt-get install -y chromium)"
        if BROWSER_REQUIRED:
            pytest.fail(message + ": CI must run the browser test")
        pytest.skip(message)
    profile = Path(tempfile.mkdtemp(prefix="chromium-", dir=tmp_path))
    b = Browser(binary, profile)
    yield b
    b.close()


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB or RGBA PNG (what Chromium writes) into rows of pixel bytes."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and color in (2, 6) and interlace == 0, header
    bpp = 4 if color == 6 else 3
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, previous = [], bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, previous, strict=True))
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + (left + previous[i]) // 2) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = previous[i], previous[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        previous = rows[-1]
    return width, bpp, rows


def colour_census(png: bytes) -> tuple[tuple[int, int, int], int, float]:
    """(most common colour, number of distinct colours, share of pixels not that colour)."""
    width, bpp, rows = png_pixels(png)
    counts: dict[tuple[int, int, int], int] = {}
    for row in rows:
        for i in range(0, width * bpp, bpp):
            key = (row[i], row[i + 1], row[i + 2])
            counts[key] = counts.get(key, 0) + 1
    background, n = max(counts.items(), key=lambda kv: kv[1])
    return background, len(counts), 1 - n / sum(counts.values())


def luminance(rgb: tuple[int, int, int]) -> float:
    def channel(c: int) -> float:
        c /= 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


PAGE_FACTS = """(() => {
  const rgb = (s) => s.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const box = (el) => { const r = el.getBoundingClientRect(); return [r.width, r.height]; };
  return {
    background: rgb(getComputedStyle(document.body).backgroundColor),
    text: rgb(getComputedStyle(document.body).color),
    charts: [...document.querySelectorAll("svg.chart")].map((svg) => ({
      chart: svg.dataset.chart, endpoint: svg.dataset.endpoint, size: box(svg),
      lines: [...svg.querySelectorAll("line.budget, line.p95, line.baseline")].map((l) => ({
        role: l.dataset.role, key: l.dataset.key || null, value: Number(l.dataset.value),
        size: box(l), colour: rgb(getComputedStyle(l).stroke),
      })),
      bars: [...svg.querySelectorAll("[data-role=bar], [data-role=tier]")].map(
        (b) => rgb(getComputedStyle(b).fill)),
      texts: [...svg.querySelectorAll("text")].map((t) => rgb(getComputedStyle(t).fill)),
      parts: [...svg.querySelectorAll("[data-role=part]")].map((p) => ({
        row: p.dataset.row, fill: rgb(getComputedStyle(p).fill), size: box(p),
      })),
    })),
  };
})()"""


def _check_page(facts: dict, report: dict, *, baseline: bool) -> None:
    background = tuple(facts["background"])
    assert contrast(tuple(facts["text"]), background) >= 7
    charts = {(c["endpoint"], c["chart"]): c for c in facts["charts"]}
    for name, ep in report["endpoints"].items():
        for chart in ("input-tokens", "output-tokens", "cost"):
            c = charts[(name, chart)]
            assert c["size"][0] > 300 and c["size"][1] > 80, (name, chart, c["size"])
            roles = {line["role"]: line for line in c["lines"]}
            budget = roles["budget"]
            limit = next(b["limit"] for b in ep["budgets"] if b["key"] == budget["key"])
            assert budget["value"] == limit
            if chart != "cost":
                assert "p95" in roles
                assert ("baseline-p95" in roles) == baseline
            for line in c["lines"]:  # drawn, and visible against the page
                assert line["size"][1] > 20, (name, chart, line)
                assert contrast(tuple(line["colour"]), background) >= 3, (name, chart, line)
            for fill in c["bars"]:
                assert contrast(tuple(fill), background) >= 3, (name, chart, fill)
            for fill in c["texts"]:
                assert contrast(tuple(fill), background) >= 4.5, (name, chart, fill)
        if "anatomy" in ep:  # the prompt by part: this run's bar, the baseline's above it
            c = charts[(name, "anatomy")]
            assert c["size"][0] > 300 and c["parts"], (name, c["size"])
            rows = {p["row"] for p in c["parts"]}
            assert rows == ({"baseline", "this run"} if baseline else {"this run"})
            for part in c["parts"]:
                assert part["size"][0] > 0 and part["size"][1] > 10, (name, part)
                assert contrast(tuple(part["fill"]), background) >= 3, (name, part)
            for fill in c["texts"]:
                assert contrast(tuple(fill), background) >= 4.5, (name, "anatomy", fill)


def _column(browser: Browser, name: str, column: int) -> list[float]:
    rows = f'section[data-endpoint="{name}"] table.sortable tbody tr'
    return browser.evaluate(
        f"[...document.querySelectorAll('{rows}')]"
        f".map((row) => Number(row.cells[{column}].dataset.value))"
    )


def _click_header(browser: Browser, name: str, column: int) -> None:
    button = f'section[data-endpoint="{name}"] table.sortable button[data-column="{column}"]'
    browser.evaluate(f"document.querySelector('{button}').click()")


def test_the_example_report_in_a_browser(example_with_baseline, browser, tmp_path):
    reports, _ = example_with_baseline
    report = json.loads((reports / "report.json").read_text())
    browser.page(
        "Emulation.setDeviceMetricsOverride",
        width=1280,
        height=900,
        deviceScaleFactor=1,
        mobile=False,
    )
    shots = {}
    for scheme in ("light", "dark"):
        browser.page(
            "Emulation.setEmulatedMedia",
            features=[{"name": "prefers-color-scheme", "value": scheme}],
        )
        browser.events.clear()
        browser.open((reports / "report.html").as_uri())
        assert browser.errors() == []
        facts = browser.evaluate(PAGE_FACTS)
        split = sum("anatomy" in ep for ep in report["endpoints"].values())
        assert split and len(facts["charts"]) == 3 * len(report["endpoints"]) + split
        _check_page(facts, report, baseline=True)
        full = tmp_path / f"report-{scheme}.png"
        full.write_bytes(browser.screenshot())
        print(f"screenshot: {full}")
        shots[scheme] = colour_census(browser.screenshot(scale=0.4))
    for scheme, (_, colours, inked) in shots.items():
        assert colours > 20 and inked > 0.03, (scheme, colours, inked)  # not blank
    assert luminance(shots["light"][0]) > 0.8 and luminance(shots["dark"][0]) < 0.05

    # A person sorts the cases: written costliest first; input tokens, down, then up.
    cost, input_tokens = 4, 2
    costs = _column(browser, "chat_reply", cost)
    assert costs == sorted(costs, reverse=True) and len(set(costs)) > 1
    _click_header(browser, "chat_reply", input_tokens)
    tokens = _column(browser, "chat_reply", input_tokens)
    assert tokens == sorted(tokens, reverse=True) and len(set(tokens)) > 1
    _click_header(browser, "chat_reply", input_tokens)
    assert _column(browser, "chat_reply", input_tokens) == sorted(tokens)
    assert browser.errors() == []
