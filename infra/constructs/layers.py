"""The two Lambda layers built by ``layers/build.py``: pinned third-party deps and the domain library."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra import constants as c


def _layer_dir(path: Path) -> str:
    if not (path / "python").is_dir():
        raise FileNotFoundError(f"{path} is missing or empty: build the layers first (`make layer`)")
    return str(path)


class Layers(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.deps = lambda_.LayerVersion(
            self,
            "Deps",
            description="Pinned third-party runtime deps (layers/requirements.txt), python3.13 arm64.",
            code=lambda_.Code.from_asset(_layer_dir(c.DEPS_LAYER_DIR), exclude=[".requirements.sha256"]),
            compatible_runtimes=[c.LAMBDA_RUNTIME],
            compatible_architectures=[c.LAMBDA_ARCHITECTURE],
        )
        # Migrations ship here too (/opt/migrations): a migration change is a new layer version, which changes
        # the migration function's version hash, which re-runs the migration Trigger.
        self.domain = lambda_.LayerVersion(
            self,
            "Domain",
            description="Domain library (compliance package) and SQL migrations (/opt/migrations).",
            code=lambda_.Code.from_asset(_layer_dir(c.DOMAIN_LAYER_DIR)),
            compatible_runtimes=[c.LAMBDA_RUNTIME],
            compatible_architectures=[c.LAMBDA_ARCHITECTURE],
        )

    @property
    def all(self) -> list[lambda_.ILayerVersion]:
        return [self.deps, self.domain]
