"""A premium tenant's samconfig.toml environment (D53): what `sam deploy --config-env` reads, written
without touching the file's other environments."""

from __future__ import annotations

import tomllib

from marketplace_local import samconfig


def test_a_new_file_gets_the_format_version_and_the_tenant_s_environment(tmp_path):
    path = tmp_path / "samconfig.toml"
    samconfig.write_environment(
        path, "acme", samconfig.silo_environment("acme", "marketplace-acme", "eu-west-1", "acme", "prod")
    )
    text = path.read_text()
    written = tomllib.loads(text)
    assert written["version"] == 0.1
    assert written["acme"]["global"]["parameters"]["stack_name"] == "marketplace-acme"
    assert (
        written["acme"]["deploy"]["parameters"]["parameter_overrides"] == 'PinnedTenant="acme" Stage="prod"'
    )
    # The headers SAM itself writes, no inline tables.
    assert "[acme.global.parameters]" in text and "[acme.deploy.parameters]" in text and "{" not in text


def test_writing_it_again_replaces_it_and_leaves_the_others_and_their_comments(tmp_path):
    path = tmp_path / "samconfig.toml"
    path.write_text(
        'version = 0.1\n# the shared stack\n[default.deploy.parameters]\nstack_name = "marketplace-dev"\n'
    )
    for region in ("eu-west-1", "us-east-2"):
        environment = samconfig.silo_environment("acme", "marketplace-acme", region, "acme", "prod")
        samconfig.write_environment(path, "acme", environment)
    text = path.read_text()
    written = tomllib.loads(text)
    assert written["acme"]["global"]["parameters"]["region"] == "us-east-2"
    assert text.count("[acme.global.parameters]") == 1
    assert written["default"] == {"deploy": {"parameters": {"stack_name": "marketplace-dev"}}}
    assert "# the shared stack" in text
