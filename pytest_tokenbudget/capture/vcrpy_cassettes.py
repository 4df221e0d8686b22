"""vcrpy's side of the capture: our cassettes recorded through vcrpy, and what other
recorders' vcrpy cassettes play.

Recording (modes once, new_episodes, all): vcrpy matches on request_key (capture/matching.py),
scrubs each request and response before it is kept, and saves through a persister that
writes atomically, runs the teams' scrub hooks and refuses a cassette that still holds a
credential. Replay does not use vcrpy (capture/replay.py), and nothing here imports it at
module level: it costs 142 ms.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from pytest_tokenbudget.capture.matching import request_key
from pytest_tokenbudget.errors import CassetteError, SecretError
from pytest_tokenbudget.files.atomic import write_atomic
from pytest_tokenbudget.providers.recorders import Exchange
from pytest_tokenbudget.providers.scrub import (
    REQUEST_HEADERS,
    RESPONSE_HEADERS,
    refuse_if_body_secret,
    refuse_if_secret,
    scrub_message,
    scrub_url,
)


def vcr_cassette(
    path: Path,
    mode: str,
    scrub_hook: Callable[[dict[str, Any]], None] | None,
    refused: Callable[[SecretError], None],
) -> AbstractContextManager[Any]:
    """vcrpy's cassette at `path`, recording in `mode`, to enter; a write refused for a
    secret goes to `refused`."""
    import vcr

    recorder = vcr.VCR(
        record_mode=mode,
        match_on=["tokenbudget"],
        # Bodies are decoded by scrub_message, bounded (vcrpy's decoding is not), so that
        # they are scrubbed as text and stay readable for review.
        decode_compressed_response=False,
        before_record_request=_scrub_request,
        before_record_response=_scrub_response,
        record_on_exception=False,  # see Capture.__exit__
    )
    recorder.register_matcher("tokenbudget", _match)
    recorder.register_persister(_persister(mode, scrub_hook, refused))
    cassette: AbstractContextManager[Any] = recorder.use_cassette(str(path))
    return cassette


def _match(r1: Any, r2: Any) -> bool:
    return request_key(r1) == request_key(r2)


def _scrub_request(request: Any) -> Any:
    from vcr.request import Request

    body = request.body
    if isinstance(body, str):
        body = body.encode("utf-8")
    # Matching sees the scrubbed request on both sides (recorded and sent), so a
    # prompt that quotes a key still matches its scrubbed recording.
    headers, body = scrub_message(dict(request.headers), body or b"", REQUEST_HEADERS)
    return Request(request.method, scrub_url(request.uri), body or request.body, headers)


def _scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    body = response.get("body", {}).get("string")
    raw = body.encode("utf-8") if isinstance(body, str) else body
    if not isinstance(raw, bytes):
        raw = b""
    headers, cleaned = scrub_message(response.get("headers", {}), raw, RESPONSE_HEADERS)
    response["headers"] = headers
    if raw:
        response["body"]["string"] = cleaned
    return response


def _persister(
    mode: str,
    scrub_hook: Callable[[dict[str, Any]], None] | None,
    refused: Callable[[SecretError], None] | None = None,
) -> type:
    """A vcrpy persister that writes atomically, refuses secrets and names corrupt files.

    A refused write raises SecretError, or with ``refused`` is handed to it: vcrpy saves on
    leaving the cassette, and an error raised there would skip undoing its patches.
    """
    import yaml
    from vcr.persisters.filesystem import CassetteNotFoundError
    from vcr.serialize import deserialize, serialize

    from pytest_tokenbudget.capture.replay import NOT_A_CASSETTE, unreadable

    class AtomicPersister:
        @classmethod
        def load_cassette(cls, cassette_path: str, serializer: Any) -> Any:
            path = Path(cassette_path)
            if mode == "all" or not path.is_file():
                raise CassetteNotFoundError()  # "all" re-records the case from scratch
            try:
                data = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as err:
                raise CassetteError(f"cannot read cassette: {err}", path=path) from None
            if not data.strip():
                raise CassetteNotFoundError()
            try:
                return deserialize(data, serializer)
            except (yaml.YAMLError, *NOT_A_CASSETTE) as err:
                raise unreadable(err, path) from None

        @staticmethod
        def save_cassette(
            cassette_path: str, cassette_dict: dict[str, Any], serializer: Any
        ) -> None:
            if scrub_hook is not None:
                cassette_dict = _run_scrub_hook(cassette_dict, scrub_hook)
            text = serialize(cassette_dict, serializer)
            try:
                _refuse_secrets(cassette_dict, text, str(cassette_path))
            except SecretError as err:
                if refused is None:
                    raise
                refused(err)
                return
            write_atomic(Path(cassette_path), text)

    return AtomicPersister


def _refuse_secrets(cassette_dict: dict[str, Any], text: str, path: str) -> None:
    """The last gate: the cassette's text, then every body in it as it decodes (binary ones
    are stored as base64 in the YAML, where no text scan sees a key)."""
    refuse_if_secret(text, path=path)
    lines = [n for n, line in enumerate(text.splitlines(), 1) if line.startswith("- request:")]
    pairs = zip(cassette_dict["requests"], cassette_dict["responses"], strict=True)
    for index, (request, response) in enumerate(pairs):
        line = lines[index] if index < len(lines) else None
        refuse_if_body_secret(
            request.body,
            request.headers,
            path=path,
            line=line,
            where=f"the request body of interaction {index + 1}",
        )
        if isinstance(response, dict):
            refuse_if_body_secret(
                (response.get("body") or {}).get("string"),
                response.get("headers") or {},
                path=path,
                line=line,
                where=f"the response body of interaction {index + 1}",
            )


def _run_scrub_hook(
    cassette_dict: dict[str, Any], hook: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """Let plugins scrub each interaction, as plain dicts, before it is serialized."""
    from vcr.request import Request

    requests, responses = [], []
    for request, response in zip(
        cassette_dict["requests"], cassette_dict["responses"], strict=True
    ):
        interaction = {"request": request._to_dict(), "response": response}
        hook(interaction)
        r = interaction["request"]
        requests.append(Request(r["method"], r["uri"], r["body"], r["headers"]))
        responses.append(interaction["response"])
    return {**cassette_dict, "requests": requests, "responses": responses}


def vcrpy_exchange(request: Any, response: Any) -> Exchange:
    """One interaction as a vcrpy cassette holds it: what the app sent and received.

    Also reads the status_code/content layout older vcrpy versions wrote for httpx.
    """
    if "status_code" in response:
        status, body = response["status_code"], response.get("content")
    else:
        status, body = response["status"]["code"], (response.get("body") or {}).get("string")
    headers: dict[str, list[str]] = {}
    for name, values in (response.get("headers") or {}).items():
        values = values if isinstance(values, list) else [values]
        headers.setdefault(name.lower(), []).extend(str(v) for v in values)
    sent = request.body
    return Exchange(
        method=request.method,
        url=request.uri,
        request_body=sent.encode("utf-8") if isinstance(sent, str) else sent or b"",
        status=int(status),
        headers=headers,
        body=body.encode("utf-8") if isinstance(body, str) else body or b"",
    )


def is_cassette(value: Any) -> bool:
    from vcr.cassette import Cassette

    return isinstance(value, Cassette)
