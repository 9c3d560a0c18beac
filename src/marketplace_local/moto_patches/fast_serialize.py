"""A faster way for moto's response serializer to read plain dicts, with the same result.

moto serialises every response by walking the operation's output shape and, for each member,
asking an ``AttributePicker`` for the value: it builds an ``AttributePickerContext`` (joining the
whole member path into a string), instantiates six alias providers and asks each whether it has an
alias for the member's name. A DynamoDB item is a dict of ``AttributeValue`` structures with ten
members each, so a GetItem of a 30-attribute item makes some 300 of those lookups, and a stream
batch thousands. Profiling the local stack under load (``bench/throughput.py --profile``) showed
that walk as the largest single cost: about a third of the stack's CPU, a fifth in reading the
table's stream alone.

For a value that is a plain ``dict`` the answer depends only on the member's shape, its parent
structure and the member name (which of the alias providers apply does not depend on the dict's
contents), so this module works out the candidate keys once per (shape, parent, name), in moto's
order, and then looks them up in the dict. Anything else (objects, dict subclasses, pickers with
response transformers, other pickers) goes through moto's own code unchanged.

moto has no switch for this and no maintained library does it, hence this patch. It is installed
by the local stack (``StackConfig.fast_serializer``); ``tests/emulator/test_fast_serialize.py`` checks
that responses are byte-for-byte what moto's own path produces, and bench/throughput.py measures it.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_CACHE_ATTRIBUTE = "_marketplace_picker_keys"


def _candidate_keys(shape: Any, key: str) -> tuple[str, ...]:
    """The keys moto's XFormedAttributePicker tries, in its order, for a plain dict (see
    moto.core.serialize.DEFAULT_ALIAS_PROVIDERS): ExplicitAlias never applies to a dict (it has no
    ``Meta``); then ShapeNameAlias, NoAlias, ShapePrefixAlias, ClassPrefixAlias (the class is
    ``dict``), ModelAlias; each alias followed by its ``xform_name``."""
    from botocore import xform_name

    aliases: list[str] = []
    parent = getattr(shape, "parent", None)
    if shape is not None and shape.type_name in ("list", "structure"):
        conflicts = parent is not None and shape.name in getattr(parent, "members", ())
        if not conflicts and key != shape.name:
            aliases.append(shape.name)
    aliases.append(key)
    prefixed = (
        parent is not None and parent.type_name == "structure" and key.lower().startswith(parent.name.lower())
    )
    if prefixed and key[len(parent.name) :] not in parent.members:
        aliases.append(key[len(parent.name) :])
    if key.lower().startswith("dict"):
        aliases.append(key[len("dict") :])
    if shape is not None and shape.serialization.get("name", key) != key:
        aliases.append(shape.serialization["name"])
    keys: list[str] = []
    for alias in aliases:
        keys += [alias, xform_name(alias)]
    return tuple(keys)


def _keys_for(shape: Any, key: str) -> tuple[str, ...]:
    parent = getattr(shape, "parent", None)
    cache = shape.__dict__.get(_CACHE_ATTRIBUTE)
    if cache is None:
        cache = shape.__dict__.setdefault(_CACHE_ATTRIBUTE, {})
    entry = cache.get((id(parent), key))
    if entry is None or entry[0] is not parent:
        entry = (parent, _candidate_keys(shape, key))
        cache[(id(parent), key)] = entry
    return entry[1]


def install() -> None:
    """Patch moto's ResponseSerializer.get_value (idempotent; the original is kept as
    ``__wrapped__``)."""
    from moto.core import serialize

    with _lock:
        original = serialize.ResponseSerializer.get_value
        if getattr(original, "__wrapped__", None) is not None:
            return
        picker_type = serialize.XFormedAttributePicker

        def get_value(self: Any, value: Any, key: str, shape: Any) -> Any:
            picker = self._value_picker
            if (
                type(value) is not dict
                or type(picker) is not picker_type
                or picker.response_transformers
                or shape is None
                or "." in key
            ):
                return original(self, value, key, shape)
            for candidate in _keys_for(shape, key):
                if "." in candidate:  # moto would read it as a path: leave it to moto
                    return original(self, value, key, shape)
                if candidate in value:
                    return value[candidate]
            return None

        get_value.__wrapped__ = original  # type: ignore[attr-defined]
        serialize.ResponseSerializer.get_value = get_value  # type: ignore[method-assign]


def uninstall() -> None:
    from moto.core import serialize

    with _lock:
        original = getattr(serialize.ResponseSerializer.get_value, "__wrapped__", None)
        if original is not None:
            serialize.ResponseSerializer.get_value = original  # type: ignore[method-assign]
