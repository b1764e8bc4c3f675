"""`compliance`: the one command a person runs (local runtime, invoke, migrations, benchmarks, synth)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_STATE_DIR = REPO_ROOT / ".local"
DEFAULT_CDK_OUT = REPO_ROOT / "cdk.out"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="compliance", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    synth = sub.add_parser("synth", help="synthesize the CDK app into cdk.out (cdk-nag packs run)")
    synth.add_argument("--out", type=Path, default=DEFAULT_CDK_OUT)

    local = sub.add_parser("local", help="the local runtime")
    local_sub = local.add_subparsers(dest="local_command", required=True)
    up = local_sub.add_parser("up", help="synthesize and serve the whole system on 127.0.0.1")
    up.add_argument("--port", type=int, default=int(os.environ.get("COMPLIANCE_PORT", "8080")))
    up.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    up.add_argument("--no-synth", action="store_true", help="boot the template already in cdk.out")
    trigger = local_sub.add_parser("trigger", help="fire an EventBridge rule of the running runtime now")
    trigger.add_argument("rule", help="rule logical id or name")
    trigger.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)

    invoke = sub.add_parser("invoke", help="run one function on a sample event (like `sam local invoke`)")
    invoke.add_argument("function", help="function logical id, name, or a unique part of it (e.g. IngestApi)")
    invoke.add_argument("--event", type=Path, required=True)
    invoke.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)

    migrate = sub.add_parser(
        "migrate", help="apply or roll back migrations (DATABASE_URL or the local database)"
    )
    migrate.add_argument("direction", choices=["up", "down", "status"])
    migrate.add_argument("--steps", type=int, default=1, help="for down: how many migrations to roll back")
    migrate.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)

    bench = sub.add_parser("bench", help="run a benchmark; the last line is one JSON object of figures")
    bench.add_argument("name", choices=["ingest", "audit", "pii", "crypto", "dsr"])
    bench.add_argument("--json", action="store_true", help="print the JSON figures as the last line")
    bench.add_argument("--records", type=int, default=10_000)

    audit = sub.add_parser("audit", help="the audit trail")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser(
        "verify",
        help="verify an exported audit log, its checkpoints and signatures offline (no AWS, no database)",
    )
    verify.add_argument("export", type=Path, help="an audit export (.jsonl or .csv) as downloaded")
    verify.add_argument(
        "--checkpoints", type=Path, help="the export's checkpoints file (default: found beside the export)"
    )
    verify.add_argument(
        "--public-key", type=Path, required=True, help="the signing key's public key (PEM or DER)"
    )
    verify.add_argument("--json", action="store_true", help="print the verdict as one JSON object")

    from compliance_tools import keys_cli

    keys_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "synth":
        from compliance_tools.local.template import synthesize

        template = synthesize(args.out)
        print(f"synthesized {template}")
        return 0
    if args.command == "local":
        from compliance_tools import local_cli

        if args.local_command == "up":
            return local_cli.up(port=args.port, state_dir=args.state_dir, synth=not args.no_synth)
        return local_cli.trigger(args.rule, state_dir=args.state_dir)
    if args.command == "invoke":
        from compliance_tools import local_cli

        event = json.loads(args.event.read_text())
        return local_cli.invoke(args.function, event, state_dir=args.state_dir)
    if args.command == "migrate":
        from compliance_tools import migrate_cli

        return migrate_cli.run(args.direction, steps=args.steps, state_dir=args.state_dir)
    if args.command == "bench" and args.name == "dsr":
        from compliance_tools.bench import dsr

        return dsr.run(as_json=args.json)
    if args.command == "bench":
        from compliance_tools.bench import run

        return run(args.name, as_json=args.json, records=args.records)
    if args.command == "audit":
        from compliance_tools import audit_cli

        return audit_cli.verify(
            args.export, checkpoints=args.checkpoints, public_key=args.public_key, as_json=args.json
        )
    if args.command == "keys":
        from compliance_tools import keys_cli

        return keys_cli.run(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
