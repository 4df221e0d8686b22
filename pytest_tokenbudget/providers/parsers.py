"""The built-in usage parsers, implemented on the public parse_usage hook.

They run last (trylast), so a team's conftest can take over any exchange. The
Anthropic one also reads Claude on Amazon Bedrock and Vertex AI (providers/anthropic.py).
"""

from __future__ import annotations

import pytest

from pytest_tokenbudget.providers.exchanges import parse_provider
from pytest_tokenbudget.providers.recorders import Exchange
from pytest_tokenbudget.providers.usage import Call


class AnthropicParser:
    @pytest.hookimpl(trylast=True)
    def pytest_tokenbudget_parse_usage(self, exchange: Exchange) -> list[Call] | None:
        return parse_provider(exchange, "anthropic")


class OpenAIParser:
    @pytest.hookimpl(trylast=True)
    def pytest_tokenbudget_parse_usage(self, exchange: Exchange) -> list[Call] | None:
        return parse_provider(exchange, "openai")


BUILTIN = {"tokenbudget-anthropic": AnthropicParser, "tokenbudget-openai": OpenAIParser}
