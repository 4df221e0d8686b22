"""Fixtures every test may use: the loopback emulator, a recording machine and a CI one, a
small project; and the bytecode cache the suite's own pytest and tokenbudget processes share."""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import shutil
import ssl
import sys
from pathlib import Path

import certifi
import pytest
from emulator import Emulator
from paths import TESTS
from project_files import APP, CASES, CONFIG, TEST


def _preload() -> None:
    """pytester's in-process runs drop modules first imported inside them; PyYAML's C
    extension cannot be imported twice, so the heavy modules are loaded out here, before
    any test. The same for what a run loads lazily, which each in-process run imported again
    (and re-rewrote the asserts of): the plugin's own modules, hypothesis (its pytest plugin
    imports it), genai-prices' data and the SDK's HTTP transport, a second of CPU per run."""
    import anthropic
    import genai_prices.data  # noqa: F401
    import hypothesis  # noqa: F401
    import vcr  # noqa: F401
    import yaml  # noqa: F401

    import pytest_tokenbudget

    for module in pkgutil.walk_packages(pytest_tokenbudget.__path__, "pytest_tokenbudget."):
        if not module.name.endswith(".__main__"):
            importlib.import_module(module.name)
    anthropic.Anthropic(api_key="unused", base_url="http://127.0.0.1:9").close()
    _one_default_ssl_context()


def pytest_configure(config):
    """Preload in each process that runs tests; xdist's controller runs none (~6 s of CPU)."""
    starts_workers = config.getoption("numprocesses", None) or config.getoption("tx", None)
    if hasattr(config, "workerinput") or not starts_workers:
        _preload()


def _one_default_ssl_context() -> None:
    """Every SDK client the in-process runs' apps build (the test projects and the example
    build one per call) loaded the CA bundle into a new SSL context, ~50 ms of CPU each and
    a third of those runs' CPU. No test here opens a TLS connection in this process, so the
    clients share one default context (where the SDK's transport, httpx2, builds it)."""
    try:
        import httpcore2
    except ImportError:  # older SDKs: httpx, as before
        return
    build = httpcore2.default_ssl_context
    built: dict[bool, ssl.SSLContext] = {}

    def shared(*, _trust_env: bool = True) -> ssl.SSLContext:
        if _trust_env not in built:
            built[_trust_env] = build(_trust_env=_trust_env)
        return built[_trust_env]

    httpcore2.default_ssl_context = shared


pytest_plugins = ["pytester"]

FAKE_KEY = "sk-ant-api03-" + "k3yMaterial" * 6  # key-shaped, so scrubbing is really tested


# whole pytest runs end to end (pytester, subprocesses, the docs' commands run as written)
SLOW_FOLDERS = ("docs", "integration")


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(items):
    """Every test under tests/docs and tests/integration is `slow`; a unit test that runs
    pytest end to end carries the mark itself. `-m "not slow"` is the quick loop."""
    for item in items:  # the session's items, also those outside tests/
        if (
            item.path.is_relative_to(TESTS)
            and item.path.relative_to(TESTS).parts[0] in SLOW_FOLDERS
        ):
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Under -n, idle workers steal queued tests (unless --dist says otherwise). With -n's
    default (load) the first worker kept its first chunk, the docs' and integration tests
    of several minutes, while the other ran the rest and then waited for it."""
    if any(arg.startswith(("--dist", "-d")) for arg in config.invocation_params.args):
        return None
    from xdist.scheduler import WorkStealingScheduling

    return WorkStealingScheduling(config, log)


@pytest.fixture(scope="session", autouse=True)
def bytecode_cache(tmp_path_factory):
    """With PYTHONDONTWRITEBYTECODE set, every pytest the suite starts (a few hundred) compiled
    its modules again and re-rewrote the asserts of ~220 plugin modules (the plugins' whole
    distributions: hypothesis, anyio, respx, ...), a quarter of its CPU. The processes started
    here share one cache under the session's temp folder instead, never beside the sources."""
    if not os.environ.get("PYTHONDONTWRITEBYTECODE"):
        yield
        return
    with pytest.MonkeyPatch.context() as env:
        env.delenv("PYTHONDONTWRITEBYTECODE")
        if not os.environ.get("PYTHONPYCACHEPREFIX"):
            session = tmp_path_factory.getbasetemp()
            if os.environ.get("PYTEST_XDIST_WORKER"):  # the workers' folders share a parent
                session = session.parent
            cache = session / "pycache"
            cache.mkdir(exist_ok=True)
            _seed(cache)
            env.setenv("PYTHONPYCACHEPREFIX", str(cache))
        yield


def _seed(cache: Path) -> None:
    """Link the bytecode of the modules this process has imported (the conftest loaded what
    a pytest subprocess imports: the SDK, the plugins, the standard library) from their
    __pycache__ into the new cache. The cache was empty: each worker's first subprocess
    compiled them all again, ~11 s of CPU. A stale link is recompiled and replaced (Python
    writes bytecode by atomic rename), never written through to the original."""
    for module in list(sys.modules.values()):
        source, cached = getattr(module, "__file__", None), getattr(module, "__cached__", None)
        if not (source and cached and os.path.exists(cached)):
            continue
        folder = cache / os.path.dirname(os.path.abspath(source)).lstrip(os.sep)
        target = folder / os.path.basename(cached)
        if target.exists():  # a module under two names, or the other worker linked it
            continue
        folder.mkdir(parents=True, exist_ok=True)
        try:
            os.link(cached, target)
        except FileExistsError:
            pass
        except OSError:  # another file system
            shutil.copyfile(cached, target)


@pytest.fixture(scope="session")
def wheelhouse_dir(tmp_path_factory) -> Path:
    """This venv's distributions for `pip install -e '.[test]'` repacked as wheels, once per
    session (tests/support/wheelhouse.py): the README's fresh copy and the release tests
    install from it (each build is ~3 s of CPU)."""
    import wheelhouse

    folder = tmp_path_factory.getbasetemp() / "wheelhouse"
    if not folder.exists():  # built aside and renamed: a build that failed is not reused
        partial = tmp_path_factory.mktemp("wheelhouse-partial")
        wheelhouse.build(TESTS.parent, "pytest-tokenbudget", {"test"}, partial)
        partial.rename(folder)
    return folder


@pytest.fixture(scope="session")
def one_ca_bundle(tmp_path_factory) -> Path:
    """A CA bundle of one certificate, for the SSL_CERT_FILE of pytest processes that open
    no TLS connection (replays, the loopback emulator): each SDK client the example builds,
    one per call, loaded the whole bundle, ~50 ms of CPU each. Never for a process that may
    reach the package index."""
    bundle = tmp_path_factory.getbasetemp() / "one-ca.pem"
    if not bundle.exists():
        text = Path(certifi.where()).read_text()
        bundle.write_text(re.findall(_PEM, text)[0])
    return bundle


_PEM = re.compile(r"-----BEGIN CERTIFICATE-----\n.*?-----END CERTIFICATE-----\n", re.DOTALL)


@pytest.fixture
def emulator():
    with Emulator() as emu:
        yield emu


@pytest.fixture
def recording_env(monkeypatch, emulator):
    """The team's machine while recording: a real-looking key, the API at the emulator."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", emulator.base_url)
    return emulator


@pytest.fixture
def ci_env(monkeypatch):
    """CI on a pull request: no key."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)


@pytest.fixture
def project(pytester):
    pytester.makefile(".yml", token_budgets=CONFIG.format(input_p95=4000), cases=CASES)
    pytester.makepyfile(app=APP, test_chat=TEST)
    pytester.syspathinsert()
    return pytester
