"""Reading template.yaml: the SAM transform, intrinsic functions, creation order."""

from __future__ import annotations

import pytest

from marketplace_local.template import Resolver, TemplateError, creation_order, dependencies, load


@pytest.fixture(scope="module")
def template():
    return load()


def test_local_paths_come_from_the_template(template):
    assert template.local_path("ApiFunction").name == "api"
    assert template.local_path("SupplierOnboardingStateMachine").name == "reviewed_record.asl.json"


def test_parameter_overrides_replace_defaults_and_unknown_ones_are_refused():
    assert load(overrides={"Stage": "qa"}).parameters["Stage"] == "qa"
    with pytest.raises(TemplateError, match="unknown template parameter"):
        load(overrides={"Nope": "x"})


def test_resolver_handles_the_intrinsics_the_template_uses():
    attrs = {("Queue", "Arn"): "arn:aws:sqs:us-east-1:1:q", ("Fn", "Arn"): "arn:fn"}
    resolve = Resolver(refs={"Table": "tbl", "AWS::Region": "us-east-1", "Stage": "dev"},
                       get_att=lambda lid, att: attrs[(lid, att)])  # fmt: skip
    assert resolve({"Ref": "Table"}) == "tbl"
    assert resolve({"Fn::GetAtt": ["Queue", "Arn"]}) == "arn:aws:sqs:us-east-1:1:q"
    assert resolve({"Fn::GetAtt": "Queue.Arn"}) == "arn:aws:sqs:us-east-1:1:q"
    assert (
        resolve({"Fn::Sub": "${Table}-${AWS::Region}-${Fn.Arn}-${!Literal}"})
        == "tbl-us-east-1-arn:fn-${Literal}"
    )
    assert resolve({"Fn::Sub": ["${X}/${Stage}", {"X": {"Ref": "Table"}}]}) == "tbl/dev"
    assert resolve({"Fn::Join": ["-", ["a", {"Ref": "Stage"}]]}) == "a-dev"
    assert resolve({"Fn::Select": [1, {"Fn::Split": [",", "a,b,c"]}]}) == "b"
    assert resolve({"A": {"Ref": "AWS::NoValue"}, "B": [1, {"Ref": "AWS::NoValue"}]}) == {"B": [1]}


def test_resolver_refuses_what_it_cannot_resolve():
    resolve = Resolver(refs={}, get_att=lambda lid, att: None)
    with pytest.raises(TemplateError, match="not created"):
        resolve({"Ref": "Missing"})
    with pytest.raises(TemplateError, match="Fn::ImportValue is not supported"):
        resolve({"Fn::ImportValue": "x"})


def test_dependencies_include_sub_references_but_not_pseudo_parameters():
    value = {"P": {"Fn::Sub": ["${A}-${B.Arn}-${AWS::Region}-${Local}", {"Local": "x"}]}, "C": {"Ref": "D"}}
    assert dependencies(value) == {"A", "B", "D"}


def test_creation_order_puts_every_resource_after_what_it_references(template):
    order = creation_order(template.resources)
    position = {logical_id: i for i, logical_id in enumerate(order)}
    for logical_id, resource in template.resources.items():
        for dep in dependencies(resource.get("Properties", {})):
            if dep in position:
                assert position[dep] < position[logical_id], (dep, logical_id)


def test_a_reference_cycle_is_reported():
    resources = {"A": {"Properties": {"X": {"Ref": "B"}}}, "B": {"Properties": {"Y": {"Ref": "A"}}}}
    with pytest.raises(TemplateError, match="circular reference"):
        creation_order(resources)
