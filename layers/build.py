"""Build the two Lambda layers into ``build/layers/`` (no Docker: pip fetches the Lambda platform's wheels).

- ``build/layers/deps/python/``: the third-party runtime dependencies pinned in ``layers/requirements.txt``,
  installed for CPython 3.13 on arm64 (the functions' runtime), whatever machine runs this script.
- ``build/layers/domain/``: ``python/compliance/`` (the domain library) and ``migrations/`` (Lambda mounts
  layers at ``/opt``, so the migration function reads its SQL from ``/opt/migrations``).

The pip step is skipped while the requirements (and the pip arguments) hash to the stamp left by the last
build; ``--force`` rebuilds anyway. The domain layer is cheap and is always rebuilt.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "layers" / "requirements.txt"
BUILD_DIR = ROOT / "build" / "layers"
DEPS_DIR = BUILD_DIR / "deps"
DOMAIN_DIR = BUILD_DIR / "domain"
DEPS_STAMP = DEPS_DIR / ".requirements.sha256"
# Make's target (see the Makefile): touched after every successful build.
BUILT_STAMP = BUILD_DIR / ".built"
DOMAIN_SOURCE = ROOT / "shared" / "compliance"
MIGRATIONS_SOURCE = ROOT / "migrations"

# Lambda python3.13 runs on Amazon Linux 2023 (glibc 2.34), arm64. pip only accepts wheels whose platform
# tag is listed, so list every manylinux level that glibc 2.34 can load.
PYTHON_VERSION = "3.13"
PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64", "manylinux_2_34_aarch64")
PIP_ARGS = (
    "install",
    "--quiet",
    "--disable-pip-version-check",
    "--no-compile",
    "--only-binary=:all:",
    "--implementation",
    "cp",
    "--python-version",
    PYTHON_VERSION,
    *(arg for platform in PLATFORMS for arg in ("--platform", platform)),
)

# Never needed at run time: bytecode is compiled by Lambda's interpreter, tests are not imported, console
# scripts have no shell to run in. dist-info keeps METADATA and entry_points.txt (importlib.metadata
# reads them) and licences.
PRUNE_DIR_NAMES = frozenset({"__pycache__", "tests"})
PRUNE_FILE_SUFFIXES = (".pyc", ".pyo")
PRUNE_DIST_INFO_FILES = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})

_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*==\s*([^\s;#]+)")


def normalize(name: str) -> str:
    """PEP 503 name normalisation, so pins and installed dist-info names compare equal."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(requirements: Path) -> dict[str, str]:
    """Name -> version of every ``name==version`` line; any other requirement line is an error."""
    pins: dict[str, str] = {}
    for number, raw in enumerate(requirements.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _PIN.match(line)
        if match is None:
            raise SystemExit(f"{requirements}:{number}: not an exact pin (name==version): {line!r}")
        pins[normalize(match.group(1))] = match.group(2)
    return pins


def requirements_digest(requirements: Path) -> str:
    digest = hashlib.sha256(requirements.read_bytes())
    digest.update("\0".join(PIP_ARGS).encode())
    return digest.hexdigest()


def installed_distributions(site: Path) -> dict[str, str]:
    """Name -> version of every distribution pip installed into ``site``."""
    found: dict[str, str] = {}
    for dist_info in site.glob("*.dist-info"):
        name, _, version = dist_info.name.removesuffix(".dist-info").partition("-")
        found[normalize(name)] = version
    return found


def check_closure(pins: dict[str, str], installed: dict[str, str]) -> None:
    """Fail when pip resolved something the requirements do not pin (the layer would drift silently)."""
    unpinned = {name: version for name, version in installed.items() if name not in pins}
    mismatched = {name: version for name, version in installed.items() if pins.get(name, version) != version}
    if unpinned or mismatched:
        raise SystemExit(
            "layers/requirements.txt is not a complete, exact closure: "
            f"unpinned={sorted(unpinned.items())} mismatched={sorted(mismatched.items())}"
        )


def prune(tree: Path) -> None:
    """Remove bytecode, test suites, console scripts and install bookkeeping from an installed tree."""
    for path in sorted(tree.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and path.name in PRUNE_DIR_NAMES:
            shutil.rmtree(path, ignore_errors=True)
        elif path.is_file() and (
            path.suffix in PRUNE_FILE_SUFFIXES
            or (path.parent.name.endswith(".dist-info") and path.name in PRUNE_DIST_INFO_FILES)
        ):
            path.unlink()
    shutil.rmtree(tree / "bin", ignore_errors=True)


def build_deps(force: bool) -> None:
    digest = requirements_digest(REQUIREMENTS)
    site = DEPS_DIR / "python"
    if not force and site.is_dir() and DEPS_STAMP.is_file() and DEPS_STAMP.read_text().strip() == digest:
        print(f"deps layer up to date ({site.relative_to(ROOT)})")
        return
    pins = read_pins(REQUIREMENTS)
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    # Install into a scratch folder and swap it in, so an interrupted build never leaves a half layer.
    with tempfile.TemporaryDirectory(dir=BUILD_DIR, prefix=".deps-") as scratch:
        target = Path(scratch) / "python"
        command = [sys.executable, "-m", "pip", *PIP_ARGS, "--target", str(target), "-r", str(REQUIREMENTS)]
        print("building deps layer:", " ".join(command[3:]))
        subprocess.run(command, check=True)  # noqa: S603 - fixed argv, no shell
        check_closure(pins, installed_distributions(target))
        prune(target)
        shutil.rmtree(DEPS_DIR, ignore_errors=True)
        DEPS_DIR.mkdir(parents=True)
        target.rename(site)
    DEPS_STAMP.write_text(digest + "\n", encoding="utf-8")
    print(f"deps layer built ({site.relative_to(ROOT)})")


def _ignore_bytecode(_directory: str, names: list[str]) -> set[str]:
    return {name for name in names if name == "__pycache__" or name.endswith(PRUNE_FILE_SUFFIXES)}


def build_domain() -> None:
    """Copy the domain library and the migrations; their content changes the layer's asset hash."""
    if not DOMAIN_SOURCE.is_dir():
        raise SystemExit(f"missing domain library: {DOMAIN_SOURCE}")
    shutil.rmtree(DOMAIN_DIR, ignore_errors=True)
    shutil.copytree(DOMAIN_SOURCE, DOMAIN_DIR / "python" / "compliance", ignore=_ignore_bytecode)
    migrations = DOMAIN_DIR / "migrations"
    if MIGRATIONS_SOURCE.is_dir():
        shutil.copytree(MIGRATIONS_SOURCE, migrations, ignore=_ignore_bytecode)
    else:
        migrations.mkdir(parents=True)
    print(f"domain layer built ({DOMAIN_DIR.relative_to(ROOT)})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--force", action="store_true", help="reinstall the deps layer even if up to date")
    args = parser.parse_args(argv)
    build_deps(force=args.force)
    build_domain()
    BUILT_STAMP.touch()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
