"""CDK entry point: ``build_app()`` builds the app (tests, local runtime); ``main()`` synthesizes it (CLI).

cdk-nag packs run as CDK validation plugins on every ``synth()``: an unacknowledged finding makes
``app.synth()`` raise, so ``cdk synth``, ``make synth`` and the tests all fail on it.
"""

from __future__ import annotations

import os

import aws_cdk as cdk

from infra import constants as c
from infra.nag import acknowledge_findings, add_nag_packs
from infra.stack import ComplianceControlPlaneStack


def default_outdir() -> str:
    """Where the CDK CLI asks for the assembly (CDK_OUTDIR), else ``<repo>/cdk.out``."""
    return os.environ.get("CDK_OUTDIR") or str(c.REPO_ROOT / c.DEFAULT_OUTDIR)


def build_app(outdir: str | None = None, *, validate_template: bool = True) -> cdk.App:
    """The app, with its stack, the nag packs and every acknowledgement; not yet synthesized.

    ``outdir`` defaults to ``default_outdir()``. ``app.synth()`` raises on any unacknowledged cdk-nag
    finding. ``validate_template=False`` skips only CDK's built-in CloudFormation schema validation (about
    two thirds of the synth time; also off with ``CDK_VALIDATION=false``); the cdk-nag packs always run.
    """
    app = cdk.App(
        outdir=outdir or default_outdir(),
        context=dict(c.APP_CONTEXT),
        builtin_cloud_formation_validation=validate_template,
    )
    stack = ComplianceControlPlaneStack(app, c.STACK_NAME)
    acknowledge_findings(stack)
    add_nag_packs(app)
    return app


def main() -> None:
    build_app().synth()


if __name__ == "__main__":
    main()
