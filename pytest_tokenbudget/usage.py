"""The public face of usage parsing, for plugins that implement `pytest_tokenbudget_parse_usage`.

Import what a parser needs from here (`from pytest_tokenbudget.usage import Call, Usage,
decode_body`): this path is kept stable while the parsing itself lives in `providers/`.
"""

from pytest_tokenbudget.providers.bodies import decode_body
from pytest_tokenbudget.providers.exchanges import parse_exchange
from pytest_tokenbudget.providers.recorders import Exchange
from pytest_tokenbudget.providers.usage import Call, Usage

__all__ = ["Call", "Exchange", "Usage", "decode_body", "parse_exchange"]
