"""Intrinsic functions evaluated against locally provisioned resources."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from compliance_tools.local.intrinsics import (
    IntrinsicError,
    PhysicalResource,
    Resolver,
    UnresolvedReferenceError,
    dependency_order,
    references,
)
from compliance_tools.local.template import CloudTemplate


def make_template(resources: dict[str, Any], **sections: Any) -> CloudTemplate:
    return CloudTemplate(
        path=Path("/x/Stack.template.json"),
        body={"Resources": resources, **sections},
        stack_name="Stack",
        assembly_dir=Path("/x"),
    )


@pytest.fixture
def resolver() -> Resolver:
    template = make_template(
        {
            "Queue": {"Type": "AWS::SQS::Queue"},
            "Table": {"Type": "AWS::DynamoDB::Table"},
            "Pending": {"Type": "AWS::SQS::Queue"},
            "OnlyInProd": {"Type": "AWS::SQS::Queue", "Condition": "IsProd"},
        },
        Parameters={
            "Stage": {"Type": "String", "Default": "dev"},
            "Zones": {"Type": "CommaDelimitedList", "Default": "a, b"},
            "Required": {"Type": "String"},
        },
        Conditions={
            "IsProd": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]},
            "IsDev": {"Fn::Not": [{"Condition": "IsProd"}]},
            "Both": {"Fn::And": [{"Condition": "IsDev"}, {"Fn::Or": [True, False]}]},
        },
        Mappings={"Sizes": {"dev": {"memory": 256}}},
    )
    resolver = Resolver(template, region="eu-west-1", account_id="123456789012")
    resolver.physical["Queue"] = PhysicalResource(
        "Queue",
        "AWS::SQS::Queue",
        "http://q/url",
        {"Arn": "arn:aws:sqs:eu-west-1:123456789012:q", "QueueName": "q"},
    )
    resolver.physical["Table"] = PhysicalResource("Table", "AWS::DynamoDB::Table", "tbl", {}, emulated=False)
    return resolver


def test_ref_and_get_att_resolve_to_physical_values(resolver: Resolver) -> None:
    assert resolver.resolve({"Ref": "Queue"}) == "http://q/url"
    assert resolver.resolve({"Fn::GetAtt": ["Queue", "Arn"]}) == "arn:aws:sqs:eu-west-1:123456789012:q"
    assert resolver.resolve({"Fn::GetAtt": "Queue.QueueName"}) == "q"


def test_stand_in_resources_answer_any_attribute(resolver: Resolver) -> None:
    assert resolver.resolve({"Fn::GetAtt": ["Table", "StreamArn"]}) == "tbl.StreamArn"


def test_unknown_attribute_of_an_emulated_resource_is_an_error(resolver: Resolver) -> None:
    with pytest.raises(IntrinsicError, match="no attribute 'Nope'"):
        resolver.resolve({"Fn::GetAtt": ["Queue", "Nope"]})


def test_reference_to_an_unprovisioned_resource_names_it(resolver: Resolver) -> None:
    with pytest.raises(UnresolvedReferenceError, match="Pending"):
        resolver.resolve({"Ref": "Pending"})


def test_pseudo_parameters_and_parameter_defaults(resolver: Resolver) -> None:
    assert resolver.resolve({"Ref": "AWS::Region"}) == "eu-west-1"
    assert resolver.resolve({"Ref": "AWS::AccountId"}) == "123456789012"
    assert resolver.resolve({"Ref": "AWS::StackName"}) == "Stack"
    assert resolver.resolve({"Ref": "AWS::Partition"}) == "aws"
    assert resolver.resolve({"Ref": "Stage"}) == "dev"
    assert resolver.resolve({"Ref": "Zones"}) == ["a", "b"]
    with pytest.raises(IntrinsicError, match="Required"):
        resolver.resolve({"Ref": "Required"})


def test_join_sub_select_split(resolver: Resolver) -> None:
    assert resolver.resolve({"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":x"]]}) == "arn:aws:x"
    assert (
        resolver.resolve({"Fn::Sub": "${AWS::Region}/${Queue.QueueName}/${Queue}/${!Literal}"})
        == "eu-west-1/q/http://q/url/${Literal}"
    )
    assert resolver.resolve({"Fn::Sub": ["${Name}-${Stage}", {"Name": {"Ref": "Table"}}]}) == "tbl-dev"
    assert resolver.resolve({"Fn::Select": [1, {"Fn::Split": [",", "a,b,c"]}]}) == "b"
    assert resolver.resolve({"Fn::FindInMap": ["Sizes", {"Ref": "Stage"}, "memory"]}) == 256
    assert resolver.resolve({"Fn::GetAZs": ""}) == ["eu-west-1a", "eu-west-1b", "eu-west-1c"]


def test_conditions_and_if_with_no_value(resolver: Resolver) -> None:
    # Given Stage=dev
    assert resolver.condition("IsProd") is False
    assert resolver.condition("Both") is True
    assert resolver.is_enabled("OnlyInProd") is False
    # When Fn::If picks AWS::NoValue, the key or list item disappears
    value = {
        "Keep": {"Fn::If": ["IsDev", "yes", "no"]},
        "Drop": {"Fn::If": ["IsProd", "x", {"Ref": "AWS::NoValue"}]},
        "List": ["a", {"Fn::If": ["IsProd", "b", {"Ref": "AWS::NoValue"}]}],
    }
    assert resolver.resolve(value) == {"Keep": "yes", "List": ["a"]}


def test_import_value_is_refused_clearly(resolver: Resolver) -> None:
    with pytest.raises(IntrinsicError, match="cross-stack exports"):
        resolver.resolve({"Fn::ImportValue": "SharedVpcId"})


def test_unsupported_function_is_named(resolver: Resolver) -> None:
    with pytest.raises(IntrinsicError, match="Fn::Cidr"):
        resolver.resolve({"Fn::Cidr": ["10.0.0.0/16", 2, 8]})


def test_dynamic_references_use_the_callback_also_when_assembled_by_join(resolver: Resolver) -> None:
    seen: list[tuple[str, str]] = []

    def dynamic(service: str, reference: str) -> str:
        seen.append((service, reference))
        return "s3cr3t"

    resolver.dynamic = dynamic
    joined = {"Fn::Join": ["", ["{{resolve:secretsmanager:", {"Ref": "Table"}, ":SecretString:password::}}"]]}
    assert resolver.resolve(joined) == "s3cr3t"
    assert resolver.resolve("pw={{resolve:ssm:/param}}") == "pw=s3cr3t"
    assert seen == [("secretsmanager", "tbl:SecretString:password::"), ("ssm", "/param")]


def test_references_and_dependency_order() -> None:
    template = make_template(
        {
            "Function": {
                "Type": "AWS::Lambda::Function",
                "Properties": {"Env": {"Fn::Sub": "${Queue.Arn}-${AWS::Region}-${Local}"}},
                "DependsOn": "Role",
            },
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"Dlq": {"Fn::GetAtt": ["Dlq", "Arn"]}}},
            "Dlq": {"Type": "AWS::SQS::Queue"},
            "Role": {"Type": "AWS::IAM::Role"},
        }
    )
    assert references({"Fn::Sub": ["${A}${B}${C.Arn}", {"B": "x"}]}) == {"A", "C"}
    order = dependency_order(template)
    assert order.index("Dlq") < order.index("Queue") < order.index("Function")
    assert order.index("Role") < order.index("Function")


def test_circular_dependencies_are_reported() -> None:
    template = make_template(
        {
            "A": {"Type": "X", "Properties": {"P": {"Ref": "B"}}},
            "B": {"Type": "X", "Properties": {"P": {"Ref": "A"}}},
        }
    )
    with pytest.raises(IntrinsicError, match="circular"):
        dependency_order(template)
