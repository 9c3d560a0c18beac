"""The whole marketplace on one machine: what `make run` starts and the end-to-end tests drive.

1. moto as an in-process server on 127.0.0.1, with its Step Functions engine switched on and
   made AWS-faithful (:mod:`marketplace_local.moto_patches.engine`);
2. every resource of template.yaml created in it (:mod:`marketplace_local.provision`);
3. every Lambda's real handler run in-process (:mod:`marketplace_local.lambdas`);
4. a poller per DynamoDB stream mapping (:mod:`marketplace_local.streams`);
5. scheduled rules run by a small scheduler;
6. the HTTP API from the template's OpenAPI body (:mod:`marketplace_local.api`).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from marketplace.tenants import silo_stack_name
from marketplace.webhook_targets import LOOPBACK_PORTS_VARIABLE
from marketplace_local import iam_report, roles, transport
from marketplace_local.api import LocalApi, stage_throttle
from marketplace_local.auth import TokenIssuer, resolve_state_dir
from marketplace_local.faults import FaultConfig, FaultInjector
from marketplace_local.lambdas import LambdaRuntime
from marketplace_local.moto_patches import asl_cache, dynamodb_fixes, engine, fast_serialize, iam_enforcement
from marketplace_local.provision import Provisioned, Provisioner
from marketplace_local.streams import Poller, QueuePoller, StreamFeed, StreamPoller
from marketplace_local.template import TEMPLATE_PATH, Template
from marketplace_local.template import load as load_template

log = logging.getLogger("marketplace_local")
# moto's HTTP server logs every request and the SAM translator warns about feature toggles it
# cannot load offline: neither tells a user of the local stack anything.
logging.getLogger("werkzeug").setLevel(logging.ERROR)
logging.getLogger("samtranslator").setLevel(logging.ERROR)
# moto's engine logs every failed JSONPath and every caught task error as ERROR, including the
# ones a state's Catch handles as designed; execution history is where such failures show.
logging.getLogger("moto").setLevel(logging.CRITICAL)

ACCOUNT_ID = "123456789012"  # moto's default account


def free_port(host: str = "127.0.0.1") -> int:
    """A port to listen on that nothing holds, never one this process was given before. Chosen below
    the kernel's ephemeral range: a port from that range (what binding port 0 gives) can be taken by
    any outgoing connection, of this process or another, between this answer and the bind of the
    server it is for; and two answers of port 0 can be the same port while neither is bound yet (a
    webhook receiver given the stack's own port, under load)."""
    low = _ephemeral_low()
    for _ in range(200):
        port = _random.randrange(_PORTS_FROM, low) if low > _PORTS_FROM + 1000 else 0
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            port = sock.getsockname()[1]
        with _given_lock:
            if port not in _given:
                _given.add(port)
                return port
    raise OSError("no free port to listen on")


_PORTS_FROM = 20000
_given: set[int] = set()
_given_lock = threading.Lock()
_random = random.SystemRandom()  # not the tests' seeded generator: two workers must not draw alike


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux; IANA's 49152 elsewhere)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 49152


@dataclass
class StackConfig:
    host: str = "127.0.0.1"
    api_port: int = 3000
    moto_port: int = 5000
    region: str = "us-east-1"
    stack_name: str = "marketplace-local"
    template_path: Path = TEMPLATE_PATH
    parameter_overrides: dict[str, Any] = field(default_factory=lambda: {"Stage": "local"})
    state_dir: Path | None = None
    poll_interval: float = 0.05
    run_schedules: bool = True
    # Fault injection (marketplace_local.faults): None, the default, injects nothing.
    faults: FaultConfig | None = None
    # Performance (bench/throughput.py measures each against False): this process's boto3 calls to
    # the moto server are served in-process instead of over HTTP (marketplace_local.transport).
    in_process_aws: bool = True
    # ... and each state machine definition is parsed once, not per execution (marketplace_local.moto_patches.asl_cache).
    cache_asl_programs: bool = True
    # ... and moto serialises plain-dict responses without its per-member alias search
    # (marketplace_local.moto_patches.fast_serialize; the same bytes).
    fast_serializer: bool = True
    # Loopback ports that suppliers' webhooks may point at: the test receivers started on purpose
    # (see LocalStack.allow_webhook_port). No other loopback port is reachable by a delivery.
    webhook_ports: tuple[int, ...] = ()
    # Every call of a function, state machine or event source mapping is authorised against its role's
    # policies, as on AWS (marketplace_local.roles; D50). MARKETPLACE_IAM=on|off sets it for a run.
    enforce_iam: bool = field(default_factory=roles.enforcement_from_env)
    # A premium tenant's own stack (the silo, D53), set by pin(): None runs the pool.
    pinned_tenant: str | None = None

    def pin(self, tenant_id: str) -> StackConfig:
        """This stack as ``tenant_id``'s own (``marketplace run --tenant``), beside the pool on this
        machine: the template's ``PinnedTenant``, the stack named as on AWS (its tables, queues and
        state machines are named after it), and its signing key (its own user pool's, on AWS) and
        stack.json in a folder of its own under the state folder."""
        self.pinned_tenant = tenant_id
        self.stack_name = silo_stack_name(tenant_id)
        self.parameter_overrides = {**self.parameter_overrides, "PinnedTenant": tenant_id}
        self.state_dir = resolve_state_dir(self.state_dir) / self.stack_name
        return self

    @classmethod
    def from_env(cls) -> StackConfig:
        ports = os.environ.get("MARKETPLACE_WEBHOOK_PORTS", "")
        return cls(
            host=os.environ.get("HOST", "127.0.0.1"),
            api_port=int(os.environ.get("PORT", "3000")),
            moto_port=int(os.environ.get("MOTO_PORT", "5000")),
            region=os.environ.get("AWS_REGION", "us-east-1"),
            faults=FaultConfig.from_env(),
            webhook_ports=tuple(int(p) for p in ports.split(",") if p.strip()),
        )


class LocalStack:
    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        self.template: Template | None = None
        self.provisioned: Provisioned | None = None
        self.runtime: LambdaRuntime | None = None
        self.api: LocalApi | None = None
        self.pollers: list[Poller] = []
        self.faults: FaultInjector | None = None
        self.issuer = TokenIssuer.load_or_create(self.config.state_dir)
        self._moto = None
        self._clients: dict[str, Any] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.roles: roles.Roles | None = None
        self._enforcement: Any = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def moto_endpoint(self) -> str:
        return f"http://{self.config.host}:{self.config.moto_port}"

    @property
    def api_url(self) -> str:
        if self.api is None:
            raise RuntimeError("the stack is not started")
        return self.api.url

    def start(self) -> LocalStack:
        cfg = self.config
        base_env = {
            "AWS_REGION": cfg.region,
            "AWS_DEFAULT_REGION": cfg.region,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_SESSION_TOKEN": "local",
            "AWS_ENDPOINT_URL": self.moto_endpoint,
            # Without this, botocore builds account-based DynamoDB endpoints that moto does not serve.
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
            "MOTO_PORT": str(cfg.moto_port),
            # X-Ray has no daemon here; the template still turns tracing on for AWS.
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
        # Process-wide: moto's engine and our handlers' boto3 clients read these from os.environ.
        os.environ.update(base_env)
        self.runtime = LambdaRuntime(base_env)
        self._webhook_ports: set[int] = set()
        for port in cfg.webhook_ports:
            self.allow_webhook_port(port)
        self._start_moto()
        if cfg.in_process_aws:
            transport.install(self.moto_endpoint)
        engine.install()
        if cfg.cache_asl_programs:
            asl_cache.install()
        if cfg.fast_serializer:
            fast_serialize.install()
        dynamodb_fixes.install()
        self.runtime.install_moto_hook()

        self.template = load_template(cfg.template_path, cfg.parameter_overrides, cfg.region)
        self.provisioned = Provisioner(
            self.template, self.client, self.runtime, cfg.region, ACCOUNT_ID, cfg.stack_name
        ).provision()
        self._assume_roles()

        feeds: dict[tuple[str, str, str], StreamFeed] = {}  # one reader per stream and starting position
        for mapping in self.provisioned.stream_mappings:
            where = (mapping.stream_arn, mapping.starting_position)
            # A mapping reads with its function's role, as Lambda does: one reader per role too.
            role_arn = self.runtime.functions[_function_name(mapping.function_name)].role_arn
            if (*where, role_arn) not in feeds:
                feeds[(*where, role_arn)] = StreamFeed(self.role_client("dynamodbstreams", role_arn), *where)
            poller = StreamPoller(
                mapping,
                self.role_client("dynamodbstreams", role_arn),
                self.role_client("sqs", role_arn),
                self.runtime.invoke,
                cfg.region,
                poll_interval=cfg.poll_interval,
                feed=feeds[(*where, role_arn)],
            )
            poller.start()
            self.pollers.append(poller)
        for queue_mapping in self.provisioned.queue_mappings:
            queue_poller = QueuePoller(
                queue_mapping,
                self.role_client(
                    "sqs", self.runtime.functions[_function_name(queue_mapping.function_name)].role_arn
                ),
                self.runtime.invoke,
                cfg.region,
                poll_interval=cfg.poll_interval,
            )
            queue_poller.start()
            self.pollers.append(queue_poller)
        if cfg.run_schedules:
            for schedule in self.provisioned.schedules:
                self._start_schedule(schedule)

        if cfg.faults is not None:
            self.faults = FaultInjector(cfg.faults).install(self)

        (api_body,) = self.provisioned.rest_apis.values()
        self.api = LocalApi(
            api_body,
            self.runtime,
            self.issuer,
            stage=str(self.template.parameters.get("Stage", "local")),
            host=cfg.host,
            port=cfg.api_port,
            throttle=stage_throttle(self.template.resources),
        )
        self.api.start()
        self._write_state_file()
        return self

    def _write_state_file(self) -> None:
        """`.local/stack.json`: the API URL, the moto endpoint and every resource's physical id,
        for tools and people who want to look inside (aws --endpoint-url ...)."""
        assert self.provisioned is not None
        state_dir = resolve_state_dir(self.config.state_dir)
        state_dir.mkdir(parents=True, exist_ok=True)
        resources = {
            logical_id: {"ref": physical.ref, **physical.attributes}
            for logical_id, physical in self.provisioned.physical.items()
            if logical_id not in self.provisioned.not_emulated
        }
        document = {"apiUrl": self.api_url, "awsEndpointUrl": self.moto_endpoint, "region": self.config.region,
                    "resources": resources}  # fmt: skip
        (state_dir / "stack.json").write_text(json.dumps(document, indent=2, default=str) + "\n")

    def _start_moto(self) -> None:
        from moto.server import ThreadedMotoServer

        self._moto = ThreadedMotoServer(
            ip_address=self.config.host, port=self.config.moto_port, verbose=False
        )
        self._moto.start()
        request = urllib.request.Request(  # noqa: S310 - a fixed http URL on our loopback
            f"{self.moto_endpoint}/moto-api/config",
            data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - our own loopback server
            response.read()

    def allow_webhook_port(self, port: int) -> None:
        """Let suppliers' webhooks reach a receiver on this loopback port (a test's, started on
        purpose): ``WEBHOOKS_LOOPBACK_PORTS`` for every function and this process, which
        ``marketplace.webhook_targets`` reads on each check. Never the stack's own API or moto port."""
        if not 0 < port < 65536 or port in (self.config.api_port, self.config.moto_port):
            raise ValueError(f"port {port} cannot receive webhooks: it is not a test receiver's port")
        if self.runtime is None:
            raise RuntimeError("the stack is not started")
        self._webhook_ports.add(port)
        value = ",".join(str(p) for p in sorted(self._webhook_ports))
        self.runtime.base_environment[LOOPBACK_PORTS_VARIABLE] = value
        os.environ[LOOPBACK_PORTS_VARIABLE] = value

    def stop(self) -> None:
        self._stop.set()
        for poller in self.pollers:
            poller.request_stop()  # all at once: each may be finishing an invocation
        # One deadline for all of them, not 5 s each: with a dozen pollers and schedules a loaded
        # machine turned Ctrl-C into a wait of over 20 s. Their threads are daemons either way.
        deadline = time.monotonic() + 5
        for poller in self.pollers:
            poller.stop(timeout=max(0.0, deadline - time.monotonic()))
        if self.api is not None:
            self.api.stop()
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if self._enforcement is not None:
            self._write_iam_usage()
            self._enforcement.__exit__(None, None, None)
            self._enforcement = None
        if self.roles is not None:
            roles.deactivate(self.roles)
        transport.uninstall(self.moto_endpoint)
        if self._moto is not None:
            self._moto.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ helpers
    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = boto3.session.Session().client(
                service,
                region_name=self.config.region,
                endpoint_url=self.moto_endpoint,
                aws_access_key_id="local",
                aws_secret_access_key="local",  # noqa: S106 - moto accepts any credentials
                config=Config(retries={"max_attempts": 2, "mode": "standard"}),
            )
        return self._clients[service]

    def role_client(self, service: str, role_arn: str) -> Any:
        """A client signed with the role's session (marketplace_local.roles)."""
        assert self.roles is not None
        key = f"{service}@{role_arn}"
        if key not in self._clients:
            self._clients[key] = boto3.session.Session().client(
                service,
                region_name=self.config.region,
                endpoint_url=self.moto_endpoint,
                config=Config(retries={"max_attempts": 2, "mode": "standard"}),
                **self.roles.session(role_arn).client_arguments(),
            )
        return self._clients[key]

    def _assume_roles(self) -> None:
        """Assume every role of the template and give each function its role's session (as Lambda
        puts it in the function's environment); then, with enforcement on, moto authorises every call
        of those sessions (D50)."""
        assert self.provisioned is not None and self.template is not None and self.runtime is not None
        self.roles = roles.Roles(self.client("sts"))
        for logical_id in self.template.resources_of_type("AWS::IAM::Role"):
            self.roles.session(self.provisioned.physical[logical_id].attributes["Arn"])
        for spec in self.runtime.functions.values():
            spec.credentials = self.roles.session(spec.role_arn).environment()
        roles.activate(self.roles)
        iam_enforcement.install()
        if self.config.enforce_iam:
            self._enforcement = roles.enforcement()
            self._enforcement.__enter__()

    def _write_iam_usage(self) -> None:
        """With ``MARKETPLACE_IAM_USAGE=<dir>``: what each role was granted and used (``make iam-report``)."""
        directory = os.environ.get(iam_report.USAGE_VARIABLE)
        if not directory or self.template is None or self.provisioned is None:
            return
        roles_by_id = {
            lid: self.physical_id(lid) for lid in self.template.resources_of_type("AWS::IAM::Role")
        }
        iam_report.write_usage(
            Path(directory),
            self.client("iam"),
            roles_by_id,
            f"{os.getpid()}-{self.config.moto_port}",
        )

    def physical_id(self, logical_id: str) -> Any:
        assert self.provisioned is not None
        return self.provisioned.physical[logical_id].ref

    def attribute(self, logical_id: str, attribute: str) -> Any:
        assert self.provisioned is not None
        return self.provisioned.physical[logical_id].attributes[attribute]

    def wait_for_streams(self, timeout: float = 10.0) -> None:
        """Until every poller has read the stream to its end and delivered what it read."""
        deadline = time.monotonic() + timeout
        for poller in self.pollers:
            if not poller.wait_idle(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"{poller.kind} for {poller.function_name} still busy after {timeout}s")

    # ------------------------------------------------------------------ schedules
    def _start_schedule(self, schedule: dict[str, Any]) -> None:
        interval = schedule_interval(schedule["expression"])
        function_name = schedule["target"]["Arn"].rsplit(":", 1)[-1]
        payload = json.loads(schedule["target"].get("Input", "{}"))
        assert self.runtime is not None
        invoke: Callable[[str, Any], Any] = self.runtime.invoke

        def run() -> None:
            while not self._stop.wait(interval):
                result = invoke(function_name, payload)
                if result.errored:
                    log.error("scheduled %s failed: %s", function_name, result.payload[:500])

        thread = threading.Thread(target=run, name=f"schedule-{schedule['logical_id']}", daemon=True)
        thread.start()
        self._threads.append(thread)


def _function_name(name_or_arn: str) -> str:
    return name_or_arn.rsplit(":", 1)[-1] if name_or_arn.startswith("arn:") else name_or_arn


def schedule_interval(expression: str) -> float:
    """Seconds between runs of a ``rate(...)`` expression (cron expressions are not emulated)."""
    match = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression.strip())
    if not match:
        raise ValueError(f"only rate() schedules are emulated locally, not {expression!r}")
    unit = {"minute": 60, "hour": 3600, "day": 86400}[match.group(2).rstrip("s")]
    return int(match.group(1)) * unit
