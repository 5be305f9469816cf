"""Silence matchers as operators and amtool write them: device=gh-01, rule=~"low_.*",
severity!=info, tenant!~"test|dev"; turned into Alertmanager's JSON matcher shape.
"""

from __future__ import annotations

import re
from typing import Any

_MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$', re.DOTALL)


def parse_matcher(text: str) -> dict[str, Any]:
    """'rule=~"low_.*"' -> {"name": "rule", "value": "low_.*", "isRegex": True,
    "isEqual": True}. A value may be double-quoted (then \\" and \\\\ are escapes).
    Raises ValueError naming the accepted forms."""
    match = _MATCHER.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a matcher; use LABEL=VALUE, LABEL!=VALUE, "
                         "LABEL=~REGEX or LABEL!~REGEX, e.g. device=gh-01")
    name, operator, value = match.groups()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = re.sub(r'\\(["\\])', r"\1", value[1:-1])
    return {"name": name, "value": value, "isRegex": "~" in operator,
            "isEqual": operator in ("=", "=~")}


def render_matcher(matcher: dict[str, Any]) -> str:
    """The inverse of parse_matcher, with the value always quoted (as amtool prints it)."""
    operator = {(False, True): "=", (False, False): "!=", (True, True): "=~",
                (True, False): "!~"}[(bool(matcher["isRegex"]), bool(matcher["isEqual"]))]
    value = matcher["value"].replace("\\", "\\\\").replace('"', '\\"')
    return f'{matcher["name"]}{operator}"{value}"'
