"""Synthesize the CDK app once per test session (synth takes seconds) and share the result."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# jsii prints a large banner on every start under Node 20 (end-of-life for jsii): noise in test output.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

Resource = dict[str, Any]


@dataclass(frozen=True)
class Synthesized:
    app: Any  # aws_cdk.App
    stack: Any  # infra.stack.ComplianceControlPlaneStack
    outdir: Path
    template: dict[str, Any]

    @property
    def resources(self) -> dict[str, Resource]:
        return dict(self.template["Resources"])

    def of_type(self, resource_type: str) -> dict[str, Resource]:
        return {lid: res for lid, res in self.resources.items() if res["Type"] == resource_type}

    def app_functions(self) -> dict[str, Resource]:
        """The app's own functions: every Lambda but CDK's custom-resource provider handlers."""
        return {
            lid: res
            for lid, res in self.of_type("AWS::Lambda::Function").items()
            if "CustomResourceProvider" not in res.get("Metadata", {}).get("aws:cdk:path", "")
        }


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesized]:
    from infra import constants as c
    from infra.app import build_app

    outdir = tmp_path_factory.mktemp("cdk.out")
    app = build_app(str(outdir))
    # Raises ValidationFailed if any cdk-nag finding is not acknowledged.
    assembly = app.synth()
    stack_artifact = assembly.get_stack_by_name(c.STACK_NAME)
    template = json.loads((outdir / stack_artifact.template_file).read_text())
    yield Synthesized(app=app, stack=app.node.find_child(c.STACK_NAME), outdir=outdir, template=template)
