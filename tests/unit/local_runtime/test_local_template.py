"""Loading the synthesized template and finding asset folders in the cloud assembly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compliance_tools.local.template import TemplateError, load_template


def write_assembly(root: Path, *, metadata: bool) -> None:
    function: dict[str, object] = {
        "Type": "AWS::Lambda::Function",
        "Properties": {"Code": {"S3Bucket": "b", "S3Key": "abc123.zip"}, "Handler": "api.handler"},
    }
    if metadata:
        function["Metadata"] = {"aws:asset:path": "asset.fromMetadata", "aws:asset:property": "Code"}
    template = {
        "Resources": {
            "Fn": function,
            "Layer": {
                "Type": "AWS::Lambda::LayerVersion",
                "Properties": {"Content": {"S3Key": "def456.zip"}},
            },
        }
    }
    (root / "Stack.template.json").write_text(json.dumps(template))
    (root / "Stack.assets.json").write_text(
        json.dumps(
            {
                "files": {
                    "abc123": {"source": {"path": "asset.abc123", "packaging": "zip"}},
                    "def456": {"source": {"path": "asset.def456", "packaging": "zip"}},
                }
            }
        )
    )
    (root / "manifest.json").write_text(
        json.dumps({"artifacts": {"Stack": {"environment": "aws://111122223333/eu-central-1"}}})
    )


def test_asset_folders_come_from_metadata_when_present(tmp_path: Path) -> None:
    write_assembly(tmp_path, metadata=True)
    template = load_template(tmp_path, "Stack")
    assert template.asset_dir("Fn") == (tmp_path / "asset.fromMetadata").resolve()


def test_asset_folders_come_from_the_asset_manifest_otherwise(tmp_path: Path) -> None:
    # Given a template synthesized without asset metadata (plain App().synth())
    write_assembly(tmp_path, metadata=False)
    template = load_template(tmp_path, "Stack")
    # Then the S3Key hash leads to the staged folder
    assert template.asset_dir("Fn") == (tmp_path / "asset.abc123").resolve()
    assert template.asset_dir("Layer", "Content") == (tmp_path / "asset.def456").resolve()


def test_stack_environment_is_read_from_the_manifest(tmp_path: Path) -> None:
    write_assembly(tmp_path, metadata=False)
    template = load_template(tmp_path / "Stack.template.json")
    assert template.stack_name == "Stack"
    assert (template.account, template.region) == ("111122223333", "eu-central-1")
    assert [logical_id for logical_id, _ in template.of_type("AWS::Lambda::Function")] == ["Fn"]


def test_missing_template_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="compliance synth"):
        load_template(tmp_path, "Nope")
