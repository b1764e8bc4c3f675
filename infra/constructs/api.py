"""REST API (API Gateway v1): Lambda REQUEST authorizer, problem+json gateway responses, WAF, access logs."""

from __future__ import annotations

import json
from collections.abc import Sequence

from aws_cdk import ArnFormat, Aws, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from infra import constants as c
from infra.constructs.audit import Audit
from infra.constructs.data_protection import DataProtection
from infra.constructs.database import Database
from infra.constructs.network import Network
from infra.constructs.python_function import PythonFunction


def problem_template(problem: c.ProblemResponse) -> str:
    """The gateway response body. Gateway templates only substitute variables (no VTL): keep it static."""
    slug = problem.title.lower().replace(" ", "-")
    body = {
        "type": c.PROBLEM_TYPE_BASE + slug,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "instance": "urn:request:$context.requestId",
    }
    return json.dumps(body)


def access_log_format() -> apigw.AccessLogFormat:
    fields = apigw.AccessLogField
    record = {
        "requestId": fields.context_request_id(),
        "xrayTraceId": fields.context_xray_trace_id(),
        "ip": fields.context_identity_source_ip(),
        "requestTime": fields.context_request_time(),
        "httpMethod": fields.context_http_method(),
        "resourcePath": fields.context_resource_path(),
        "status": fields.context_status(),
        "protocol": fields.context_protocol(),
        "responseLength": fields.context_response_length(),
        "integrationLatency": fields.context_integration_latency(),
        "principalId": fields.context_authorizer_principal_id(),
        "errorMessage": fields.context_error_message(),
        "errorType": fields.context_error_response_type(),
    }
    return apigw.AccessLogFormat.custom(json.dumps(record))


class Api(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        network: Network,
        database: Database,
        ingest_function: lambda_.IFunction,
        pii_function: lambda_.IFunction,
        dsr_function: lambda_.IFunction,
        audit: Audit,
        data_protection: DataProtection,
        key: kms.IKey,
        layers: Sequence[lambda_.ILayerVersion],
    ) -> None:
        super().__init__(scope, construct_id)
        self.authorizer_function = self._database_function(
            "AuthorizerFn", c.AUTHORIZER_FN, network, database, audit, key, layers
        )
        self.admin_function = self._database_function(
            "AdminFn", c.ADMIN_API_FN, network, database, audit, key, layers
        )
        # Usage-record reads decrypt prompt, completion and IP for roles that may read content.
        self.admin_function.function.add_environment("FIELD_KEY_ID", data_protection.field_key.key_arn)
        data_protection.allow_decrypt(self.admin_function)

        self.authorizer = apigw.RequestAuthorizer(
            self,
            "Authorizer",
            handler=self.authorizer_function.function,
            identity_sources=[apigw.IdentitySource.header(c.AUTHORIZER_IDENTITY_HEADER)],
            results_cache_ttl=c.AUTHORIZER_CACHE_TTL,
        )

        self.access_log_group = logs.LogGroup(
            self,
            "AccessLogs",
            retention=c.LOG_RETENTION,
            encryption_key=key,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.rest_api = apigw.RestApi(
            self,
            "RestApi",
            rest_api_name=c.API_NAME,
            description="Compliance control plane API",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # API Gateway needs an account-level role to write execution and access logs.
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,
            fail_on_warnings=True,
            deploy_options=apigw.StageOptions(
                stage_name=c.API_STAGE_NAME,
                tracing_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                metrics_enabled=True,
                throttling_rate_limit=c.API_THROTTLE_RATE_LIMIT,
                throttling_burst_limit=c.API_THROTTLE_BURST_LIMIT,
                access_log_destination=apigw.LogGroupLogDestination(self.access_log_group),
                access_log_format=access_log_format(),
            ),
        )
        self.request_validator = self.rest_api.add_request_validator(
            "RequestValidator", validate_request_parameters=True, validate_request_body=True
        )
        self._add_gateway_responses()
        self._add_routes(ingest_function, pii_function, audit.api.function)
        self._add_dsr_routes(self.rest_api.root.get_resource("v1"), dsr_function)
        self.web_acl = self._add_web_acl(key)

    def _database_function(
        self,
        construct_id: str,
        spec: c.FunctionSpec,
        network: Network,
        database: Database,
        audit: Audit,
        key: kms.IKey,
        layers: Sequence[lambda_.ILayerVersion],
    ) -> PythonFunction:
        """A function that reads PostgreSQL through the proxy and publishes audit events."""
        function = PythonFunction(
            self,
            construct_id,
            spec=spec,
            layers=layers,
            vpc=network.vpc,
            security_groups=[database.client_security_group],
            key=key,
            environment={**database.proxy_environment, **audit.publish_environment},
        )
        database.grant_proxy_connect(function)
        audit.allow_publish(function)
        return function

    def _add_gateway_responses(self) -> None:
        headers = {"Content-Type": f"'{c.PROBLEM_CONTENT_TYPE}'"}
        for problem in c.GATEWAY_PROBLEMS:
            body = problem_template(problem)
            self.rest_api.add_gateway_response(
                problem.response_type.title().replace("_", ""),
                type=apigw.ResponseType.of(problem.response_type),
                status_code=str(problem.status),
                response_headers=headers,
                # Keyed by the client's Accept type; application/json is the fallback API Gateway uses.
                templates={"application/json": body, c.PROBLEM_CONTENT_TYPE: body},
            )

    def _method(
        self,
        resource: apigw.IResource,
        http_method: str,
        function: lambda_.IFunction,
        *,
        path_params: Sequence[str] = (),
        authorized: bool = True,
    ) -> apigw.Method:
        return resource.add_method(
            http_method,
            apigw.LambdaIntegration(function, proxy=True, allow_test_invoke=False),
            authorizer=self.authorizer if authorized else None,
            authorization_type=apigw.AuthorizationType.CUSTOM if authorized else apigw.AuthorizationType.NONE,
            request_validator=self.request_validator,
            request_parameters={f"method.request.path.{name}": True for name in path_params},
        )

    def _add_routes(
        self,
        ingest_function: lambda_.IFunction,
        pii_function: lambda_.IFunction,
        audit_function: lambda_.IFunction,
    ) -> None:
        admin = self.admin_function.function
        v1 = self.rest_api.root.add_resource("v1")
        usage = v1.add_resource("usage")
        self._method(usage, "POST", ingest_function)
        # Stored records are read (and decrypted) by the admin function: the ingest function has no database.
        self._method(usage.add_resource("{request_id}"), "GET", admin, path_params=["request_id"])
        consents = v1.add_resource("consents")
        self._method(consents, "POST", admin)
        revoke = consents.add_resource("{consent_id}").add_resource("revoke")
        self._method(revoke, "POST", admin, path_params=["consent_id"])
        subject_consents = v1.add_resource("subjects").add_resource("{subject_id}").add_resource("consents")
        self._method(subject_consents, "GET", admin, path_params=["subject_id"])
        pii_settings = v1.add_resource("settings").add_resource("pii")
        self._method(pii_settings, "GET", admin)
        self._method(pii_settings, "PUT", admin)
        api_keys = v1.add_resource("api-keys")
        self._method(api_keys, "GET", admin)
        self._method(api_keys, "POST", admin)
        api_key = api_keys.add_resource("{key_id}")
        self._method(api_key, "GET", admin, path_params=["key_id"])
        self._method(api_key.add_resource("revoke"), "POST", admin, path_params=["key_id"])
        # The catalog describes the schema: served by the admin function, which already reads PostgreSQL.
        catalog = v1.add_resource("catalog")
        self._method(catalog, "GET", admin)
        self._method(catalog.add_resource("personal-data"), "GET", admin)
        self._method(v1.add_resource("pii").add_resource("scan"), "POST", pii_function)
        self._add_audit_routes(v1.add_resource("audit"), audit_function)

    def _add_dsr_routes(self, v1: apigw.IResource | None, function: lambda_.IFunction) -> None:
        assert v1 is not None
        dsr = v1.add_resource("dsr")
        self._method(dsr, "POST", function)
        self._method(dsr, "GET", function)
        request = dsr.add_resource("{request_id}")
        self._method(request, "GET", function, path_params=["request_id"])
        self._method(request.add_resource("extend"), "POST", function, path_params=["request_id"])
        self._method(request.add_resource("cancel"), "POST", function, path_params=["request_id"])
        self._method(request.add_resource("lift"), "POST", function, path_params=["request_id"])
        # The subject has no API key: the e-mailed one-time code is the credential (checked by the
        # function, with a lockout); the stage's throttling and the WAF's rate rule still apply.
        self.verify_method = self._method(
            request.add_resource("verify"), "POST", function, path_params=["request_id"], authorized=False
        )

    def _add_audit_routes(self, audit: apigw.IResource, function: lambda_.IFunction) -> None:
        events = audit.add_resource("events")
        self._method(events, "GET", function)
        event = events.add_resource("{event_id}")
        self._method(event, "GET", function, path_params=["event_id"])
        self._method(event.add_resource("proof"), "GET", function, path_params=["event_id"])
        self._method(audit.add_resource("verify"), "GET", function)
        checkpoints = audit.add_resource("checkpoints")
        self._method(checkpoints, "GET", function)
        # API Gateway allows one variable name per level: /{a}/consistency/{b} is /{number}/.../{to_number}
        # (the function routes on the request path, not on these names).
        checkpoint = checkpoints.add_resource("{number}")
        self._method(checkpoint, "GET", function, path_params=["number"])
        consistency = checkpoint.add_resource("consistency").add_resource("{to_number}")
        self._method(consistency, "GET", function, path_params=["number", "to_number"])
        self._method(audit.add_resource("public-key"), "GET", function)
        self._method(audit.add_resource("exports"), "POST", function)

    def _add_web_acl(self, key: kms.IKey) -> wafv2.CfnWebACL:
        def visibility(metric: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
            return wafv2.CfnWebACL.VisibilityConfigProperty(
                cloud_watch_metrics_enabled=True, metric_name=metric, sampled_requests_enabled=True
            )

        def managed(priority: int, name: str, overrides: Sequence[str] = ()) -> wafv2.CfnWebACL.RuleProperty:
            return wafv2.CfnWebACL.RuleProperty(
                name=name,
                priority=priority,
                override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                        vendor_name="AWS",
                        name=name,
                        rule_action_overrides=[
                            wafv2.CfnWebACL.RuleActionOverrideProperty(
                                name=rule, action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={})
                            )
                            for rule in overrides
                        ]
                        or None,
                    )
                ),
                visibility_config=visibility(name),
            )

        rate_limit = wafv2.CfnWebACL.RuleProperty(
            name="RateLimitPerIp",
            priority=0,
            action=wafv2.CfnWebACL.RuleActionProperty(block={}),
            statement=wafv2.CfnWebACL.StatementProperty(
                rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                    limit=c.WAF_RATE_LIMIT_PER_5_MIN, aggregate_key_type="IP"
                )
            ),
            visibility_config=visibility("RateLimitPerIp"),
        )
        web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=visibility("ComplianceApi"),
            rules=[
                rate_limit,
                managed(1, "AWSManagedRulesAmazonIpReputationList"),
                # Usage batches can exceed the common rule set's 8 KB body limit; the API enforces its own
                # size limits (413 problem+json), so that one rule only counts.
                managed(2, "AWSManagedRulesCommonRuleSet", overrides=["SizeRestrictions_BODY"]),
                managed(3, "AWSManagedRulesKnownBadInputsRuleSet"),
            ],
        )
        wafv2.CfnWebACLAssociation(
            self,
            "WebAclAssociation",
            resource_arn=self.rest_api.deployment_stage.stage_arn,
            web_acl_arn=web_acl.attr_arn,
        )
        # WAF only delivers to log groups named aws-waf-logs-*, addressed by ARN without the ":*" suffix.
        waf_log_group = logs.LogGroup(
            self,
            "WafLogs",
            log_group_name=f"{c.WAF_LOG_GROUP_PREFIX}{Aws.STACK_NAME}",
            retention=c.LOG_RETENTION,
            encryption_key=key,
            removal_policy=RemovalPolicy.RETAIN,
        )
        wafv2.CfnLoggingConfiguration(
            self,
            "WebAclLogging",
            resource_arn=web_acl.attr_arn,
            log_destination_configs=[
                Stack.of(self).format_arn(
                    service="logs",
                    resource="log-group",
                    resource_name=waf_log_group.log_group_name,
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )
            ],
        )
        return web_acl

    @property
    def url(self) -> str:
        return self.rest_api.url
