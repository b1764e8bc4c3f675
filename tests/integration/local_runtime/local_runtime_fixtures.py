"""Helpers for local runtime tests: small hand-written cloud assemblies (template + asset folders)."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compliance_tools.local.template import CloudTemplate, load_template


@dataclass
class Assembly:
    """A cloud assembly being written: assets first, then the template."""

    root: Path
    stack: str = "LocalTest"

    def asset(self, name: str, files: dict[str, str]) -> str:
        folder = self.root / f"asset.{name}"
        for relative, content in files.items():
            path = folder / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(content), encoding="utf-8")
        return folder.name

    def template(self, resources: dict[str, Any], **sections: Any) -> CloudTemplate:
        body = {"Resources": resources, **sections}
        path = self.root / f"{self.stack}.template.json"
        path.write_text(json.dumps(body, indent=1), encoding="utf-8")
        return load_template(self.root, self.stack)


def python_function(asset: str, handler: str, **properties: Any) -> dict[str, Any]:
    """An AWS::Lambda::Function whose code is the given asset folder (as the CDK CLI writes it)."""
    return {
        "Type": "AWS::Lambda::Function",
        "Properties": {
            "Code": {"S3Bucket": "cdk-assets", "S3Key": f"{asset}.zip"},
            "Handler": handler,
            "Runtime": "python3.13",
            **properties,
        },
        "Metadata": {"aws:asset:path": asset, "aws:asset:property": "Code"},
    }


def wait_until(condition: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")
