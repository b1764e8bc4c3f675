"""Fixtures of the local API Gateway tests (defined in apigw_fixtures, importable by the tests too)."""

from tests.unit.apigw.apigw_fixtures import clock, gateway, lambdas

__all__ = ["clock", "gateway", "lambdas"]
