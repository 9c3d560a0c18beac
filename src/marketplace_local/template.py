"""template.yaml, read once and expanded the way CloudFormation would.

The SAM transform is done by the official translator (``samtranslator``), offline: it merges
Globals, expands functions, event sources, policies and state machines into plain CloudFormation.
What the translator cannot do offline is resolve intrinsic functions against live resources, so
this module also carries a small resolver for the intrinsics our template uses (Ref, Fn::GetAtt,
Fn::Sub, Fn::Join, Fn::Select, Fn::Split, Fn::If with Conditions). It is hand-written because no
maintained library resolves intrinsics against resources created somewhere other than AWS.

Files that the template pulls in with CloudFormation's ``AWS::Include`` transform (the OpenAPI
document, ``api/openapi.yaml``) are read here, relative to the template, before anything else sees
the template: CloudFormation does the same with the copy that ``sam package`` uploads, and neither
samtranslator nor cfn-lint reads local includes. Written by hand for that reason; it follows
CloudFormation's rules for the snippet (YAML or JSON, intrinsics only in their long ``Fn::`` form).
"""

from __future__ import annotations

import copy
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import yaml
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"

# Properties of SAM resources that name local files; the translator wants S3 locations there.
_LOCAL_PATH_PROPERTIES = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
    "AWS::Serverless::StateMachine": "DefinitionUri",
}


class TemplateError(Exception):
    """The template uses something the local stack cannot honour: fail loudly, never guess."""


class _NoManagedPolicies:
    """Managed-policy loader for the offline transform: our template names no managed policies
    by bare name, so the translator never needs the IAM lookup that would require credentials."""

    def load(self) -> dict[str, str]:
        return {}


@dataclass
class Template:
    """The SAM template as written, its CloudFormation expansion, and the local files it names."""

    sam: dict[str, Any]
    cfn: dict[str, Any]
    local_paths: dict[str, Path]  # SAM logical id -> local CodeUri / ContentUri / DefinitionUri
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def resources(self) -> dict[str, Any]:
        return self.cfn["Resources"]

    def resources_of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == resource_type}

    def local_path(self, logical_id: str) -> Path:
        try:
            return self.local_paths[logical_id]
        except KeyError:
            raise TemplateError(f"{logical_id} has no local code or definition path") from None


def load_sam(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as written, with every ``AWS::Include`` replaced by the file it names."""
    return resolve_includes(yaml_parse(path.read_text()), path)


class _SnippetLoader(yaml.SafeLoader):
    """PyYAML's safe loader without samtranslator's ``!Tag`` constructor (which yaml_parse installs on
    SafeLoader itself): CloudFormation rejects the short form of intrinsics in an included snippet."""

    yaml_multi_constructors: dict[str, Any] = {}


def resolve_includes(node: Any, template_path: Path, *, in_snippet: bool = False) -> Any:
    """``{"Fn::Transform": {"Name": "AWS::Include", "Parameters": {"Location": path}}}`` anywhere in
    the template, replaced by the file at that path (relative to the template). Anything else named
    ``Fn::Transform`` (a macro, or an include in a form this does not read) stops the load, and so do
    a missing file and a snippet with a ``!Tag``."""
    if isinstance(node, list):
        return [resolve_includes(item, template_path, in_snippet=in_snippet) for item in node]
    if not isinstance(node, dict):
        return node
    if "Fn::Transform" not in node:
        return {key: resolve_includes(v, template_path, in_snippet=in_snippet) for key, v in node.items()}
    if in_snippet:
        raise TemplateError(f"{template_path.name}: an included file that includes another is not read here")
    transform = node["Fn::Transform"]
    name = transform.get("Name") if isinstance(transform, dict) else None
    location = ((transform.get("Parameters") or {}) if isinstance(transform, dict) else {}).get("Location")
    if len(node) != 1 or name != "AWS::Include" or not isinstance(location, str):
        raise TemplateError(
            f"{template_path.name}: the local stack reads only a whole value given as "
            f"Fn::Transform AWS::Include with a Location, not {node!r:.200}"
        )
    if "://" in location:
        raise TemplateError(
            f"{template_path.name}: AWS::Include of {location}: only a local file can be read"
        )
    included = (template_path.parent / location).resolve()
    try:
        text = included.read_text()
    except OSError as exc:
        raise TemplateError(
            f"{template_path.name}: AWS::Include of {location}: cannot read {included} ({exc.strerror})"
        ) from None
    try:
        snippet = yaml.load(text, Loader=_SnippetLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.constructor.ConstructorError as exc:
        raise TemplateError(
            f"{location}: {exc.problem} at line {exc.problem_mark.line + 1 if exc.problem_mark else '?'}: "
            "CloudFormation takes intrinsics in an included file only in their long form "
            "(Fn::Sub: ..., not !Sub ...)"
        ) from None
    except yaml.YAMLError as exc:
        raise TemplateError(f"{location}: not YAML or JSON: {exc}") from None
    return resolve_includes(snippet, included, in_snippet=True)


def parameter_values(sam: dict[str, Any], overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    values = {name: spec.get("Default") for name, spec in sam.get("Parameters", {}).items()}
    for name, value in (overrides or {}).items():
        if name not in values:
            raise TemplateError(f"unknown template parameter {name!r}")
        values[name] = value
    missing = [name for name, value in values.items() if value is None]
    if missing:
        raise TemplateError(f"template parameters without a value: {', '.join(missing)}")
    for name, value in values.items():  # as CloudFormation checks a String parameter's value
        pattern = sam["Parameters"][name].get("AllowedPattern")
        if pattern and not re.fullmatch(pattern, str(value)):
            raise TemplateError(
                f"template parameter {name}={value!r} does not match its AllowedPattern {pattern}"
            )
    return values


def load(
    path: Path = TEMPLATE_PATH,
    overrides: dict[str, Any] | None = None,
    region: str = "us-east-1",
) -> Template:
    sam = load_sam(path)
    params = parameter_values(sam, overrides)
    fragment = copy.deepcopy(sam)
    local_paths: dict[str, Path] = {}
    for logical_id, resource in fragment["Resources"].items():
        prop = _LOCAL_PATH_PROPERTIES.get(resource["Type"])
        value = (resource.get("Properties") or {}).get(prop) if prop else None
        if isinstance(value, str) and not value.startswith("s3://"):
            local_paths[logical_id] = (path.parent / value).resolve()
            resource["Properties"][prop] = f"s3://local-placeholder/{logical_id}"
    cfn = transform(fragment, params, region)
    return Template(sam=sam, cfn=cfn, local_paths=local_paths, parameters=params)


def transform(fragment: dict[str, Any], params: dict[str, Any], region: str) -> dict[str, Any]:
    """The SAM transform, offline: the translator needs a region, never credentials."""
    # The translator takes the region (and only the region) from a boto3 session.
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=region))
    return translator.translate(
        copy.deepcopy(fragment),
        parameter_values=dict(params),
        get_managed_policy_map=_NoManagedPolicies().load,
    )


def dependencies(value: Any) -> set[str]:
    """Logical ids that a property value refers to (Ref, GetAtt, and ${X} inside Sub)."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if len(node) == 1:
                ((key, arg),) = node.items()
                if key == "Ref" and isinstance(arg, str):
                    found.add(arg)
                elif key == "Fn::GetAtt":
                    found.add(arg[0] if isinstance(arg, list) else arg.split(".", 1)[0])
                elif key == "Fn::Sub":
                    text = arg[0] if isinstance(arg, list) else arg
                    local_vars = arg[1] if isinstance(arg, list) else {}
                    for name in re.findall(r"\$\{([^}!]+)\}", text):
                        base = name.split(".", 1)[0]
                        if base not in local_vars:
                            found.add(base)
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(value)
    return {name for name in found if not name.startswith("AWS::")}


def creation_order(resources: dict[str, Any]) -> list[str]:
    """Logical ids so that every resource comes after what it references (as CloudFormation does)."""
    deps = {}
    for logical_id, resource in resources.items():
        refs = dependencies(resource.get("Properties", {}))
        depends_on = resource.get("DependsOn", [])
        refs |= set([depends_on] if isinstance(depends_on, str) else depends_on)
        deps[logical_id] = {r for r in refs if r in resources}
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(node: str, trail: tuple[str, ...]) -> None:
        if state.get(node) == 2:
            return
        if state.get(node) == 1:
            raise TemplateError(f"circular reference: {' -> '.join((*trail, node))}")
        state[node] = 1
        for dep in sorted(deps[node]):
            visit(dep, (*trail, node))
        state[node] = 2
        order.append(node)

    for logical_id in sorted(resources):
        visit(logical_id, ())
    return order


@dataclass
class Resolver:
    """Resolves intrinsic functions against the physical resources created so far."""

    refs: dict[str, Any]  # logical id or parameter or pseudo parameter -> Ref value
    get_att: Callable[[str, str], Any]
    conditions: dict[str, bool] = field(default_factory=dict)

    def __call__(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self(item) for item in node if not _is_no_value(item)]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            handler = _INTRINSICS.get(key)
            if handler is not None:
                return handler(self, arg)
            if key.startswith("Fn::"):
                raise TemplateError(f"intrinsic {key} is not supported by the local stack")
        return {k: self(v) for k, v in node.items() if not _is_no_value(v)}

    def ref(self, name: str) -> Any:
        if name not in self.refs:
            raise TemplateError(f"Ref to {name!r}, which is not created (yet)")
        return self.refs[name]

    def sub(self, arg: Any) -> str:
        text, local_vars = (arg[0], self(arg[1])) if isinstance(arg, list) else (arg, {})

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in local_vars:
                return str(local_vars[name])
            if "." in name:
                logical_id, attribute = name.split(".", 1)
                return str(self.get_att(logical_id, attribute))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", replace, text)


def _is_no_value(node: Any) -> bool:
    return isinstance(node, dict) and node == {"Ref": "AWS::NoValue"}


def _get_att(resolver: Resolver, arg: Any) -> Any:
    logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
    return resolver.get_att(logical_id, resolver(attribute))


def _if(resolver: Resolver, arg: list[Any]) -> Any:
    name, when_true, when_false = arg
    if name not in resolver.conditions:
        raise TemplateError(f"unknown condition {name!r}")
    return resolver(when_true if resolver.conditions[name] else when_false)


_INTRINSICS: dict[str, Callable[[Resolver, Any], Any]] = {
    "Ref": lambda r, a: r.ref(a),
    "Fn::GetAtt": _get_att,
    "Fn::Sub": lambda r, a: r.sub(a),
    "Fn::Join": lambda r, a: str(a[0]).join(str(x) for x in r(a[1])),
    "Fn::Select": lambda r, a: r(a[1])[int(r(a[0]))],
    "Fn::Split": lambda r, a: str(r(a[1])).split(a[0]),
    "Fn::If": _if,
    "Fn::ToJsonString": lambda r, a: json.dumps(r(a)),
}


def main(argv: list[str] | None = None) -> int:
    """`python -m marketplace_local.template --transform` prints the CloudFormation expansion;
    `--resolved` prints the template as written with its includes in place, for cfn-lint, which
    leaves an ``AWS::Include`` unread (``make validate`` lints it; ``make build`` reads the built
    template this way to see that its includes still resolve)."""
    import argparse
    import logging

    logging.getLogger("samtranslator").setLevel(logging.ERROR)  # feature-toggle noise, offline
    parser = argparse.ArgumentParser(prog="python -m marketplace_local.template", description=main.__doc__)
    parser.add_argument("--template", type=Path, default=TEMPLATE_PATH, help="default: template.yaml")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--transform", action="store_true", help="print the SAM transform's output")
    what.add_argument("--resolved", action="store_true", help="print the template with its includes")
    args = parser.parse_args(argv)
    path = args.template.resolve()
    try:
        if args.resolved:
            json.dump(load_sam(path), sys.stdout, indent=1)
            print()
            return 0
        tpl = load(path)
    except TemplateError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 1
    if args.transform:
        json.dump(tpl.cfn, sys.stdout, indent=2, sort_keys=True)
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
