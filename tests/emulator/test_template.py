"""Reading template.yaml: its AWS::Include files, the SAM transform, intrinsic functions, creation order."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from marketplace_local.template import (
    ROOT,
    Resolver,
    TemplateError,
    creation_order,
    dependencies,
    load,
    load_sam,
    parameter_values,
)


@pytest.fixture(scope="module")
def template():
    return load()


def test_local_paths_come_from_the_template(template):
    assert template.local_path("ApiFunction").name == "api"
    assert template.local_path("SupplierOnboardingStateMachine").name == "reviewed_record.asl.json"


def test_the_openapi_document_is_read_from_the_file_the_template_includes(template):
    body = template.sam["Resources"]["MarketplaceApi"]["Properties"]["DefinitionBody"]
    assert body == yaml.safe_load((ROOT / "api" / "openapi.yaml").read_text())
    assert "/suppliers" in body["paths"]
    # and the transform hands it to the RestApi, as CloudFormation does after the include
    assert template.resources["MarketplaceApi"]["Properties"]["Body"]["paths"].keys() == body["paths"].keys()


INCLUDING = """\
    AWSTemplateFormatVersion: "2010-09-09"
    Resources:
      Topic:
        Type: AWS::SNS::Topic
        Properties:
          Tags:
            Fn::Transform:
              Name: AWS::Include
              Parameters:
                Location: {location}
    """


def write_template(tmp_path: Path, location: str, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text))
    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent(INCLUDING.format(location=location)))
    return path


def test_an_include_is_read_relative_to_the_template_wherever_it_is_loaded_from(tmp_path, monkeypatch):
    path = write_template(tmp_path, "parts/tags.yaml", {"parts/tags.yaml": """\
        - Key: arn
          Value:
            Fn::Sub: "${AWS::Region}-x"
        """})  # fmt: skip
    monkeypatch.chdir(ROOT)  # not the template's folder
    tags = load_sam(path)["Resources"]["Topic"]["Properties"]["Tags"]
    assert tags == [{"Key": "arn", "Value": {"Fn::Sub": "${AWS::Region}-x"}}]


def test_an_include_that_cannot_be_read_stops_the_load_with_its_name(tmp_path):
    path = write_template(tmp_path, "parts/missing.yaml", {})
    with pytest.raises(
        TemplateError, match=r"AWS::Include of parts/missing.yaml: cannot read .*missing.yaml"
    ):
        load_sam(path)
    path = write_template(tmp_path, "s3://bucket/tags.yaml", {})
    with pytest.raises(TemplateError, match="only a local file can be read"):
        load_sam(path)


def test_an_included_file_takes_intrinsics_only_in_their_long_form(tmp_path):
    """CloudFormation refuses the short form (!Sub) in an AWS::Include snippet; so does the loader."""
    path = write_template(tmp_path, "tags.yaml", {"tags.yaml": "- Key: a\n  Value: !Sub x-${AWS::Region}\n"})
    with pytest.raises(TemplateError, match=r"tags.yaml: .*'!Sub'.* line 2: .*long form"):
        load_sam(path)


def test_other_transforms_in_the_template_are_refused(tmp_path):
    path = tmp_path / "template.yaml"
    path.write_text("Resources:\n  T:\n    Type: AWS::SNS::Topic\n    Properties:\n      Tags:\n"
                    "        Fn::Transform: {Name: MyMacro, Parameters: {}}\n")  # fmt: skip
    with pytest.raises(TemplateError, match="only a whole value given as Fn::Transform AWS::Include"):
        load_sam(path)
    path = write_template(tmp_path, "a.yaml", {
        "a.yaml": "Fn::Transform: {Name: AWS::Include, Parameters: {Location: b.yaml}}\n", "b.yaml": "[]\n"})  # fmt: skip
    with pytest.raises(TemplateError, match="includes another"):
        load_sam(path)


def test_parameter_overrides_replace_defaults_and_unknown_ones_are_refused():
    assert load(overrides={"Stage": "qa"}).parameters["Stage"] == "qa"
    with pytest.raises(TemplateError, match="unknown template parameter"):
        load(overrides={"Nope": "x"})


def test_a_parameter_outside_its_allowed_pattern_is_refused_as_cloudformation_refuses_it():
    sam = load_sam()
    assert parameter_values(sam, {"PinnedTenant": "acme-retail"})["PinnedTenant"] == "acme-retail"
    assert parameter_values(sam)["PinnedTenant"] == ""  # the pool
    with pytest.raises(TemplateError, match=r"PinnedTenant='Acme Retail' does not match its AllowedPattern"):
        parameter_values(sam, {"PinnedTenant": "Acme Retail"})


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
