"""Boot the synthesized template with the local runtime once per session, and drive it over real HTTP."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Deployed:
    runtime: Any  # compliance_tools.local.runtime.LocalRuntime
    base_url: str
    owner_dsn: str
    admin_key: str
    org_id: str

    def queue_url(self, logical_prefix: str) -> str:
        """The URL of the one queue whose logical id starts with ``logical_prefix``."""
        matches = [
            res.ref
            for lid, res in self.runtime.physical.items()
            if lid.startswith(logical_prefix) and res.type == "AWS::SQS::Queue"
        ]
        assert len(matches) == 1, f"{logical_prefix}: {matches}"
        return matches[0]


@pytest.fixture(scope="session")
def deployed() -> Iterator[Deployed]:
    from compliance_tools.local.runtime import LocalRuntime
    from compliance_tools.local.template import synthesize
    from compliance_tools.seed import seed_demo

    # Not under pytest's tmp_path: as root, PostgreSQL runs as another user that must reach its data dir.
    work = Path(tempfile.mkdtemp(prefix="compliance-e2e-"))
    assembly = synthesize(work / "cdk.out", project_root=REPO_ROOT)  # the real app, nag packs and all
    seeds: list[Any] = []
    runtime = LocalRuntime(
        assembly,
        data_dir=work / "state",
        api_port=0,
        on_ready=lambda rt: seeds.append(seed_demo(rt.database_dsn(), work / "state")),
    ).start()
    try:
        yield Deployed(
            runtime=runtime,
            base_url=f"http://127.0.0.1:{runtime.api_port}",
            owner_dsn=runtime.database_dsn(),
            admin_key=seeds[0].admin_key,
            org_id=str(seeds[0].org_id),
        )
    finally:
        runtime.stop()
        shutil.rmtree(work, ignore_errors=True)
