"""Placeholder credentials for a replay, so the team's code still builds its clients.

CI on a pull request has no API key, yet the code under test constructs its Anthropic,
OpenAI or Bedrock client before the cassette answers a single request. A variable that is
set is never replaced; AWS gets placeholders only when no AWS credential source is
configured at all (AnthropicBedrock signs every request before the cassette answers it).
"""

from __future__ import annotations

from collections.abc import Mapping

PLACEHOLDER_KEY = "tokenbudget-replay-placeholder"
PLACEHOLDER_VARIABLES = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY")
AWS_CREDENTIAL_SOURCES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_BEARER_TOKEN_BEDROCK",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)
AWS_PLACEHOLDERS = {
    "AWS_ACCESS_KEY_ID": PLACEHOLDER_KEY,
    "AWS_SECRET_ACCESS_KEY": PLACEHOLDER_KEY,
    "AWS_EC2_METADATA_DISABLED": "true",  # no instance-metadata lookups from CI
}


def placeholder_credentials(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables a replay sets, with their placeholder values: only those not set."""
    placeholders = {variable: PLACEHOLDER_KEY for variable in PLACEHOLDER_VARIABLES}
    if not any(environ.get(v) for v in AWS_CREDENTIAL_SOURCES):
        placeholders.update(AWS_PLACEHOLDERS)
    return {
        variable: value for variable, value in placeholders.items() if not environ.get(variable)
    }


def can_count_online(environ: Mapping[str, str]) -> bool:
    """Whether count_tokens can be asked: a real Anthropic credential is set."""
    return bool(environ.get("ANTHROPIC_API_KEY") or environ.get("ANTHROPIC_AUTH_TOKEN"))
