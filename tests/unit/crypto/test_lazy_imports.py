"""Cold start: importing the crypto package loads neither cryptography nor botocore."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SHARED = Path(__file__).resolve().parents[3] / "shared"


def test_importing_the_package_defers_heavy_modules() -> None:
    # When a fresh interpreter imports compliance.crypto
    code = (
        "import sys, compliance.crypto; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'cryptography', 'botocore', 'boto3'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=SHARED, capture_output=True, text=True, check=True, timeout=60
    )
    # Then none of the heavy modules was imported
    assert result.stdout.strip() == "[]"
