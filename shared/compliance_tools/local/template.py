"""The synthesized CloudFormation template and the cloud assembly (``cdk.out``) around it.

The local runtime boots exactly what ``cdk synth`` produced: it reads the stack template and
finds each Lambda code/layer asset folder inside the assembly. Asset folders are found from the
``aws:asset:path`` resource metadata when the app enables it (the CDK CLI does; a plain
``App().synth()`` does not), otherwise from the asset manifest (``<stack>.assets.json``), which
maps the ``S3Key`` of ``Code``/``Content`` to the staged folder.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_STACK = "ComplianceControlPlane"
DEFAULT_ASSEMBLY_DIR = Path("cdk.out")


class TemplateError(Exception):
    """The template or the cloud assembly cannot be used as it is."""


@dataclass(frozen=True)
class CloudTemplate:
    """One stack template plus what the assembly says about it."""

    path: Path
    body: dict[str, Any]
    stack_name: str
    assembly_dir: Path
    # Where the stack was meant to deploy, from manifest.json (None when environment-agnostic).
    account: str | None = None
    region: str | None = None
    # Asset object key (hash) -> staged folder or file inside the assembly.
    asset_sources: dict[str, Path] = field(default_factory=dict)

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        resources: dict[str, dict[str, Any]] = self.body.get("Resources", {})
        return resources

    @property
    def parameters(self) -> dict[str, dict[str, Any]]:
        parameters: dict[str, dict[str, Any]] = self.body.get("Parameters", {})
        return parameters

    @property
    def conditions(self) -> dict[str, Any]:
        conditions: dict[str, Any] = self.body.get("Conditions", {})
        return conditions

    @property
    def mappings(self) -> dict[str, Any]:
        mappings: dict[str, Any] = self.body.get("Mappings", {})
        return mappings

    @property
    def outputs(self) -> dict[str, Any]:
        outputs: dict[str, Any] = self.body.get("Outputs", {})
        return outputs

    def resource(self, logical_id: str) -> dict[str, Any]:
        try:
            return self.resources[logical_id]
        except KeyError:
            raise TemplateError(f"no resource {logical_id!r} in {self.path}") from None

    def of_type(self, *types: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for logical_id, resource in self.resources.items():
            if resource.get("Type") in types:
                yield logical_id, resource

    def asset_dir(self, logical_id: str, prop: str = "Code") -> Path | None:
        """The staged asset behind ``Properties[prop]`` (``Code`` of a function, ``Content`` of a layer)."""
        resource = self.resource(logical_id)
        metadata = resource.get("Metadata", {})
        if metadata.get("aws:asset:path") and metadata.get("aws:asset:property", prop) == prop:
            return self._inside_assembly(Path(metadata["aws:asset:path"]))
        location = resource.get("Properties", {}).get(prop)
        if not isinstance(location, dict):
            return None
        key = location.get("S3Key")
        if not isinstance(key, str):
            return None
        asset_hash = key.rsplit("/", 1)[-1].split(".", 1)[0]
        source = self.asset_sources.get(asset_hash)
        return self._inside_assembly(source) if source is not None else None

    def _inside_assembly(self, path: Path) -> Path:
        return path if path.is_absolute() else (self.assembly_dir / path).resolve()


def load_template(path: Path | str = DEFAULT_ASSEMBLY_DIR, stack_name: str = DEFAULT_STACK) -> CloudTemplate:
    """Load ``<stack>.template.json`` from a cloud assembly folder, or a template file given directly."""
    path = Path(path)
    if path.is_dir():
        assembly_dir = path
        template_path = path / f"{stack_name}.template.json"
    else:
        assembly_dir = path.parent
        template_path = path
        if path.name.endswith(".template.json"):
            stack_name = path.name.removesuffix(".template.json")
    if not template_path.is_file():
        raise TemplateError(f"template not found: {template_path} (run `compliance synth` first?)")
    try:
        body = json.loads(template_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TemplateError(f"{template_path} is not valid JSON: {exc}") from exc
    if not isinstance(body, dict) or not isinstance(body.get("Resources"), dict):
        raise TemplateError(f"{template_path} has no Resources section")
    account, region = _stack_environment(assembly_dir, stack_name)
    return CloudTemplate(
        path=template_path.resolve(),
        body=body,
        stack_name=stack_name,
        assembly_dir=assembly_dir.resolve(),
        account=account,
        region=region,
        asset_sources=_asset_sources(assembly_dir),
    )


def _stack_environment(assembly_dir: Path, stack_name: str) -> tuple[str | None, str | None]:
    manifest_path = assembly_dir / "manifest.json"
    if not manifest_path.is_file():
        return None, None
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    environment = manifest.get("artifacts", {}).get(stack_name, {}).get("environment", "")
    # "aws://123456789012/eu-west-1", or "aws://unknown-account/unknown-region" when env-agnostic.
    parts = environment.removeprefix("aws://").split("/")
    if len(parts) != 2:
        return None, None
    account, region = parts
    return (
        None if account.startswith("unknown") else account,
        None if region.startswith("unknown") else region,
    )


def _asset_sources(assembly_dir: Path) -> dict[str, Path]:
    sources: dict[str, Path] = {}
    for manifest_path in sorted(assembly_dir.glob("*.assets.json")):
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        for asset_hash, entry in manifest.get("files", {}).items():
            source = entry.get("source", {}).get("path")
            if isinstance(source, str):
                sources[asset_hash] = Path(source)
    return sources


def synthesize(outdir: Path | str = DEFAULT_ASSEMBLY_DIR, project_root: Path | None = None) -> Path:
    """Synthesize the CDK app (``infra/app.py: build_app``) into ``outdir``; returns the assembly folder.

    ``project_root`` (default: the working directory) is put on ``sys.path`` so ``infra`` imports
    when this runs from the ``compliance`` console script.
    """
    root = (project_root or Path.cwd()).resolve()
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from infra.app import build_app  # the infra package lives in the repository, not in the wheel

    outdir = Path(outdir)
    if not outdir.is_absolute():
        outdir = root / outdir
    build_app(str(outdir)).synth()
    logger.info("synthesized the CDK app into %s", outdir)
    return outdir
