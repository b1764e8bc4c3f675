"""`compliance keys rekey|reapply-shreds`: operator commands for data keys (docs/crypto-format.md).

- ``rekey --org ORG [--batch-size N] [--resume RUN_ID] [--no-wait]``: new data keys for every scope
  of the organisation and every encrypted catalog column re-encrypted, resumable
  (:mod:`compliance.crypto.rekey`). Without ``--no-wait`` it sleeps until the catch-up is due
  (the key cache's maximum age after the start); with it, it exits 3 and says when to resume.
- ``reapply-shreds``: after restoring the database from a backup, destroy again every subject the
  shred ledger records (:func:`compliance.crypto.rotation.reapply_shreds`). Step one of the
  restore runbook, before the restored database serves traffic.

Environment: ``DATABASE_URL`` (the database, as the application user or the owner), ``FIELD_KEY_ID``
(the field KMS key), ``AUDIT_QUEUE_URL`` (where the audit events go), ``SHRED_LEDGER_BUCKET``
(reapply-shreds: the audit anchor bucket), ``FIELD_KEY_CACHE_MAX_AGE_S`` (rekey: as the functions
use it; 300 by default), and the usual AWS credentials and region.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from compliance.errors import DomainError

REPO_ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS_DIR = REPO_ROOT / "migrations"
OPERATOR = "system:operator-cli"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PENDING = 0, 1, 2, 3


def add_parser(sub: Any) -> None:
    """Register ``keys`` under the ``compliance`` command's subparsers."""
    keys = sub.add_parser("keys", help="data keys: re-key an organisation, re-apply shreds after a restore")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    rekey = keys_sub.add_parser("rekey", help="move an organisation's values to new data keys (resumable)")
    rekey.add_argument("--org", type=UUID, required=True)
    rekey.add_argument("--batch-size", type=int, default=500)
    rekey.add_argument("--resume", type=UUID, metavar="RUN_ID", help="continue this unfinished run")
    rekey.add_argument(
        "--no-wait", action="store_true", help="exit (status 3) instead of waiting for the catch-up"
    )
    keys_sub.add_parser(
        "reapply-shreds", help="destroy again every shred the ledger records (after a restore)"
    )


def run(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    try:
        if args.keys_command == "rekey":
            return _rekey(
                env, args.org, batch_size=args.batch_size, resume=args.resume, wait=not args.no_wait
            )
        return _reapply(env)
    except KeyError as exc:
        print(f"compliance keys: set {exc.args[0]}", file=sys.stderr)
        return EXIT_USAGE
    except DomainError as exc:
        print(f"compliance keys: {type(exc).__name__}: {exc.detail}", file=sys.stderr)
        return EXIT_FAILED


def _database(env: Mapping[str, str]) -> Any:
    from compliance.db.connection import Database

    return Database(env["DATABASE_URL"], max_size=1, name="compliance-keys-cli")


def _sink(env: Mapping[str, str]) -> Any:
    from compliance.audit.sqs_sink import audit_sink

    return audit_sink(env["AUDIT_QUEUE_URL"])


def _rekey(env: Mapping[str, str], org: UUID, *, batch_size: int, resume: UUID | None, wait: bool) -> int:
    import time

    from compliance.aws.clients import client
    from compliance.catalog import catalog_path, load_catalog
    from compliance.config import FieldEncryptionSettings
    from compliance.crypto import DataKeyCache, KmsDataKeys
    from compliance.crypto.rekey import encrypted_tables, rekey, start_rekey

    settings = FieldEncryptionSettings.from_environ(env)
    tables = encrypted_tables(load_catalog(catalog_path(MIGRATIONS_DIR)))
    sink = _sink(env)
    with _database(env) as db:
        run_id = resume or start_rekey(
            db,
            org,
            sink,
            tables,
            cache_max_age_s=settings.field_key_cache_max_age_s,
            batch_size=batch_size,
            actor=OPERATOR,
        )
        print(f"re-key run {run_id} of org {org}", file=sys.stderr)
        result = rekey(
            db,
            org,
            run_id,
            sink,
            KmsDataKeys(client("kms"), settings.field_key_id),
            tables,
            kms_key_id=settings.field_key_id,
            cache=DataKeyCache(),
            wait=time.sleep if wait else None,
            actor=OPERATOR,
        )
    print(
        json.dumps(
            {
                "run_id": str(result.run_id),
                "finished": result.finished,
                "rows": result.rows,
                "values_rekeyed": result.values_rekeyed,
                "values_skipped": result.values_skipped,
                "values_erased": result.values_erased,
                "resume_after": None if result.resume_after is None else result.resume_after.isoformat(),
            }
        )
    )
    return EXIT_OK if result.finished else EXIT_PENDING


def _reapply(env: Mapping[str, str]) -> int:
    from compliance.aws.clients import client
    from compliance.crypto.ledger import S3ShredLedger
    from compliance.crypto.rotation import reapply_shreds

    ledger = S3ShredLedger(client("s3"), env["SHRED_LEDGER_BUCKET"], retention_days=1)  # lists only
    with _database(env) as db:
        result = reapply_shreds(db, ledger, _sink(env), now=datetime.now(UTC), actor=OPERATOR)
    print(
        json.dumps(
            {
                "shreds_listed": result.scopes_listed,
                "shreds_reapplied": result.scopes_reapplied,
                "keys_destroyed": result.keys_destroyed,
                "orgs_absent": result.orgs_absent,
                "failed_orgs": [str(o) for o in result.failed_orgs],
                "ledger_error": result.ledger_error,
            }
        )
    )
    return EXIT_FAILED if result.failed_orgs or result.ledger_error else EXIT_OK
