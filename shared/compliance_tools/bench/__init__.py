"""Benchmarks: commands, not timed tests.

Each prints a human summary, then one JSON object of figures as its last line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def report(title: str, figures: Mapping[str, Any], *, as_json: bool) -> None:
    print(f"== {title}")
    for key, value in figures.items():
        if isinstance(value, Mapping):
            print(f"{key}:")
            for sub, sub_value in value.items():
                print(f"  {sub:<40} {sub_value}")
        else:
            print(f"{key:<42} {value}")
    if as_json:
        print(json.dumps(figures, sort_keys=True))


def run(name: str, *, as_json: bool, records: int) -> int:
    if name == "ingest":
        from compliance_tools.bench.ingest import bench_ingest

        report("ingest benchmark", bench_ingest(records=records), as_json=as_json)
        return 0
    if name == "audit":
        from compliance_tools.bench.audit import bench_audit

        report("audit benchmark", bench_audit(), as_json=as_json)
        return 0
    if name == "pii":
        from compliance_tools.bench.pii import bench_pii

        report("PII scanner benchmark", bench_pii(), as_json=as_json)
        return 0
    if name == "crypto":
        from compliance_tools.bench.crypto import bench_crypto

        report("field encryption benchmark", bench_crypto(), as_json=as_json)
        return 0
    raise SystemExit(f"unknown benchmark {name!r}")
