"""``LocalRuntime``: the synthesized template booted on this machine.

Start order: embedded PostgreSQL (data kept in ``<data_dir>/pg``) -> moto server (in memory, empty)
-> process environment pointed at moto -> resources provisioned in dependency order -> every Python
Lambda imported -> Step Functions Lambda tasks routed in-process -> CDK triggers run (migrations)
-> SQS pollers -> EventBridge scheduler -> API Gateway emulator -> control server -> ``on_ready``
-> state file. ``stop()`` undoes it in reverse and keeps the data folder: PostgreSQL data survives
restarts, moto's resources do not (they are re-provisioned from the template on each start).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from moto.core.models import DEFAULT_ACCOUNT_ID

from compliance_tools.local import stepfunctions
from compliance_tools.local.control import ControlApi, ControlServer
from compliance_tools.local.database import PgEndpoint, PgServer
from compliance_tools.local.intrinsics import IntrinsicError, PhysicalResource, Resolver
from compliance_tools.local.lambdas import FunctionRegistry, InvocationResult, LambdaFunctionError
from compliance_tools.local.motoserver import FAKE_ACCESS_KEY, FAKE_SECRET_KEY, MotoServer, moto_session
from compliance_tools.local.provision import ProvisionedStack, Provisioner
from compliance_tools.local.scheduler import Scheduler, TargetDispatcher
from compliance_tools.local.sqs import SqsPoller
from compliance_tools.local.state import RuntimeState, remove_state, state_path, write_state
from compliance_tools.local.template import DEFAULT_ASSEMBLY_DIR, CloudTemplate, load_template

logger = logging.getLogger(__name__)

DEFAULT_REGION = "us-east-1"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY,
    "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_KEY,
    "AWS_SESSION_TOKEN": "local",
}

PgFactory = Callable[[Path], PgServer]
ReadyHook = Callable[["LocalRuntime"], None]

_active_lock = threading.Lock()
_active: LocalRuntime | None = None


class RuntimeStartError(RuntimeError):
    """The runtime could not start (the message says which step and why)."""


def embedded_postgres(data_dir: Path) -> PgServer:
    """The default PostgreSQL: ``compliance_tools.pg.EmbeddedPostgres`` with data in ``data_dir``."""
    from compliance_tools.pg import EmbeddedPostgres

    server: PgServer = EmbeddedPostgres(data_dir)
    return server


class LocalRuntime:
    """Boots a synthesized stack locally. Use as a context manager or call start()/stop()."""

    def __init__(
        self,
        template: CloudTemplate | Path | str = DEFAULT_ASSEMBLY_DIR,
        *,
        data_dir: Path | str = Path(".local"),
        region: str | None = None,
        pg_factory: PgFactory | None = embedded_postgres,
        parameters: Mapping[str, str] | None = None,
        on_ready: ReadyHook | None = None,
        start_api: bool = True,
        api_port: int = 0,
        start_scheduler: bool = True,
        start_pollers: bool = True,
        pollers_per_mapping: int = 2,
        run_triggers: bool = True,
        strict_imports: bool = True,
        write_state_file: bool = True,
    ) -> None:
        self.template = template if isinstance(template, CloudTemplate) else load_template(template)
        self.data_dir = Path(data_dir).resolve()
        self.region = region or self.template.region or DEFAULT_REGION
        self.account_id = DEFAULT_ACCOUNT_ID  # moto's account: ARNs it returns carry it
        self._pg_factory = pg_factory
        self._parameters = dict(parameters or {})
        self._on_ready = on_ready
        self._start_api = start_api
        self._api_port_wanted = api_port
        self._start_scheduler = start_scheduler
        self._start_pollers = start_pollers
        self._pollers_per_mapping = pollers_per_mapping
        self._run_triggers = run_triggers
        self._strict_imports = strict_imports
        self._write_state_file = write_state_file

        self._pg_server: PgServer | None = None
        self._pg: PgEndpoint | None = None
        self._moto: MotoServer | None = None
        self._saved_environ: dict[str, str | None] = {}
        self.resolver: Resolver | None = None
        self.stack = ProvisionedStack()
        self.functions = FunctionRegistry()
        self.pollers: list[SqsPoller] = []
        self.scheduler: Scheduler | None = None
        self._api_server: Any = None
        self.api_port: int | None = None
        self._control: ControlServer | None = None
        self.control_port: int | None = None
        self.started = False
        self._state_written = False

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> LocalRuntime:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> LocalRuntime:
        global _active
        with _active_lock:
            if _active is not None:
                raise RuntimeStartError(
                    "a local runtime is already running in this process (moto state is global)"
                )
            _active = self
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.started = True
        return self

    def _start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.stack = ProvisionedStack()
        self.functions = FunctionRegistry()
        if self._pg_factory is not None:
            self._pg_server = self._pg_factory(self.data_dir / "pg")
            self._pg = self._pg_server.start()
            logger.info("PostgreSQL on %s:%s", self._pg.host, self._pg.port)
        self._moto = MotoServer()
        endpoint = self._moto.start()
        self._set_process_environment(endpoint)

        self.resolver = Resolver(
            self.template, region=self.region, account_id=self.account_id, parameters=self._parameters
        )
        provisioner = Provisioner(
            self.template, self.resolver, endpoint_url=endpoint, pg=self._pg, work_dir=self.data_dir
        )
        self.stack = provisioner.provision()
        for logical_id, reason in self.stack.skipped.items():
            logger.info("not emulated: %s: %s", logical_id, reason)

        for spec in self.stack.functions:
            self.functions.add(spec)
        self.functions.load_all(strict=self._strict_imports)
        stepfunctions.install(self.functions.invoke_result, self.functions.invoke_async)

        if self._run_triggers:
            self._run_cdk_triggers()
        if self._start_pollers:
            for mapping in self.stack.event_source_mappings:
                if not mapping.enabled:
                    logger.info("event source mapping %s is disabled in the template", mapping.logical_id)
                    continue
                poller = SqsPoller(
                    mapping,
                    self.functions.invoke_result,
                    endpoint_url=endpoint,
                    region=self.region,
                    threads=self._pollers_per_mapping,
                )
                poller.start()
                self.pollers.append(poller)
        dispatcher = TargetDispatcher(
            invoke=self.functions.invoke_result,
            invoke_async=self.functions.invoke_async,
            endpoint_url=endpoint,
            region=self.region,
        )
        self.scheduler = Scheduler(self.stack.rules, dispatcher, account=self.account_id, region=self.region)
        if self._start_scheduler:
            self.scheduler.start()
        if self._start_api:
            self._start_api_server()
        self._control = ControlServer(
            ControlApi(
                resources=lambda: self.resources,
                rules=self._rules_summary,
                fire_rule=self.fire_rule,
                invoke=self._invoke_for_control,
            )
        )
        self.control_port = self._control.start()
        if self._on_ready is not None:
            self._on_ready(self)
        if self._write_state_file:
            write_state(state_path(self.data_dir), self._state())
            self._state_written = True
        logger.info(
            "local runtime ready: %d functions, %d resources", len(self.functions), len(self.resources)
        )

    def stop(self) -> None:
        """Stop pollers, scheduler and servers; keep the data folder. Safe to call twice."""
        global _active
        if self._state_written:
            remove_state(state_path(self.data_dir))
            self._state_written = False
        steps: list[tuple[str, Callable[[], None]]] = [
            ("API server", self._stop_api_server),
            ("control server", self._stop_control),
            ("scheduler", self._stop_scheduler),
            ("SQS pollers", self._stop_pollers),
            ("Step Functions bridge", stepfunctions.uninstall),
            ("async invocations", self.functions.close),
            ("moto server", self._stop_moto),
            ("PostgreSQL", self._stop_pg),
            ("environment", self._restore_process_environment),
        ]
        for name, step in steps:
            try:
                step()
            except Exception:
                logger.exception("stopping the %s failed", name)
        self.started = False
        with _active_lock:
            if _active is self:
                _active = None

    def _stop_api_server(self) -> None:
        server, self._api_server = self._api_server, None
        if server is not None:
            server.stop()
        self.api_port = None

    def _stop_control(self) -> None:
        control, self._control = self._control, None
        if control is not None:
            control.stop()

    def _stop_scheduler(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()

    def _stop_pollers(self) -> None:
        for poller in self.pollers:
            poller.stop()
        self.pollers.clear()

    def _stop_moto(self) -> None:
        moto, self._moto = self._moto, None
        if moto is not None:
            moto.stop()

    def _stop_pg(self) -> None:
        server, self._pg_server = self._pg_server, None
        if server is not None:
            server.stop()
        self._pg = None

    # -- environment -------------------------------------------------------------------------------

    def _set_process_environment(self, endpoint: str) -> None:
        """Every AWS SDK call of this process (handlers included) goes to moto."""
        assert self._moto is not None
        values = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
            "MOTO_PORT": str(self._moto.port),  # moto's own clients (Step Functions service tasks)
            **FAKE_CREDENTIALS,
        }
        for name, value in values.items():
            self._saved_environ.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def _restore_process_environment(self) -> None:
        for name, value in self._saved_environ.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_environ.clear()

    # -- triggers, API -----------------------------------------------------------------------------

    def _run_cdk_triggers(self) -> None:
        """What CloudFormation does with ``triggers.Trigger``: invoke the handler once, fail on error."""
        for trigger in self.stack.triggers:
            logger.info("running trigger %s (%s)", trigger.logical_id, trigger.handler_arn)
            if trigger.invocation_type == "Event":
                self.functions.invoke_async(trigger.handler_arn, {})
                continue
            result = self.functions.invoke_result(trigger.handler_arn, {})
            if not result.ok:
                raise RuntimeStartError(f"trigger {trigger.logical_id} failed: {result.error}")
            logger.info("trigger %s done: %s", trigger.logical_id, result.payload)

    def _start_api_server(self) -> None:
        if not any(self.template.of_type("AWS::ApiGateway::RestApi")):
            logger.info("the template has no REST API: no API server")
            return
        try:
            from compliance_tools.local.apigw import ApiGatewayServer
        except ImportError:
            logger.warning("API Gateway emulator not available (compliance_tools.local.apigw); no HTTP API")
            return
        assert self.resolver is not None
        self._api_server = ApiGatewayServer(
            self.template.body,
            self.resolver.resolve,
            self.invoke,
            host="127.0.0.1",
            port=self._api_port_wanted,
            region=self.region,
            account_id=self.account_id,
        )
        self.api_port = int(self._api_server.start())
        logger.info("API on http://127.0.0.1:%s", self.api_port)

    # -- what callers use --------------------------------------------------------------------------

    @property
    def moto_endpoint(self) -> str:
        if self._moto is None:
            raise RuntimeError("the runtime is not started")
        return self._moto.endpoint

    @property
    def pg(self) -> PgEndpoint | None:
        """The embedded PostgreSQL endpoint (host, port, superuser, dsn(dbname))."""
        return self._pg

    @property
    def physical(self) -> dict[str, PhysicalResource]:
        return self.stack.resources

    @property
    def resources(self) -> dict[str, str]:
        """Logical id -> physical id / ARN / URL (what ``Ref`` gives)."""
        return {logical_id: physical.ref for logical_id, physical in self.stack.resources.items()}

    @property
    def outputs(self) -> dict[str, Any]:
        """The template's Outputs, resolved (outputs that cannot be resolved locally are left out)."""
        values: dict[str, Any] = {}
        if self.resolver is None:
            return values
        for name, output in self.template.outputs.items():
            try:
                values[name] = self.resolver.resolve(output.get("Value"))
            except IntrinsicError as exc:
                logger.debug("output %s not resolvable locally: %s", name, exc)
        return values

    def database_name(self) -> str | None:
        """The initial database of the template's first RDS instance/cluster (``DBName``/``DatabaseName``)."""
        for logical_id, resource in self.template.of_type("AWS::RDS::DBInstance", "AWS::RDS::DBCluster"):
            properties = resource.get("Properties", {})
            name = properties.get("DBName") or properties.get("DatabaseName")
            if name is not None:
                return str(self.resolve(name)) if self.resolver is not None else str(name)
            logger.debug("%s has no initial database", logical_id)
        return None

    def database_dsn(self, dbname: str | None = None) -> str:
        """Superuser DSN of the embedded PostgreSQL, for the template's database by default (seeding)."""
        if self._pg is None:
            raise RuntimeError("no embedded PostgreSQL: the runtime is not started or runs without one")
        name = dbname or self.database_name()
        if name is None:
            raise RuntimeError("the template has no RDS database name; pass dbname")
        return self._pg.dsn(name)

    def route_lines(self) -> list[str]:
        """One line per API method served (empty without an API server)."""
        if self._api_server is None:
            return []
        return [route.describe() for route in self._api_server.routes]

    def resolve(self, value: Any) -> Any:
        """Evaluate a template value (intrinsics) against the local resources."""
        if self.resolver is None:
            raise RuntimeError("the runtime is not started")
        return self.resolver.resolve(value)

    def physical_id(self, logical_id: str) -> str:
        return self.stack.resources[logical_id].ref

    def attribute(self, logical_id: str, name: str) -> Any:
        return self.stack.resources[logical_id].get_att(name)

    def invoke(self, function: str, event: Any) -> Any:
        """Invoke a function (logical id, name or ARN): its result, or raises LambdaFunctionError."""
        return self.functions.invoke(function, event)

    def invoke_result(self, function: str, event: Any) -> InvocationResult:
        """Invoke a function; a handler error comes back as ``result.error`` (errorType, errorMessage)."""
        return self.functions.invoke_result(function, event)

    def fire_rule(self, rule: str) -> list[dict[str, Any]]:
        """Fire an EventBridge rule now (logical id, name or ARN); waits for Lambda targets."""
        if self.scheduler is None:
            raise RuntimeError("the runtime is not started")
        return self.scheduler.fire(rule, wait=True)

    def client(self, service: str) -> Any:
        """A boto3 client of the moto server."""
        return moto_session(self.region).client(service, endpoint_url=self.moto_endpoint)  # type: ignore[call-overload]

    def _invoke_for_control(self, function: str, event: Any) -> dict[str, Any]:
        try:
            return {"result": self.functions.invoke(function, event)}
        except LambdaFunctionError as exc:
            return {"error": exc.payload}

    def _rules_summary(self) -> list[dict[str, Any]]:
        return [
            {
                "logicalId": rule.logical_id,
                "name": rule.name,
                "arn": rule.arn,
                "schedule": rule.schedule,
                "enabled": rule.enabled,
                "targets": [target.get("Arn") for target in rule.targets],
            }
            for rule in self.stack.rules
        ]

    def _state(self) -> RuntimeState:
        pg = None
        if self._pg is not None:
            pg = {"host": self._pg.host, "port": self._pg.port, "superuser": self._pg.superuser}
        assert self.control_port is not None
        return RuntimeState(
            pid=os.getpid(),
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            template=str(self.template.path),
            region=self.region,
            moto_endpoint=self.moto_endpoint,
            control_port=self.control_port,
            api_port=self.api_port,
            pg=pg,
            resources=self.resources,
        )
