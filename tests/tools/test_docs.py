"""The generated docs: current with the sources, and the generator's output on small hand-made inputs."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

from marketplace_local.template import load_sam
from tools import docgen


def test_checked_in_docs_are_current() -> None:
    found = docgen.stale()
    summary = "\n".join(f"{path.name}:\n" + "\n".join(diff[:30]) for path, diff in found.items())
    assert not found, f"generated docs are out of date; run `make docs`:\n{summary}"


# ----------------------------------------------------------------------------- ASL -> Mermaid

ASL = {
    "StartAt": "Check",
    "States": {
        "Check": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "${CheckFunctionArn}", "Payload.$": "$"},
            "TimeoutSeconds": 30,
            "Retry": [
                {"ErrorEquals": ["TransientError"], "IntervalSeconds": 2, "MaxAttempts": 4, "BackoffRate": 2}
            ],
            "Catch": [
                {"ErrorEquals": ["NotFound", "Gone"], "Next": "Missing"},
                {"ErrorEquals": ["States.ALL"], "Next": "Broken"},
            ],
            "Next": "Decide",
        },
        "Decide": {
            "Type": "Choice",
            "Choices": [
                {
                    "And": [
                        {"Variable": "$.outcome", "IsPresent": True},
                        {"Variable": "$.outcome", "StringEquals": "OK"},
                    ],
                    "Next": "Fan out",
                },
                {"Variable": "$.round", "NumericLessThanPath": "$.settings.max", "Next": "Wait a bit"},
                {"Not": {"Variable": "$.flag", "BooleanEquals": True}, "Next": "Broken"},
            ],
            "Default": "Broken",
        },
        "Wait a bit": {"Type": "Wait", "SecondsPath": "$.delay", "Next": "Check"},
        "Fan out": {
            "Type": "Map",
            "MaxConcurrency": 5,
            "ItemProcessor": {
                "StartAt": "Write",
                "States": {
                    "Write": {
                        "Type": "Task",
                        "Resource": "arn:aws:states:::dynamodb:putItem",
                        "Parameters": {"TableName": "${TableName}"},
                        "End": True,
                    }
                },
            },
            "Next": "Both",
        },
        "Both": {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "Left", "States": {"Left": {"Type": "Pass", "End": True}}},
                {"StartAt": "Right", "States": {"Right": {"Type": "Succeed"}}},
            ],
            "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 2, "JitterStrategy": "FULL"}],
            "End": True,
        },
        "Missing": {"Type": "Succeed"},
        "Broken": {"Type": "Fail", "Error": "Broken", "Cause": "no verdict"},
    },
}
SUBSTITUTIONS = {"CheckFunctionArn": {"Fn::GetAtt": ["CheckFunction", "Arn"]}, "TableName": {"Ref": "Table"}}


def test_mermaid_shows_every_state_edge_and_label() -> None:
    lines = docgen.mermaid(ASL, SUBSTITUTIONS).splitlines()
    assert lines[0] == "stateDiagram-v2"
    expected = [
        "    [*] --> Check",
        # the task names its integration and the template resource behind the substitution
        "    Check : Task lambda:invoke CheckFunction, timeout 30s",
        "    Check : retry 4x from 2s (x2) on",
        "    Check : TransientError",
        "    Check --> Decide",
        "    Check --> Missing : catch NotFound, Gone",
        "    Check --> Broken : catch States.ALL",
        "    Decide : Choice",
        # the IsPresent guard of an And is left out; a *Path comparison shows the other path
        "    Decide --> Fan_out : outcome == 'OK'",
        "    Decide --> Wait_a_bit : round < settings.max",
        "    Decide --> Broken : not (flag == true)",
        "    Decide --> Broken : default",
        # names Mermaid cannot take as ids are declared with an alias
        '    state "Wait a bit" as Wait_a_bit',
        "    Wait_a_bit : Wait SecondsPath delay",
        "    Wait_a_bit --> Check",
        # a composite state has only a label (Mermaid refuses descriptions on it); its retries go in a note
        '    state "Fan out (Map, at most 5 at once)" as Fan_out',
        "    state Fan_out {",
        "        [*] --> Write",
        "        Write : Task dynamodb:putItem Table",
        "        Write --> [*]",
        "    }",
        "    Fan_out --> Both",
        '    state "Both (Parallel)" as Both',
        "    state Both {",
        "        [*] --> Left",
        "        --",
        "        [*] --> Right",
        "        Right --> [*]",
        "    }",
        "    note right of Both",
        "        retry 2x from 1s (x2.0, jitter full) on",
        "        States.ALL",
        "    end note",
        "    Both --> [*]",
        "    Missing --> [*]",
        "    Broken : Fail Error Broken Cause no verdict",
        "    Broken --> [*] : fails",
    ]
    missing = [line for line in expected if line not in lines]
    assert not missing, "\n".join(lines)
    # composite states open before their inner lines and close after them
    assert (
        lines.index("    state Both {")
        < lines.index("        [*] --> Left")
        < lines.index("    Both --> [*]")
    )
    assert not any(line.startswith(("    Both : ", "    Fan_out : ")) for line in lines)


def test_mermaid_output_is_deterministic_and_ids_unique() -> None:
    asl = {"StartAt": "a b", "States": {"a b": {"Type": "Pass", "Next": "a-b"}, "a-b": {"Type": "Succeed"}}}
    first = docgen.mermaid(asl)
    assert first == docgen.mermaid(json.loads(json.dumps(asl)))
    assert '    state "a b" as a_b' in first.splitlines()
    assert '    state "a-b" as a_b_2' in first.splitlines()
    assert "    a_b --> a_b_2" in first.splitlines()


def test_choice_conditions_in_short_form() -> None:
    rule = {"Or": [{"Variable": "$.x", "StringEquals": "A"}, {"Variable": "$.x", "StringEquals": "B"}]}
    assert docgen.choice_condition(rule) == "x == 'A' or x == 'B'"
    nested = {"And": [rule, {"Variable": "$.n", "NumericGreaterThanEquals": 3}]}
    assert docgen.choice_condition(nested) == "(x == 'A' or x == 'B') and n >= 3"
    assert docgen.choice_condition({"Variable": "$.y", "IsPresent": False}) == "y absent"
    assert docgen.choice_condition({"Condition": "{% $states.input.n > 1 %}"}) == "$states.input.n > 1"


def test_retry_errors_wrap_into_short_lines() -> None:
    retrier = {
        "ErrorEquals": [f"Service.VeryLongErrorNameNumber{i}Exception" for i in range(6)],
        "MaxAttempts": 2,
    }
    lines = docgen._retry_lines(retrier, width=72)
    assert lines[0] == "retry 2x from 1s (x2.0) on"
    assert all(len(line) <= 73 for line in lines)
    assert ", ".join(lines[1:]).replace(",,", ",").count("Exception") == 6


# ----------------------------------------------------------------------------- marked blocks


def test_replace_blocks_keeps_prose_replaces_appends_and_drops() -> None:
    text = textwrap.dedent("""\
        # Title

        Prose before.

        <!-- BEGIN GENERATED: one -->
        old one
        <!-- END GENERATED -->

        Prose between.

        <!-- BEGIN GENERATED: gone -->
        obsolete
        <!-- END GENERATED -->
        Prose after.
        """)
    out = docgen.replace_blocks(text, {"one": "new one\n", "two": "new two\n"}, "## Generated")
    assert (
        "Prose before.\n\n<!-- BEGIN GENERATED: one -->\nnew one\n<!-- END GENERATED -->\n\nProse between."
        in out
    )
    assert "old one" not in out and "obsolete" not in out and "GENERATED: gone" not in out
    assert "Prose after." in out
    assert out.endswith("## Generated\n\n<!-- BEGIN GENERATED: two -->\nnew two\n<!-- END GENERATED -->\n")
    # a second run changes nothing
    assert docgen.replace_blocks(out, {"one": "new one\n", "two": "new two\n"}, "## Generated") == out


# ----------------------------------------------------------------------------- OpenAPI -> api.md

OPENAPI = {
    "openapi": "3.0.1",
    "info": {"title": "Shop", "version": "2"},
    "security": [{"Pool": []}],
    "components": {
        "securitySchemes": {"Pool": {"type": "apiKey", "name": "Authorization", "in": "header"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code"],
                        "properties": {"code": {"type": "string"}},
                    }
                },
            },
            "Price": {
                "type": "object",
                "required": ["amount"],
                "properties": {"amount": {"type": "number", "minimum": 0}, "currency": {"type": "string"}},
            },
            "Line": {
                "type": "object",
                "required": ["sku"],
                "properties": {
                    "sku": {"type": "string", "maxLength": 64},
                    "price": {"$ref": "#/components/schemas/Price"},
                },
            },
            "OrderIn": {
                "type": "object",
                "required": ["lines"],
                "additionalProperties": False,
                "properties": {
                    "lines": {"type": "array", "items": {"$ref": "#/components/schemas/Line"}, "minItems": 1},
                    "note": {"type": "string", "description": "Free text."},
                    "kind": {"type": "string", "enum": ["A", "B"]},
                },
            },
            "OrderOut": {
                "type": "object",
                "properties": {
                    "orderId": {"type": "string"},
                    "meta": {"type": "object", "required": ["by"], "properties": {"by": {"type": "string"}}},
                },
            },
        },
    },
    "paths": {
        "/orders": {
            "post": {
                "operationId": "placeOrder",
                "summary": "Place an order (retailer, admin).",
                "x-rate-class": "bulk",
                "parameters": [
                    {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "minLength": 1}}
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OrderIn"}}},
                },
                "responses": {
                    "202": {
                        "description": "Accepted.",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/OrderOut"}}
                        },
                    },
                    "400": {
                        "description": "Bad input.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    },
                },
            }
        },
        "/health": {
            "get": {"summary": "Alive.", "security": [], "responses": {"200": {"description": "OK"}}}
        },
    },
}


def test_api_markdown_lists_operations_fields_and_responses() -> None:
    lines = docgen.api_markdown("ShopApi", OPENAPI, ["retailer", "supplier", "admin"])
    expected = [
        "### POST /orders",
        "* operationId `placeOrder`",
        "* auth `Pool`",
        "* who: retailer, admin",
        "* `x-rate-class`: bulk",
        "| `Idempotency-Key` | header | string |  | length >= 1 |  |",
        "Request body (application/json, required): [OrderIn](#schema-orderin).",
        # nested schemas are expanded with dotted names, arrays with []
        "| `lines` | array of [Line](#schema-line) | yes | items >= 1 |  |",
        "| `lines[].sku` | string | yes | length <= 64 |  |",
        "| `lines[].price` | [Price](#schema-price) |  |  |  |",
        "| `lines[].price.amount` | number | yes | >= 0 |  |",
        "| `note` | string |  |  | Free text. |",
        "| `kind` | string |  | one of `A`, `B` |  |",
        "| `202` | Accepted. | [OrderOut](#schema-orderout) |",
        "| `400` | Bad input. | [Error](#schema-error) |",
        "### GET /health",
        "* no token needed",
        "| GET | [`/health`](#get-health) | Alive. |",
        "### Schema OrderIn",
        "## `/orders`",
    ]
    missing = [line for line in expected if line not in lines]
    assert not missing, "\n".join(lines)
    # the health operation names no role, and in the schema section nested refs are links, not expanded
    health = lines[lines.index("### GET /health") : lines.index("### GET /health") + 6]
    assert not any(line.startswith("* who") for line in health)
    schema_line = lines[lines.index("### Schema Line") :]
    assert "| `price` | [Price](#schema-price) |  |  |  |" in schema_line
    assert not any(line.startswith("| `price.amount`") for line in schema_line[:8])
    # ...but an inline object has no section of its own, so its fields are listed in place
    order_out = lines[lines.index("### Schema OrderOut") :]
    assert "| `meta` | object |  |  |  |" in order_out and "| `meta.by` | string | yes |  |  |" in order_out


# ----------------------------------------------------------------------------- the check, end to end

TEMPLATE = """\
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage:
    Type: String
    Default: dev
    Description: The stage.
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    DeletionPolicy: Retain
    UpdateReplacePolicy: Retain
    Properties:
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true }
  Machine:
    Type: AWS::Serverless::StateMachine
    Properties:
      DefinitionUri: machine.asl.json
      DefinitionSubstitutions:
        TableName: !Ref Table
  Api:
    Type: AWS::Serverless::Api
    Properties:
      DefinitionBody:
        openapi: "3.0.1"
        info: { title: Tiny, version: "1" }
        paths:
          /ping:
            get:
              summary: Ping.
              responses: { "200": { description: OK } }
Outputs:
  TableName:
    Value: !Ref Table
"""


def _project(tmp_path: Path) -> Path:
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    asl = {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}
    (tmp_path / "machine.asl.json").write_text(json.dumps(asl))
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "architecture.md").write_text("# Architecture\n\nHand-written.\n")
    return tmp_path


def test_check_fails_until_generated_then_names_the_stale_doc(tmp_path: Path, capsys) -> None:
    root = _project(tmp_path)
    assert docgen.main(["--check", "--root", str(root)]) == 1
    err = capsys.readouterr().err
    for name in ("docs/architecture.md", "docs/api.md", "docs/deploy.md"):
        assert f"{name} is out of date" in err

    assert docgen.main(["--root", str(root)]) == 0
    assert docgen.main(["--check", "--root", str(root)]) == 0
    architecture = (root / "docs" / "architecture.md").read_text()
    assert architecture.startswith("# Architecture\n\nHand-written.\n")
    assert "<!-- BEGIN GENERATED: Machine -->" in architecture and "    Done --> [*]" in architecture
    deploy = (root / "docs" / "deploy.md").read_text()
    assert "| `Stage` | String | `dev` |  | The stage. |" in deploy
    assert "| `TableName` | !Ref Table |  |" in deploy
    assert (
        "| `Table` | DynamoDB::Table | Retain | Retain | kept (delete it by hand) | point-in-time recovery |"
        in deploy
    )
    assert "### GET /ping" in (root / "docs" / "api.md").read_text()
    capsys.readouterr()

    # a change to the ASL makes the diagram stale, and only that doc
    asl = {
        "StartAt": "Wait",
        "States": {"Wait": {"Type": "Pass", "Next": "Done"}, "Done": {"Type": "Succeed"}},
    }
    (root / "machine.asl.json").write_text(json.dumps(asl))
    assert docgen.main(["--check", "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert "docs/architecture.md is out of date" in err and "+    Wait --> Done" in err
    assert "docs/api.md" not in err and "docs/deploy.md" not in err

    # an edit inside a generated block is stale too; outside it, it is kept
    assert docgen.main(["--root", str(root)]) == 0
    path = root / "docs" / "architecture.md"
    path.write_text(
        path.read_text().replace("Hand-written.", "Hand-written, edited.").replace("Wait : Pass", "X")
    )
    assert set(docgen.stale(root)) == {path}
    docgen.write(root)
    assert "Hand-written, edited." in path.read_text() and "    Wait : Pass" in path.read_text()


def test_every_state_machine_of_the_template_has_its_diagram() -> None:
    sam = load_sam()
    machines = [lid for lid, r in sam["Resources"].items() if r["Type"] == "AWS::Serverless::StateMachine"]
    text = (docgen.DOCS / "architecture.md").read_text()
    assert machines and all(f"<!-- BEGIN GENERATED: {lid} -->" in text for lid in machines)


# ----------------------------------------------------------------------------- links

_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _headings(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)
    return {docgen._anchor(m.group(1).strip()) for m in re.finditer(r"^#{1,6} (.+)$", text, re.MULTILINE)}


def test_the_readme_links_every_doc_and_every_relative_link_resolves() -> None:
    root = docgen.ROOT
    readme = (root / "README.md").read_text()
    unlinked = [p.name for p in sorted(docgen.DOCS.glob("*.md")) if f"(docs/{p.name})" not in readme]
    assert not unlinked, f"README.md's Documentation section does not link {unlinked}"

    broken = []
    for page in [root / "README.md", *sorted(docgen.DOCS.glob("*.md"))]:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
        text = re.sub(r"`[^`\n]*`", "", text)  # a code span is no link (a pattern may read like one)
        for target in _LINK.findall(text):
            if re.match(r"^[a-z]+:", target):
                continue  # http(s), mailto: not checked offline
            file_part, _, anchor = target.partition("#")
            path = (page.parent / file_part).resolve() if file_part else page
            if not path.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and path.suffix == ".md" and anchor not in _headings(path):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, "\n".join(broken)
