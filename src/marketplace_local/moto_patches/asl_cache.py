"""Parses each state machine definition once, not once per execution.

moto's Step Functions engine (the ASL interpreter it shares with LocalStack) parses the definition
with ANTLR at the start of every execution (``ExecutionWorker._get_evaluation_entrypoint``). On this
machine that is 85 ms of CPU for statemachines/supplier_order.asl.json and 110 ms for
supplier_onboarding.asl.json, per execution: the largest single item in the local stack's profile
under load (bench/throughput.py), and a ceiling of about ten executions per second per core.

The parsed program is a tree of declarations; an execution's state (input, output, context object,
retry counters, the heap) lives in its own ``Environment``, which is why moto can already run the
branches and iterations of Parallel and Map states through one parsed sub-tree at the same time.
So the program is cached by definition text and shared. One piece of the tree is lazily written:
``EvalComponent.heap_key``, the uid under which a component keeps per-execution values (retry
attempt counts) in the execution's heap. Two executions reaching a component for the first time
at once could each create a different uid and one lose its retry count, so the uid is created
under a lock. tests/emulator/test_asl_cache.py runs concurrent executions with retries through one
cached program. ``StackConfig.cache_asl_programs = False`` (or :func:`uninstall`) parses per
execution again.

The JSONPaths inside the program are parsed again on every evaluation: each ``$.tenantId`` of
every state's Parameters builds a jsonpath_ng parser (its PLY tables) and parses the text, 15 % of
the stack's CPU in a profile of the fault run. A parsed JSONPath is an immutable tree (``find``
and ``update_or_create`` change the data, not the expression), so they are cached by their text too.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

_MAX_PROGRAMS = 256  # definitions are few; a test suite that creates many never grows without bound

_lock = threading.Lock()
_programs: dict[str, Any] = {}
_originals: list[tuple[Any, str, Any]] = []
parses = 0  # how many definitions were parsed (a figure for tests and people)


def _cached_entrypoint(self: Any) -> Any:
    global parses
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    definition = self._evaluation_details.state_machine_details.definition
    program = _programs.get(definition)
    if program is None:
        with _lock:
            program = _programs.get(definition)
            if program is None:
                program = AmazonStateLanguageParser.parse(definition)[0]
                if len(_programs) >= _MAX_PROGRAMS:
                    _programs.clear()
                _programs[definition] = program
                parses += 1
    return program


_heap_lock = threading.Lock()
_HEAP_ATTRIBUTE = "_EvalComponent__heap_key"  # EvalComponent's private __heap_key


def _heap_key(self: Any) -> str:
    from moto.stepfunctions.parser.utils import long_uid

    key = self.__dict__.get(_HEAP_ATTRIBUTE)
    if key is None:
        with _heap_lock:
            key = self.__dict__.get(_HEAP_ATTRIBUTE)
            if key is None:
                key = long_uid()
                setattr(self, _HEAP_ATTRIBUTE, key)
    return key


jsonpath_parses = 0  # how many JSONPath texts were parsed (a figure for tests and people)


def _cached_parser(parse: Any) -> Any:
    """``parse`` (jsonpath_ng's, or its extended one) once per JSONPath text."""

    @functools.lru_cache(maxsize=4096)
    def cached(path: str) -> Any:
        global jsonpath_parses
        jsonpath_parses += 1
        return parse(path)

    cached.__wrapped__ = parse  # type: ignore[attr-defined]
    return cached


def install() -> None:
    """Cache parsed programs (idempotent)."""
    if _originals:
        return
    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
    from moto.stepfunctions.parser.asl.utils import json_path
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    for owner, name, value in (
        (ExecutionWorker, "_get_evaluation_entrypoint", _cached_entrypoint),
        (EvalComponent, "heap_key", property(_heap_key)),
        (json_path, "parse", _cached_parser(json_path.parse)),
        (result_path, "parse", _cached_parser(result_path.parse)),
    ):
        _originals.append((owner, name, owner.__dict__[name]))
        setattr(owner, name, value)


def uninstall() -> None:
    while _originals:
        owner, name, value = _originals.pop()
        setattr(owner, name, value)
    with _lock:
        _programs.clear()
