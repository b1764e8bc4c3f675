"""Generated names and secrets, as CloudFormation and Secrets Manager make them."""

from __future__ import annotations

import json
import string

import pytest

from compliance_tools.local.provision import (
    PUNCTUATION,
    ProvisioningError,
    generate_secret_string,
    physical_name,
)


def test_physical_names_are_stable_bounded_and_valid() -> None:
    name = physical_name("ComplianceControlPlane", "IngestQueue1234ABCD", 80, suffix=".fifo")
    assert name == physical_name("ComplianceControlPlane", "IngestQueue1234ABCD", 80, suffix=".fifo")
    assert name.startswith("ComplianceControlPlane-IngestQueue") and name.endswith(".fifo")
    assert name != physical_name("ComplianceControlPlane", "OtherQueue", 80, suffix=".fifo")
    long_name = physical_name("S" * 50, "L" * 50, 63, lowercase=True)
    assert len(long_name) <= 63
    assert set(long_name) <= set(string.ascii_lowercase + string.digits + "-")


def test_generated_secret_follows_the_template_and_exclusions() -> None:
    # Given the options the CDK writes for an RDS master secret
    options = {
        "SecretStringTemplate": '{"username":"compliance_admin"}',
        "GenerateStringKey": "password",
        "PasswordLength": 30,
        "ExcludeCharacters": " %+~`#$&*()|[]{}:;<>?!'/@\"\\",
    }
    # When generated
    secret = json.loads(generate_secret_string(options))
    # Then the username is kept and the password obeys the rules
    assert secret["username"] == "compliance_admin"
    password = secret["password"]
    assert len(password) == 30
    assert not set(password) & set(options["ExcludeCharacters"])
    assert any(c.islower() for c in password) and any(c.isupper() for c in password)
    assert any(c.isdigit() for c in password)


def test_plain_generated_secret_and_character_classes() -> None:
    value = generate_secret_string(
        {"PasswordLength": 16, "ExcludePunctuation": True, "ExcludeUppercase": True}
    )
    assert len(value) == 16
    assert not set(value) & set(PUNCTUATION + string.ascii_uppercase)


def test_excluding_everything_is_an_error() -> None:
    with pytest.raises(ProvisioningError):
        generate_secret_string(
            {
                "ExcludeLowercase": True,
                "ExcludeUppercase": True,
                "ExcludeNumbers": True,
                "ExcludePunctuation": True,
            }
        )
