"""schemathesis hooks for tests/contract_api (loaded with SCHEMATHESIS_HOOKS).

A query parameter declared as a list of texts (deviceId=D001&deviceId=D002) has no invalid value on
the wire: whatever schemathesis generates for it (true, 5, [true], {"a": 1}) is sent as text, one
item or several (deviceId=true is the list ["true"]). schemathesis 4.32 judges such a negative case
by the value it generated, not the text sent, so a server that rightly accepts it fails
`negative_data_rejection`. Cases with such a value are dropped: they test nothing invalid. That
includes a bare text in place of the list (the hook sees `true` as "true"): on the wire it is the
one-item list, and schemathesis's own guard for that misses it when two such parameters are
mutated at once (customerId=false&deviceId=false)."""

from __future__ import annotations

from typing import Any

import schemathesis


def _text_lists(ctx: Any) -> set[str]:
    """Names of the operation's query parameters declared as arrays of strings."""
    names = set()
    for param in ctx.operation.query:
        schema = param.definition.get("schema", {})
        for option in schema.get("anyOf", [schema]):
            if option.get("type") == "array" and option.get("items", {}).get("type") == "string":
                names.add(param.name)
    return names


@schemathesis.hook
def filter_query(ctx: Any, query: dict[str, Any] | None) -> bool:
    if not query:
        return True
    lists = _text_lists(ctx)
    return all(_texts(v) for name, v in query.items() if name in lists)


def _texts(value: object) -> bool:
    """Only what the schema declares: a list of texts (or no value)."""
    return value is None or (isinstance(value, list) and all(isinstance(v, str) for v in value))
