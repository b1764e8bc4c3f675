"""Cold import time of each handler module, each in a fresh interpreter (what a Lambda cold start pays)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]

# Valid-looking settings so every handler's @init_environment passes; nothing is contacted at import.
_ENV = {
    "DB_HOST": "proxy.invalid",
    "DB_PORT": "5432",
    "DB_NAME": "compliance",
    "DB_USER": "compliance_app",
    "DB_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:000000000000:secret:master",
    "DB_APP_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:000000000000:secret:app",
    "DB_APP_USER": "compliance_app",
    "INGEST_QUEUE_URL": "https://sqs.invalid/queue",
    "IDEMPOTENCY_TABLE_NAME": "idempotency",
    "AUDIT_QUEUE_URL": "https://sqs.invalid/audit.fifo",
    "AUDIT_DEAD_LETTER_QUEUE_URL": "https://sqs.invalid/audit-dlq.fifo",
    "AUDIT_SIGNING_KEY_ID": "arn:aws:kms:us-east-1:000000000000:key/00000000-0000-0000-0000-000000000000",
    "AUDIT_ANCHOR_BUCKET": "anchor",
    "EXPORTS_BUCKET": "exports",
    "EXPORT_DOWNLOAD_ROLE_ARN": "arn:aws:iam::000000000000:role/export-download",
    "FIELD_KEY_ID": "arn:aws:kms:us-east-1:000000000000:key/00000000-0000-0000-0000-000000000001",
    "SHRED_LEDGER_BUCKET": "anchor",
    "SHRED_LEDGER_RETENTION_DAYS": "2557",
    "DSR_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:000000000000:stateMachine:compliance-dsr",
    "DSR_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:000000000000:secret:dsr",
    "DSR_ALERT_TOPIC_ARN": "arn:aws:sns:us-east-1:000000000000:dsr-alerts",
    "DSR_SENDER": "privacy@compliance.example.com",
    "EXPORTS_KEY_ID": "arn:aws:kms:us-east-1:000000000000:key/00000000-0000-0000-0000-000000000002",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "true",
}
_PROBE = (
    "import time, importlib; t = time.perf_counter(); importlib.import_module({module!r}); "
    "print((time.perf_counter() - t) * 1000)"
)


def handler_modules() -> list[str]:
    return sorted(
        ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)
        for path in (REPO_ROOT / "functions").glob("*/*.py")
        if path.name != "__init__.py"
    )


def cold_import_ms(runs: int = 3) -> dict[str, float]:
    env = {**os.environ, **_ENV, "PYTHONDONTWRITEBYTECODE": "0"}
    results: dict[str, float] = {}
    for module in handler_modules():
        samples = []
        for _ in range(runs):
            out = subprocess.run(  # noqa: S603 - our own interpreter and module names
                [sys.executable, "-c", _PROBE.format(module=module)],
                cwd=REPO_ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            samples.append(float(out.stdout.strip().splitlines()[-1]))
        results[module.removeprefix("functions.")] = round(statistics.median(samples), 1)
    return results
