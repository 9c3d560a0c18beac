"""Generated documentation: state machine diagrams, the API reference, the deploy tables.

    python -m tools.docgen           # rewrite the generated docs (make docs)
    python -m tools.docgen --check   # exit 1 with a diff if one is stale (make docs-check)

Everything here is read from template.yaml (the raw SAM template, as `marketplace_local.template`
parses it) and the ASL files it names, so the docs follow the sources:

* docs/architecture.md: one Mermaid ``stateDiagram-v2`` per ``AWS::Serverless::StateMachine``, between
  ``<!-- BEGIN GENERATED: <logical id> -->`` and ``<!-- END GENERATED -->``; the prose around them is kept.
* docs/api.md: the whole file, from the OpenAPI ``DefinitionBody`` of each ``AWS::Serverless::Api`` (read
  with its ``AWS::Include`` in place: ``api/openapi.yaml``).
* docs/deploy.md: the parameter, output and data-resource tables, between markers like the diagrams.
* docs/orders.md: the supplier order's lifecycle after intake, from ``marketplace.order_lifecycle``.

Hand-written on purpose: Mermaid and Markdown writers exist (for JavaScript, or as heavy document
frameworks), but none reads ASL or turns an OpenAPI body into the reference we want, and the output
must be byte-for-byte deterministic so that ``--check`` can compare it with the checked-in files.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marketplace_local.template import TEMPLATE_PATH, load_sam

ROOT = TEMPLATE_PATH.parent
DOCS = ROOT / "docs"
COMMAND = "make docs"  # (python -m tools.docgen)

BEGIN = "<!-- BEGIN GENERATED: {name} -->"
END = "<!-- END GENERATED -->"
_BLOCK = re.compile(r"<!-- BEGIN GENERATED: (?P<name>[^ ]+) -->\n.*?<!-- END GENERATED -->\n?", re.DOTALL)


# ----------------------------------------------------------------------------- Markdown helpers


def _cell(value: Any) -> str:
    """A Markdown table cell: one line, pipes escaped."""
    text = "" if value is None else str(value)
    return " ".join(text.split()).replace("|", "\\|")


def _table(header: list[str], rows: Iterable[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _intrinsic(value: Any) -> str:
    """A template value as a reader would write it: `!Ref X`, `!GetAtt X.Arn`, `!Sub ...`."""
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref":
            return f"!Ref {arg}"
        if key == "Fn::GetAtt":
            return "!GetAtt " + (".".join(arg) if isinstance(arg, list) else arg)
        if key == "Fn::Sub":
            return "!Sub " + (arg[0] if isinstance(arg, list) else arg)
        return f"!{key.removeprefix('Fn::')} " + json.dumps(arg, sort_keys=True)
    if isinstance(value, list):
        return ", ".join(_intrinsic(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    return "" if value is None else str(value)


def _logical_target(value: Any) -> str | None:
    """The logical id a Ref/GetAtt points at, if that is what the value is."""
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref" and isinstance(arg, str):
            return arg
        if key == "Fn::GetAtt":
            return arg[0] if isinstance(arg, list) else arg.split(".", 1)[0]
    return None


# ----------------------------------------------------------------------------- ASL -> Mermaid

# Choice comparison operators, short form. The *Path variants compare with another path.
_OPERATORS = {
    "Equals": "==",
    "LessThan": "<",
    "GreaterThan": ">",
    "LessThanEquals": "<=",
    "GreaterThanEquals": ">=",
}
_TYPE_TESTS = {
    "IsNull": "null",
    "IsString": "a string",
    "IsNumeric": "a number",
    "IsBoolean": "a boolean",
    "IsTimestamp": "a timestamp",
}
_MERMAID_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_MERMAID_RESERVED = {"state", "note", "end", "direction", "classDef", "class", "style", "click"}
# Parameters that name a task's target, in the order we look for them.
_TARGET_PARAMETERS = (
    "FunctionName",
    "StateMachineArn",
    "QueueUrl",
    "TopicArn",
    "TableName",
    "EventBusName",
    "Bucket",
    "Name",
)


def _path(value: str) -> str:
    """`$.validation.outcome` -> `validation.outcome` (the short form of a JSONPath)."""
    return value[2:] if value.startswith("$.") else value


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, bool):
        return str(value).lower()
    return json.dumps(value)


def choice_condition(rule: dict[str, Any]) -> str:
    """A Choice rule in short form: `validation.outcome == 'APPROVED'`, `round < settings.maxRounds`."""
    if "Condition" in rule:  # JSONata
        return str(rule["Condition"]).removeprefix("{%").removesuffix("%}").strip()
    if "And" in rule or "Or" in rule:
        joiner = " and " if "And" in rule else " or "
        parts = rule.get("And") or rule.get("Or")
        # `x present and x == 'A'` reads as `x == 'A'`: the guard only keeps a missing field from failing.
        compared = {p.get("Variable") for p in parts if "IsPresent" not in p}
        kept = [p for p in parts if not (p.get("IsPresent") is True and p.get("Variable") in compared)]
        texts = [choice_condition(p) for p in kept]
        if len(texts) == 1:
            return texts[0]
        # A nested And/Or is bracketed; a plain comparison needs no brackets.
        return joiner.join(
            f"({t})" if "And" in p or "Or" in p else t for t, p in zip(texts, kept, strict=True)
        )
    if "Not" in rule:
        return f"not ({choice_condition(rule['Not'])})"
    variable = _path(rule.get("Variable", "?"))
    for key, value in rule.items():
        if key in ("Variable", "Next"):
            continue
        if key == "IsPresent":
            return f"{variable} present" if value else f"{variable} absent"
        if key in _TYPE_TESTS:
            return f"{variable} is {'' if value else 'not '}{_TYPE_TESTS[key]}"
        if key in ("StringMatches",):
            return f"{variable} matches {_literal(value)}"
        base = key.removesuffix("Path")
        for suffix, symbol in _OPERATORS.items():
            if base.endswith(suffix) and base[: -len(suffix)] in (
                "String",
                "Numeric",
                "Boolean",
                "Timestamp",
            ):
                right = _path(value) if key.endswith("Path") else _literal(value)
                return f"{variable} {symbol} {right}"
    return json.dumps({k: v for k, v in rule.items() if k != "Next"}, sort_keys=True)


def _retry_lines(retrier: dict[str, Any], width: int = 72) -> list[str]:
    """A Retry clause: `retry 5x from 2s (x2, max 60s, jitter full)` then its errors, wrapped so the
    state's box stays narrow."""
    details = [f"x{retrier.get('BackoffRate', 2.0)}"]
    if "MaxDelaySeconds" in retrier:
        details.append(f"max {retrier['MaxDelaySeconds']}s")
    if retrier.get("JitterStrategy", "NONE") != "NONE":
        details.append(f"jitter {retrier['JitterStrategy'].lower()}")
    attempts, interval = retrier.get("MaxAttempts", 3), retrier.get("IntervalSeconds", 1)
    head = f"retry {attempts}x from {interval}s ({', '.join(details)}) on"
    lines, current = [head], ""
    for error in retrier.get("ErrorEquals", []):
        candidate = f"{current}, {error}" if current else error
        if current and len(candidate) > width:
            lines.append(current + ",")
            candidate = error
        current = candidate
    return [*lines, current] if current else lines


@dataclass
class _Substitutions:
    """DefinitionSubstitutions: `${Name}` in the ASL -> what the template binds it to."""

    values: dict[str, Any]

    def short(self, text: Any) -> str | None:
        if not isinstance(text, str):
            return None
        match = re.fullmatch(r"\$\{([^}]+)\}", text)
        if not match:
            return None
        name = match.group(1)
        return _logical_target(self.values.get(name)) or name


def task_resource(state: dict[str, Any], subs: _Substitutions) -> str:
    """`lambda:invoke ValidateSupplierFunction`, `dynamodb:updateItem MarketplaceTable`, ..."""
    resource = state.get("Resource", "")
    direct = subs.short(resource)
    if direct:  # a Lambda (or activity) ARN as the resource itself
        return direct
    action = resource.split(":::", 1)[1] if ":::" in resource else resource
    params = state.get("Parameters") or state.get("Arguments") or {}
    for name in _TARGET_PARAMETERS:
        target = subs.short(params.get(name))
        if target:
            return f"{action} {target}"
    return action


def _timeouts(state: dict[str, Any]) -> list[str]:
    found = []
    for key, label in (("TimeoutSeconds", "timeout"), ("HeartbeatSeconds", "heartbeat")):
        if key in state:
            found.append(f"{label} {state[key]}s")
        elif f"{key}Path" in state:
            found.append(f"{label} {_path(state[key + 'Path'])}")
    return found


class _Ids:
    """Mermaid state ids: the ASL name where Mermaid accepts it, else a sanitised unique one."""

    def __init__(self) -> None:
        self.ids: dict[tuple[str, str], str] = {}
        self.used: set[str] = set()

    def __call__(self, scope: str, name: str) -> str:
        key = (scope, name)
        if key not in self.ids:
            base = name if _MERMAID_ID.match(name) else re.sub(r"\W+", "_", name).strip("_") or "state"
            if not base[0].isalpha():
                base = f"s_{base}"
            if base in _MERMAID_RESERVED:
                base = f"{base}_"
            candidate, n = base, 2
            while candidate in self.used:
                candidate, n = f"{base}_{n}", n + 1
            self.used.add(candidate)
            self.ids[key] = candidate
        return self.ids[key]


def _label(text: str) -> str:
    # Mermaid reads `;` and newlines as statement ends and `"` as a delimiter in state names.
    return " ".join(text.replace(";", ",").replace('"', "'").split())


def _machine_lines(
    machine: dict[str, Any], subs: _Substitutions, ids: _Ids, scope: str, indent: str
) -> list[str]:
    states: dict[str, dict[str, Any]] = machine["States"]
    lines: list[str] = []
    sid = lambda name: ids(scope, name)  # noqa: E731
    lines.append(f"{indent}[*] --> {sid(machine['StartAt'])}")
    for name, state in states.items():
        me = sid(name)
        kind = state["Type"]
        description = [kind]
        if kind == "Task":
            description = [f"Task {task_resource(state, subs)}"]
        elif kind == "Map" and "MaxConcurrency" in state:
            description = [f"Map, at most {state['MaxConcurrency']} at once"]
        elif kind == "Wait":
            for key in ("Seconds", "SecondsPath", "Timestamp", "TimestampPath"):
                if key in state:
                    description = [f"Wait {key} {_path(str(state[key]))}"]
        elif kind == "Fail":
            description = ["Fail " + " ".join(f"{k} {state[k]}" for k in ("Error", "Cause") if k in state)]
        description += _timeouts(state)
        retries = [text for retrier in state.get("Retry", []) for text in _retry_lines(retrier)]
        if kind in ("Map", "Parallel"):
            # Mermaid gives a composite state a label only (no description lines): the type goes in the
            # label and the retries in a note.
            lines.append(f'{indent}state "{_label(name)} ({_label(", ".join(description))})" as {me}')
            inner_indent = indent + "    "
            lines.append(f"{indent}state {me} {{")
            if kind == "Map":
                processor = state.get("ItemProcessor") or state.get("Iterator")
                lines += _machine_lines(processor, subs, ids, f"{scope}/{name}", inner_indent)
            else:
                for i, branch in enumerate(state["Branches"]):
                    if i:
                        lines.append(f"{inner_indent}--")
                    lines += _machine_lines(branch, subs, ids, f"{scope}/{name}[{i}]", inner_indent)
            lines.append(f"{indent}}}")
            if retries:
                lines += [f"{indent}note right of {me}", *(f"{inner_indent}{_label(t)}" for t in retries)]
                lines.append(f"{indent}end note")
        else:
            if me != name:
                lines.append(f'{indent}state "{_label(name)}" as {me}')
            lines.append(f"{indent}{me} : {_label(', '.join(description))}")
            lines += [f"{indent}{me} : {_label(text)}" for text in retries]
        for rule in state.get("Choices", []):
            lines.append(f"{indent}{me} --> {sid(rule['Next'])} : {_label(choice_condition(rule))}")
        if "Default" in state:
            lines.append(f"{indent}{me} --> {sid(state['Default'])} : default")
        if "Next" in state:
            lines.append(f"{indent}{me} --> {sid(state['Next'])}")
        for catcher in state.get("Catch", []):
            errors = ", ".join(catcher.get("ErrorEquals", []))
            lines.append(f"{indent}{me} --> {sid(catcher['Next'])} : {_label('catch ' + errors)}")
        if state.get("End") or kind in ("Succeed", "Fail"):
            lines.append(f"{indent}{me} --> [*]" + (" : fails" if kind == "Fail" else ""))
    return lines


def mermaid(definition: dict[str, Any], substitutions: dict[str, Any] | None = None) -> str:
    """The ASL definition as a Mermaid stateDiagram-v2 (without the code fence)."""
    lines = ["stateDiagram-v2"]
    lines += _machine_lines(definition, _Substitutions(substitutions or {}), _Ids(), "", "    ")
    return "\n".join(lines) + "\n"


@dataclass
class StateMachine:
    logical_id: str
    path: Path
    kind: str
    definition: dict[str, Any]
    substitutions: dict[str, Any]


def state_machines(sam: dict[str, Any], root: Path = ROOT) -> list[StateMachine]:
    found = []
    for logical_id, resource in sam["Resources"].items():
        if resource["Type"] != "AWS::Serverless::StateMachine":
            continue
        props = resource.get("Properties") or {}
        uri = props.get("DefinitionUri")
        if not isinstance(uri, str):
            raise ValueError(f"{logical_id}: docgen reads a local DefinitionUri, got {uri!r}")
        path = root / uri
        found.append(
            StateMachine(
                logical_id,
                path,
                props.get("Type", "STANDARD"),
                json.loads(path.read_text()),
                props.get("DefinitionSubstitutions") or {},
            )
        )
    return found


def state_machine_block(machine: StateMachine, root: Path = ROOT) -> str:
    rel = machine.path.relative_to(root).as_posix()
    lines = [
        f"`{machine.logical_id}` ({machine.kind.capitalize()}, [`{rel}`](../{rel})): "
        f"{len(machine.definition['States'])} top-level states. Generated by `{COMMAND}`; do not edit.",
        "",
        "```mermaid",
        mermaid(machine.definition, machine.substitutions).rstrip("\n"),
        "```",
    ]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- generated blocks


def replace_blocks(text: str, blocks: dict[str, str], append_heading: str) -> str:
    """Put each block between its markers; blocks without markers are appended under append_heading;
    marked blocks whose name is no longer generated are removed."""
    seen: set[str] = set()

    def swap(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in blocks:
            return ""
        seen.add(name)
        return f"{BEGIN.format(name=name)}\n{blocks[name]}{END}\n"

    text = _BLOCK.sub(swap, text)
    missing = [name for name in blocks if name not in seen]
    if missing:
        if append_heading not in text:
            text = text.rstrip("\n") + f"\n\n{append_heading}\n"
        for name in missing:
            text = text.rstrip("\n") + f"\n\n{BEGIN.format(name=name)}\n{blocks[name]}{END}\n"
    return text


# ----------------------------------------------------------------------------- OpenAPI -> api.md


class _Spec:
    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.schemas: dict[str, Any] = (body.get("components") or {}).get("schemas") or {}

    def resolve(self, schema: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
        ref = schema.get("$ref") if isinstance(schema, dict) else None
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[1]
            return name, self.schemas.get(name, {})
        if isinstance(ref, str) and ref.startswith("#/components/parameters/"):
            name = ref.rsplit("/", 1)[1]
            return name, ((self.body.get("components") or {}).get("parameters") or {}).get(name, {})
        return None, schema if isinstance(schema, dict) else {}

    def type_of(self, schema: dict[str, Any]) -> str:
        name, target = self.resolve(schema)
        if name:
            return _schema_link(name)
        for combinator in ("oneOf", "anyOf", "allOf"):
            if combinator in target:
                word = {"oneOf": "one of", "anyOf": "any of", "allOf": "all of"}[combinator]
                return f"{word} " + ", ".join(self.type_of(s) for s in target[combinator])
        kind = target.get("type", "any")
        if kind == "array":
            return f"array of {self.type_of(target.get('items') or {})}"
        if "format" in target:
            return f"{kind} ({target['format']})"
        return str(kind)


def _schema_link(name: str) -> str:
    return f"[{name}](#schema-{name.lower()})"


def constraints(schema: dict[str, Any]) -> str:
    parts = []
    if "enum" in schema:
        parts.append("one of " + ", ".join(f"`{v}`" for v in schema["enum"]))
    for key, word in (
        ("minLength", "length >="),
        ("maxLength", "length <="),
        ("minimum", ">="),
        ("maximum", "<="),
        ("exclusiveMinimum", ">"),
        ("exclusiveMaximum", "<"),
        ("minItems", "items >="),
        ("maxItems", "items <="),
        ("pattern", "matches"),
    ):
        if key in schema and not isinstance(schema[key], bool):
            value = f"`{schema[key]}`" if key == "pattern" else schema[key]
            parts.append(f"{word} {value}")
    if schema.get("uniqueItems"):
        parts.append("unique items")
    if "default" in schema:
        parts.append(f"default `{json.dumps(schema['default'])}`")
    if schema.get("nullable"):
        parts.append("nullable")
    if schema.get("additionalProperties") is False:
        parts.append("no other fields")
    return "; ".join(parts)


def _field_rows(
    spec: _Spec, schema: dict[str, Any], prefix: str, expand: bool, trail: tuple[str, ...]
) -> list[list[Any]]:
    """Rows (field, type, required, constraints, description), nested fields as `a.b` and `a[].b`."""
    _, target = spec.resolve(schema)
    required = set(target.get("required") or [])
    rows = []
    for field_name, prop in (target.get("properties") or {}).items():
        ref_name, resolved = spec.resolve(prop)
        description = prop.get("description") or (resolved.get("description") if not ref_name else "")
        rows.append(
            [
                f"`{prefix}{field_name}`",
                spec.type_of(prop),
                "yes" if field_name in required else "",
                constraints(resolved),
                description,
            ]
        )
        # Named schemas are expanded only when asked (a request body); inline objects always, since
        # they have no section of their own to link to.
        nested_ref, nested, suffix = ref_name, resolved, "."
        if resolved.get("type") == "array":
            nested_ref, nested = spec.resolve(resolved.get("items") or {})
            suffix = "[]."
        if nested.get("properties") and (expand or nested_ref is None) and nested_ref not in trail:
            deeper = (*trail, nested_ref) if nested_ref else trail
            rows += _field_rows(spec, nested, f"{prefix}{field_name}{suffix}", expand, deeper)
    return rows


_METHODS = ("get", "put", "post", "patch", "delete", "head", "options")


def _operations(body: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any], list[dict[str, Any]]]]:
    """(group, method, path, operation, path-level parameters), in the spec's order."""
    found = []
    for path, item in (body.get("paths") or {}).items():
        shared = item.get("parameters") or []
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            tags = operation.get("tags") or []
            group = tags[0] if tags else "/" + path.strip("/").split("/", 1)[0]
            found.append((group, method.upper(), path, operation, shared))
    return found


def _roles(text: str, roles: list[str]) -> str:
    """The roles a summary names in parentheses, e.g. `(retailer, admin; a supplier for itself)`."""
    for inner in re.findall(r"\(([^()]*)\)", text or ""):
        if any(re.search(rf"\b{re.escape(role)}s?\b", inner) for role in roles):
            return inner
    return ""


def _anchor(text: str) -> str:
    """GitHub's heading anchor."""
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def api_markdown(logical_id: str, body: dict[str, Any], roles: list[str]) -> list[str]:
    spec = _Spec(body)
    info = body.get("info") or {}
    lines = [
        f"{info.get('title', logical_id)} {info.get('version', '')}, OpenAPI {body.get('openapi', '?')} "
        f"(the `DefinitionBody` of `{logical_id}`). Base URL: the stack output `ApiUrl`; locally "
        "`http://127.0.0.1:3000`, where `GET /openapi.json` serves the same body.",
        "",
    ]

    lines += ["## Authentication", ""]
    schemes = (body.get("components") or {}).get("securitySchemes") or {}
    default_security = [name for entry in body.get("security") or [] for name in entry]
    for name, scheme in schemes.items():
        authorizer = scheme.get("x-amazon-apigateway-authorizer") or {}
        providers = ", ".join(
            f"`{_logical_target(p) or _intrinsic(p)}`" for p in authorizer.get("providerARNs") or []
        )
        kind = authorizer.get("type") or scheme.get("x-amazon-apigateway-authtype") or scheme.get("type")
        where = f"the `{scheme.get('name')}` {scheme.get('in')}" if scheme.get("name") else scheme.get("type")
        default = " Every operation needs it unless it says otherwise." if name in default_security else ""
        lines.append(
            f"* `{name}`: {kind} in {where}"
            + (f" (user pool {providers})" if providers else "")
            + f".{default}"
        )
    if roles:
        lines.append(
            "* Roles are the Cognito groups " + ", ".join(f"`{r}`" for r in roles) + "; the operations "
            "below say which may call each (from the spec's summaries)."
        )
    lines.append("")

    lines += ["## Errors", "", "Every error answers with this body:", "", "```json"]
    error_name = "Error" if "Error" in spec.schemas else None
    if error_name:
        lines.append(json.dumps(_example(spec, spec.schemas[error_name], ()), indent=2))
    lines += ["```", ""]
    if error_name:
        lines += _table(
            ["field", "type", "required", "constraints", "description"],
            _field_rows(spec, spec.schemas[error_name], "", True, (error_name,)),
        )
        lines.append("")
    gateway = body.get("x-amazon-apigateway-gateway-responses") or {}
    if gateway:
        lines += ["Answers from API Gateway itself, before the function runs:", ""]
        rows = []
        for response_type, response in gateway.items():
            template = ((response.get("responseTemplates") or {}).get("application/json")) or ""
            code = re.search(r'"code":\s*"([^"]+)"', template)
            rows.append(
                [
                    f"`{response_type}`",
                    response.get("statusCode", "its own"),
                    f"`{code.group(1)}`" if code else "",
                ]
            )
        lines += _table(["gateway response", "status", "code"], rows)
        lines.append("")

    operations = _operations(body)
    lines += ["## Operations", ""]
    lines += _table(
        ["method", "path", "summary"],
        [[m, f"[`{p}`](#{_anchor(f'{m} {p}')})", op.get("summary", "")] for _, m, p, op, _ in operations],
    )
    lines.append("")

    groups: dict[str, list[Any]] = {}
    for entry in operations:
        groups.setdefault(entry[0], []).append(entry)
    for group, entries in groups.items():
        lines += [f"## `{group}`", ""]
        for _, method, path, operation, shared in entries:
            lines += _operation(spec, method, path, operation, shared, roles, default_security)

    lines += ["## Schemas", ""]
    for name, schema in spec.schemas.items():
        lines += [f"### Schema {name}", ""]
        if schema.get("description"):
            lines += [" ".join(str(schema["description"]).split()), ""]
        if schema.get("properties"):
            lines += _table(
                ["field", "type", "required", "constraints", "description"],
                _field_rows(spec, schema, "", False, (name,)),
            )
        else:
            lines.append(
                f"{spec.type_of(schema)}" + (f"; {constraints(schema)}" if constraints(schema) else "")
            )
        lines.append("")
    return lines


def _example(spec: _Spec, schema: dict[str, Any], trail: tuple[str, ...]) -> Any:
    name, target = spec.resolve(schema)
    if name in trail:
        return {}
    kind = target.get("type")
    if kind == "object" or target.get("properties"):
        return {
            k: _example(spec, v, (*trail, name or "")) for k, v in (target.get("properties") or {}).items()
        }
    if kind == "array":
        return [_example(spec, target.get("items") or {}, (*trail, name or ""))]
    return {"string": "...", "integer": 0, "number": 0, "boolean": False}.get(kind or "")


def _operation(
    spec: _Spec,
    method: str,
    path: str,
    operation: dict[str, Any],
    shared: list[dict[str, Any]],
    roles: list[str],
    default_security: list[str],
) -> list[str]:
    lines = [f"### {method} {path}", ""]
    summary = " ".join(str(operation.get("summary", "")).split())
    if summary:
        lines += [summary, ""]
    if operation.get("description"):
        lines += [" ".join(str(operation["description"]).split()), ""]
    facts = [f"operationId `{operation['operationId']}`"] if operation.get("operationId") else []
    security = operation.get("security")
    if security == []:
        facts.append("no token needed")
    elif security:
        facts.append("auth " + ", ".join(f"`{n}`" for entry in security for n in entry))
    elif default_security:
        facts.append("auth " + ", ".join(f"`{n}`" for n in default_security))
    who = _roles(summary + " " + str(operation.get("description", "")), roles)
    if who:
        facts.append(f"who: {who}")
    for key, value in operation.items():
        if key.startswith("x-") and not key.startswith("x-amazon-apigateway"):
            facts.append(
                f"`{key}`: {_intrinsic(value) if not isinstance(value, (dict, list)) else json.dumps(value)}"
            )
    lines += ["* " + fact for fact in facts] + [""]

    parameters = list(shared) + list(operation.get("parameters") or [])
    if parameters:
        rows = []
        for parameter in parameters:
            _, parameter = spec.resolve(parameter) if "$ref" in parameter else (None, parameter)
            schema = parameter.get("schema") or {}
            _, resolved = spec.resolve(schema)
            rows.append(
                [
                    f"`{parameter.get('name')}`",
                    parameter.get("in"),
                    spec.type_of(schema),
                    "yes" if parameter.get("required") else "",
                    constraints(resolved),
                    parameter.get("description", ""),
                ]
            )
        lines += ["Parameters:", ""]
        lines += _table(["name", "in", "type", "required", "constraints", "description"], rows)
        lines.append("")

    request = operation.get("requestBody")
    if request:
        for media, content in (request.get("content") or {}).items():
            schema = content.get("schema") or {}
            name, resolved = spec.resolve(schema)
            required = ", required" if request.get("required") else ""
            head = f"Request body ({media}{required}): {spec.type_of(schema)}"
            lines += [head + ".", ""]
            if resolved.get("description"):
                lines += [" ".join(str(resolved["description"]).split()), ""]
            rows = _field_rows(spec, schema, "", True, (name or "",))
            if rows:
                lines += _table(["field", "type", "required", "constraints", "description"], rows)
                lines.append("")

    responses = operation.get("responses") or {}
    if responses:
        rows = []
        for status, response in responses.items():
            bodies = [
                f"{spec.type_of(c.get('schema') or {})}" for c in (response.get("content") or {}).values()
            ]
            rows.append([f"`{status}`", response.get("description", ""), ", ".join(bodies)])
        lines += ["Responses:", ""]
        lines += _table(["status", "meaning", "body"], rows)
        lines.append("")
    return lines


def api_doc(sam: dict[str, Any]) -> str:
    roles = [
        (resource.get("Properties") or {}).get("GroupName")
        for resource in sam["Resources"].values()
        if resource["Type"] == "AWS::Cognito::UserPoolGroup"
    ]
    roles = [r for r in roles if isinstance(r, str)]
    apis = [
        (lid, r["Properties"]["DefinitionBody"])
        for lid, r in sam["Resources"].items()
        if r["Type"] == "AWS::Serverless::Api" and "DefinitionBody" in (r.get("Properties") or {})
    ]
    lines = [
        "# API reference",
        "",
        f"<!-- Generated by `{COMMAND}` (python -m tools.docgen) from the OpenAPI body of "
        "template.yaml's API (the file its DefinitionBody includes). Do not edit: change that file and run "
        "`make docs`; `make docs-check` fails while this file is out of date. -->",
        "",
    ]
    for logical_id, body in apis:
        if len(apis) > 1:
            lines += [f"# {logical_id}", ""]
        lines += api_markdown(logical_id, body, roles)
    return "\n".join(lines).rstrip("\n") + "\n"


# ----------------------------------------------------------------------------- deploy.md tables


def parameters_block(sam: dict[str, Any]) -> str:
    rows = []
    for name, spec in (sam.get("Parameters") or {}).items():
        allowed = []
        if "AllowedValues" in spec:
            allowed.append("one of " + ", ".join(str(v) for v in spec["AllowedValues"]))
        if "AllowedPattern" in spec:
            allowed.append(f"matches `{spec['AllowedPattern']}`")
        for key, word in (
            ("MinValue", ">="),
            ("MaxValue", "<="),
            ("MinLength", "length >="),
            ("MaxLength", "length <="),
        ):
            if key in spec:
                allowed.append(f"{word} {spec[key]}")
        default = spec.get("Default")
        rows.append(
            [
                f"`{name}`",
                spec.get("Type", ""),
                "(required)" if default is None else (f"`{default}`" if default != "" else "empty"),
                "; ".join(allowed),
                spec.get("Description", ""),
            ]
        )
    return "\n".join(_table(["parameter", "type", "default", "allowed", "what it sets"], rows)) + "\n"


def _override_value(value: Any) -> str:
    """A parameter override's value as the shell passes it to SAM: an empty one quoted for SAM
    (``PinnedTenant=\\"\\"``), since a bare ``Name=`` sets nothing."""
    return str(value) if value != "" else '\\"\\"'


def deploy_command_block(sam: dict[str, Any]) -> str:
    """A non-guided `sam deploy` that sets every template parameter (to its default, to be edited)."""
    params = sam.get("Parameters") or {}
    stage = (params.get("Stage") or {}).get("Default", "dev")
    lines = [
        "```sh",
        ".venv-sam/bin/sam deploy \\",
        f"  --stack-name marketplace-{stage} \\",
        "  --region eu-central-1 \\",
        "  --resolve-s3 \\",
        "  --capabilities CAPABILITY_IAM \\",
        "  --parameter-overrides \\",
        *(
            f"    {name}={_override_value(spec.get('Default', '<value>'))} \\"
            for name, spec in params.items()
        ),
        f"  --tags app=marketplace stage={stage} \\",
        "  --no-confirm-changeset \\",
        "  --no-fail-on-empty-changeset",
        "```",
    ]
    return "\n".join(lines) + "\n"


def outputs_block(sam: dict[str, Any]) -> str:
    rows = [
        [f"`{name}`", _intrinsic(spec.get("Value")), spec.get("Description", "")]
        for name, spec in (sam.get("Outputs") or {}).items()
    ]
    return "\n".join(_table(["output", "value", "what it is"], rows)) + "\n"


# Resource types that hold data or records, and what CloudFormation does to them by default on delete.
_DATA_TYPES = {
    "AWS::DynamoDB::Table": "deleted with its items",
    "AWS::KMS::Key": "scheduled for deletion (PendingWindowInDays, 30 by default); cancel within the window",
    "AWS::Logs::LogGroup": "deleted with its logs",
    "AWS::S3::Bucket": "deleted only if empty, else the delete fails",
    "AWS::SQS::Queue": "deleted with its messages",
    "AWS::SNS::Topic": "deleted with its subscriptions",
    "AWS::Cognito::UserPool": "deleted with its users",
}


def _kms_keys(node: Any) -> set[str]:
    """Logical ids of the KMS keys a resource's properties name (KMSMasterKeyId, KmsKeyId, ...)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            target = _logical_target(value)
            if target and "kms" in key.lower() and "key" in key.lower():
                found.add(target)
            else:
                found |= _kms_keys(value)
    elif isinstance(node, list):
        for value in node:
            found |= _kms_keys(value)
    return found


def retained_block(sam: dict[str, Any]) -> str:
    rows = []
    for logical_id, resource in sam["Resources"].items():
        kind = resource["Type"]
        if kind not in _DATA_TYPES:
            continue
        policy = resource.get("DeletionPolicy", "Delete")
        replace = resource.get("UpdateReplacePolicy", "Delete")
        props = resource.get("Properties") or {}
        effect = {
            "Retain": "kept (delete it by hand)",
            "Snapshot": "a final snapshot is kept",
            "RetainExceptOnCreate": "kept, unless the stack's creation failed",
        }.get(policy, _DATA_TYPES[kind])
        if kind == "AWS::KMS::Key" and policy == "Delete" and "PendingWindowInDays" in props:
            effect = (
                f"scheduled for deletion in {props['PendingWindowInDays']} days; cancel within the window"
            )
        notes = []
        pitr = (props.get("PointInTimeRecoverySpecification") or {}).get("PointInTimeRecoveryEnabled")
        if pitr is True:
            notes.append("point-in-time recovery")
        if props.get("DeletionProtectionEnabled") is True:
            notes.append("deletion protection on")
        if "RetentionInDays" in props:
            notes.append(f"retention {_intrinsic(props['RetentionInDays'])} days")
        if props.get("EnableKeyRotation") is True:
            notes.append("key rotation")
        keys = sorted(_kms_keys(props))
        if keys:
            notes.append("encrypted with " + ", ".join(f"`{k}`" for k in keys))
        if "MessageRetentionPeriod" in props:
            notes.append(f"messages kept {_intrinsic(props['MessageRetentionPeriod'])} s")
        rows.append(
            [f"`{logical_id}`", kind.removeprefix("AWS::"), policy, replace, effect, ", ".join(notes)]
        )
    header = ["resource", "type", "DeletionPolicy", "UpdateReplacePolicy", "on `sam delete`", "notes"]
    return "\n".join(_table(header, rows)) + "\n"


# ----------------------------------------------------------------------------- the documents


def data_layout_block() -> str:
    """The single table's key shapes and indexes, from ``marketplace.keys`` (the one module that
    builds keys), so that the table in docs/architecture.md is the code's own."""
    from marketplace import keys

    lines = _table(["item", "PK", "SK", "notes"], ([item, f"`{pk}`" if "#" in pk else pk,
                                                   sk if "`" in sk else f"`{sk}`", notes]
                                                  for item, pk, sk, notes in keys.LAYOUT))  # fmt: skip
    lines += ["", *_table(["index", "key", "access pattern"], ([i, f"`{k}`", a] for i, k, a in keys.INDEXES))]
    return "\n".join(lines) + "\n"


def lifecycle_block() -> str:
    """The supplier order's lifecycle after intake, from ``marketplace.order_lifecycle`` (the one
    definition the code fires transitions from)."""
    from marketplace import order_lifecycle

    return f"```mermaid\n{order_lifecycle.diagram()}```\n"


@dataclass
class Doc:
    path: Path
    render: Callable[[str], str]  # current text ("" when missing) -> expected text


def documents(sam: dict[str, Any] | None = None, root: Path = ROOT) -> list[Doc]:
    sam = sam if sam is not None else load_sam(root / "template.yaml")
    docs = root / "docs"
    machines = {m.logical_id: state_machine_block(m, root) for m in state_machines(sam, root)}
    machines["data-layout"] = data_layout_block()
    deploy = {
        "deploy-command": deploy_command_block(sam),
        "parameters": parameters_block(sam),
        "outputs": outputs_block(sam),
        "data-resources": retained_block(sam),
    }
    api = api_doc(sam)
    lifecycle = {"supplier-order-lifecycle": lifecycle_block()}
    return [
        Doc(docs / "architecture.md", lambda text: replace_blocks(text, machines, "## State machines")),
        Doc(docs / "api.md", lambda _text: api),
        Doc(docs / "deploy.md", lambda text: replace_blocks(text, deploy, "## Generated tables")),
        Doc(docs / "orders.md", lambda text: replace_blocks(text, lifecycle, "## 6. After acceptance")),
    ]


def stale(root: Path = ROOT, sam: dict[str, Any] | None = None) -> dict[Path, list[str]]:
    """Each generated doc that differs from what the sources give, with its unified diff."""
    found = {}
    for doc in documents(sam, root):
        current = doc.path.read_text() if doc.path.exists() else ""
        expected = doc.render(current)
        if current != expected:
            rel = doc.path.relative_to(root).as_posix()
            found[doc.path] = list(
                difflib.unified_diff(
                    current.splitlines(),
                    expected.splitlines(),
                    f"{rel} (checked in)",
                    f"{rel} (from the sources)",
                    lineterm="",
                    n=1,
                )
            )
    return found


def write(root: Path = ROOT) -> list[Path]:
    changed = []
    for doc in documents(None, root):
        current = doc.path.read_text() if doc.path.exists() else ""
        expected = doc.render(current)
        if current != expected:
            doc.path.parent.mkdir(parents=True, exist_ok=True)
            doc.path.write_text(expected)
            changed.append(doc.path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.docgen", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if a generated doc is stale"
    )
    parser.add_argument("--diff-lines", type=int, default=40, help="with --check: diff lines shown per file")
    parser.add_argument("--root", type=Path, default=ROOT, help="the project folder (template.yaml, docs/)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if not args.check:
        for path in write(root):
            print(f"wrote {path.relative_to(root)}")
        return 0
    found = stale(root)
    for path, diff in found.items():
        changed = sum(1 for line in diff if line[:1] in "+-" and not line.startswith(("+++", "---")))
        print(f"{path.relative_to(root)} is out of date ({changed} lines differ):", file=sys.stderr)
        for line in diff[: args.diff_lines]:
            print(f"    {line}", file=sys.stderr)
        if len(diff) > args.diff_lines:
            print(f"    ... {len(diff) - args.diff_lines} more diff lines", file=sys.stderr)
    if found:
        print(f"run `{COMMAND}` and commit the result", file=sys.stderr)
        return 1
    print("generated docs are current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
