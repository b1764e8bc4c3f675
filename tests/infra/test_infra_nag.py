"""cdk-nag runs on every synth, fails it on any unacknowledged finding, and every acknowledgement says why."""

from __future__ import annotations

import json

import pytest

from tests.infra.conftest import Synthesized

pytestmark = pytest.mark.infra

PACK_PREFIXES = ("AwsSolutions-", "HIPAA.Security-", "NIST.800.53.R5-", "PCI.DSS.321-")
# aws-cdk-lib acknowledges some of its own template-validation warnings (e.g. literal AZs); not ours.
CDK_OWN_PREFIXES = ("CloudFormation-Validate::",)


def test_synth_leaves_no_unacknowledged_finding(synthesized: Synthesized) -> None:
    # Given the app synthesized by the session fixture (synth raises on a finding)
    # When the packs are run again directly on the tree
    from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks, NIST80053R5Checks, PCIDSS321Checks

    packs = [AwsSolutionsChecks(), HIPAASecurityChecks(), NIST80053R5Checks(), PCIDSS321Checks()]
    reports = {pack.name: pack.validate_scope(synthesized.app) for pack in packs}

    # Then every pack passes with no violation, and synth wrote no failure report
    violations = {
        name: [(v.rule_name, [r.construct_path for r in v.violating_resources]) for v in report.violations]
        for name, report in reports.items()
    }
    assert all(report.success for report in reports.values()), violations
    report_file = synthesized.outdir / "validation-report.json"
    if report_file.exists():
        written = json.loads(report_file.read_text())
        assert all(not plugin["violations"] for plugin in written["pluginReports"]), written


def test_every_pack_is_registered_on_the_app() -> None:
    # Given a fresh app with one obviously non-compliant resource
    import aws_cdk as cdk
    from aws_cdk import aws_sqs as sqs

    from infra.nag import add_nag_packs

    app = cdk.App()
    stack = cdk.Stack(app, "Bare")
    sqs.Queue(stack, "Queue")

    # When the packs are added and the app is synthesized
    packs = add_nag_packs(app)

    # Then all four packs are there and the unacknowledged findings fail the synth
    assert [pack.name for pack in packs] == [
        "AwsSolutions",
        "HIPAA.Security",
        "NIST.800.53.R5",
        "PCI.DSS.321",
    ]
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()


def test_every_acknowledgement_has_a_specific_reason(synthesized: Synthesized) -> None:
    # Given the acknowledgements recorded in the construct tree
    from infra.nag import MIN_REASON_LENGTH, acknowledged_rules

    acks = [
        ack for ack in acknowledged_rules(synthesized.app) if not ack.rule_id.startswith(CDK_OWN_PREFIXES)
    ]

    # Then there are some, each names a rule of a pack and carries a written reason of some length
    assert acks
    for ack in acks:
        assert ack.rule_id.startswith(PACK_PREFIXES), ack
        assert len(ack.reason.strip()) >= MIN_REASON_LENGTH, ack
        assert ack.path.startswith("ComplianceControlPlane/"), ack


def test_acknowledgements_reach_the_template_metadata(synthesized: Synthesized) -> None:
    # Given the synthesized template
    # When the resources' cdk_nag metadata is read (the audit trail cdk-nag v2 tooling understands)
    written = {
        rule["id"]: rule["reason"]
        for resource in synthesized.resources.values()
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    }

    # Then every acknowledged rule is there with its reason
    from infra.nag import acknowledged_rules

    ours = {
        ack.rule_id for ack in acknowledged_rules(synthesized.app) if ack.rule_id.startswith(PACK_PREFIXES)
    }
    assert ours <= set(written)


def test_a_vague_reason_is_refused() -> None:
    # Given a construct
    import aws_cdk as cdk

    from infra.nag import acknowledge

    stack = cdk.Stack(cdk.App(), "Vague")

    # When a rule is acknowledged without a real reason
    # Then it is refused
    with pytest.raises(ValueError, match="specific reason"):
        acknowledge(stack, "AwsSolutions-SQS3", "not needed")
