"""The local cloud's long-running process: moto on loopback plus the glue that runs the deployed app.

    python -m localcloud.core.server --port N --home DIR [--no-iam]

How it models AWS, and where it differs: docs/local-cloud-internals.md#localcloudcoreserverpy
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from localcloud.core import botocore_data

# Before moto's import, which makes three botocore sessions (its EC2 region lists), each parsing the endpoints.
botocore_data.share_parsed_files()

from moto.cloudformation import parsing as cfn_parsing
from moto.core.config import default_user_config
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server

from localcloud.core import chaos, persistence, request_threads, service_lookup, state
from localcloud.core.state import DUMMY_CREDENTIALS, REGION, SAVED_DIR
from localcloud.services.cloudformation import stack_exports, updates
from localcloud.services.cloudwatch import alarm_evaluator, cloudwatch_alarm
from localcloud.services.dynamodb import attribute_values, dynamodb_items, dynamodb_table, update_expressions
from localcloud.services.events import entry_size, events
from localcloud.services.iam import enforcement
from localcloud.services.kms import keys as kms_keys
from localcloud.services.lambda_ import event_invoke_config, function_layers, recursion
from localcloud.services.lambda_ import runner as lambda_runner
from localcloud.services.lambda_ import versions as lambda_versions
from localcloud.services.lambda_.event_source_mapping import sqs_poller, stream_poller
from localcloud.services.s3 import bucket_policy
from localcloud.services.s3 import notifications as s3_notifications
from localcloud.services.sns import topic_policy
from localcloud.services.sqs import message_counts, message_size, queue_policy, retention
from localcloud.services.stepfunctions import execution_role, history_limit, json_paths, program_cache, sfn
from localcloud.services.stepfunctions import versions as sfn_versions

LOG = logging.getLogger("localcloud.core.server")

# Seconds between sweeps that stop Lambda environments idle for too long.
REAP_INTERVAL_SECONDS = 60.0
# Seconds between saves of the state while the cloud is in use (it is always saved when it stops).
SAVE_INTERVAL_SECONDS = 30.0
# Seconds between the HTTP server's checks for a stop (socketserver's default, 0.5, held up every `down`).
SHUTDOWN_POLL_SECONDS = 0.05
# How long a thread holds the GIL before one waiting asks for it (Python's default is 0.005). The server's
# request threads are CPU-bound on moto; handing the GIL over four times less often cost less CPU per job
# and raised the job rate in a 300-job burst (0.02 against 0.005, alternating, one sitting: 5.20 and 5.38
# jobs/s against 4.92 and 5.19; 0.001 made it worse: 3.67 and 3.72 against 4.60 and 4.24). A thread waits
# for the GIL at most this long more, which nothing the cloud times comes close to (timeouts are seconds).
SWITCH_INTERVAL_SECONDS = 0.02


class MotoServer(ThreadedMotoServer):
    """moto's threaded server, checking for a stop every SHUTDOWN_POLL_SECONDS: moto's own `_server_entry`
    (copied, moto 5.2) serves with socketserver's half-second default, which every stop waited out."""

    def _server_entry(self) -> None:
        app = DomainDispatcherApplication(create_backend_app)
        self._server = make_server(
            self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever(poll_interval=SHUTDOWN_POLL_SECONDS)


class Service(Protocol):
    def start(self) -> None: ...

    def stopping(self) -> None:
        """Start nothing new from now on; return at once (a call in flight ends on its own)."""

    def stop(self) -> None:
        """Stop and wait for the service's threads."""


@dataclass
class RunningCloud:
    """Handles on everything `start_cloud` started, so that `stop` can undo it in order."""

    port: int
    home: Path
    server: Any
    runner: Any
    store: persistence.StateStore | None = None
    services: list[Service] = field(default_factory=list)
    undo: list[Callable[[], None]] = field(default_factory=list)
    stopped: threading.Event = field(default_factory=threading.Event)

    @property
    def endpoint(self) -> str:
        return f"http://localhost:{self.port}"

    def save(self, *, final: bool = False) -> persistence.SaveResult | None:
        """Save the state now (None when the cloud keeps no state); raises persistence.SnapshotError.
        `final`: from its start until the server stops, requests are answered 503 (see RequestGate)."""
        return self.store.save(final=final) if self.store is not None else None

    def stop(self) -> None:
        if self.stopped.is_set():
            return
        self.stopped.set()
        # The services first start nothing new: a poll, an alarm evaluation or a delivery begun during the
        # save would only meet the closed gate's 503s and retry against them, each service in turn, before
        # its stop could return (seconds a stop, in every `down`).
        for service in self.services:
            try:
                service.stopping()
            except Exception:
                LOG.exception("telling %s to stop failed", type(service).__name__)
        # The state next, while everything still runs: stopping the rest fails what is in flight (the
        # Lambda environments are killed), and none of that must be saved. Nothing is saved after this, so
        # from the save's start on the server answers 503 (retried by clients): nothing it acknowledges
        # after the snapshot is lost.
        try:
            for service in reversed(self.services):
                if isinstance(service, persistence.PeriodicSaver):
                    service.stop()
            self._final_save()
        finally:
            # Whatever happened to the save, everything else is stopped.
            self._stop_the_rest()

    def _stop_the_rest(self) -> None:
        # Then the environments: an invocation in flight ends now instead of holding up the poller's stop.
        self.runner.shutdown()
        for service in reversed(self.services):
            try:
                service.stop()
            except Exception:
                LOG.exception("stopping %s failed", type(service).__name__)
        self.server.stop()
        # moto's stop only stops accepting: close the socket too, so that a client is refused at once instead
        # of waiting in the backlog for an answer that will not come.
        listening = getattr(self.server, "_server", None)
        if listening is not None:
            listening.server_close()
        for step in reversed(self.undo):
            step()
        LOG.info("local cloud on port %d stopped", self.port)

    def _final_save(self) -> None:
        try:
            result = self.save(final=True)
        except Exception:
            # SnapshotError (a failed write, an unpicklable model), or a bug: either way the shutdown goes on.
            LOG.exception("saving the state failed: what changed since the last save is lost")
            return
        if result is not None:
            LOG.info(
                "saved the state to %s (%d bytes in %.2fs; %d execution(s) running, resumed at the next start)",
                result.path,
                result.bytes,
                result.seconds,
                result.running_executions,
            )


def _check_cloudformation_models() -> None:
    """moto's CloudFormation computes its type -> model map once (cached): after the installs above
    cleared it, every model of ours must be in it, or its resources would be skipped silently."""
    models = (
        cloudwatch_alarm.CloudWatchAlarmResource,
        event_invoke_config.LambdaEventInvokeConfigResource,
        topic_policy.SNSTopicPolicyResource,
        bucket_policy.S3BucketPolicyResource,
        queue_policy.SQSQueuePolicyResource,
        sfn_versions.StateMachineVersionResource,
    )
    for model in models:
        if cfn_parsing.get_model_map().get(model.cloudformation_type()) is not model:
            raise RuntimeError(f"moto did not pick up the {model.cloudformation_type()} model")


def _install_models() -> list[Callable[[], None]]:
    """The services' patches over moto's models: what moto lacks, gets wrong or does slowly (the answers
    unchanged), each undone in reverse."""
    return [
        sfn.install(),
        program_cache.install(),
        json_paths.install(),
        sfn_versions.install(),
        lambda_versions.install(),
        function_layers.install(),
        updates.install(),
        cloudwatch_alarm.install(),
        topic_policy.install(),
        bucket_policy.install(),
        queue_policy.install(),
        retention.install(),
        message_counts.install(),
        dynamodb_table.install(),
        dynamodb_items.install(),
        attribute_values.install(),
        update_expressions.install(),
        stack_exports.install(),
        kms_keys.install(),
        s3_notifications.install(),
    ]


def _install_parity() -> list[Callable[[], None]]:
    """AWS's quotas where moto has none (or counts differently), each refused in the service's wire shape,
    and the trace lineage Lambda's recursive loop detection counts (moto drops the header)."""
    return [message_size.install(), entry_size.install(), history_limit.install(), recursion.install()]


def _prepare_process_environment(port: int, region: str) -> None:
    # moto's Step Functions interpreter reaches the other services at localhost:$MOTO_PORT, and every
    # boto3 client in this process (poller, evaluator) must sign with dummy credentials, never real ones.
    os.environ["MOTO_PORT"] = str(port)
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(name, None)
    os.environ.update(DUMMY_CREDENTIALS)
    os.environ["AWS_DEFAULT_REGION"] = region
    os.environ["AWS_REGION"] = region
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


def start_cloud(
    *,
    port: int,
    home: Path,
    region: str = REGION,
    persist: bool = True,
    save_interval_seconds: float = SAVE_INTERVAL_SECONDS,
    iam: bool = True,
) -> RunningCloud:
    """Patch moto, restore the saved state (`persist`), start its HTTP server and the background services;
    returns when requests are served. `iam`: role sessions' calls are authorized (`--no-iam`: not). Raises
    persistence.SnapshotError when the saved state cannot be restored (nothing is started then, and the
    saved state is left as it is)."""
    _prepare_process_environment(port, region)
    state.make_private_dir(home)
    endpoint = f"http://localhost:{port}"
    undo: list[Callable[[], None]] = []

    previous = dict(default_user_config.get("stepfunctions", {}))
    default_user_config["stepfunctions"] = {"execute_state_machine": True}
    undo.append(lambda: default_user_config.update({"stepfunctions": previous}))  # type: ignore[typeddict-item]
    undo += _install_models()
    undo += _install_parity()
    _check_cloudformation_models()
    # IAM: the functions, the state machines' integrations and the pollers call as their roles' sessions,
    # authorized here; installed before chaos, which therefore sees every request first.
    authorizer = _install_iam(iam, undo)
    # Fault injection for every caller of this server, and for the Lambda environments it runs.
    chaos_store = chaos.ChaosStore()
    undo.append(chaos.install(chaos_store))
    # Put in front of the server's application once it exists (persistence.gate_server): outside
    # everything else, so a save holds requests before anything looks at them.
    gate = persistence.RequestGate()
    store = persistence.StateStore(home, gate) if persist else None
    if store is not None:
        try:
            store.restore()
        except persistence.SnapshotError:
            for step in reversed(undo):
                step()
            raise

    runner = lambda_runner.LambdaRunner(
        home=home,
        endpoint=endpoint,
        region=region,
        on_invocation=lambda_runner.cloudwatch_publisher(region=region),
        faults=chaos_store.lambda_fault,
        # Lambda's session of the execution role is named after the function.
        credentials=lambda spec: _session_of(authorizer, spec.role_arn, spec.name),
    )
    undo.append(lambda_runner.install(runner))
    # After sfn: execution status changes become EventBridge events, delivered in the background.
    deliverer = events.EventDeliverer()
    undo.append(events.install(deliverer))

    # Before any mapping exists: moto's own push would invoke functions inside SendMessage.
    sqs_poller.disable_moto_sqs_push()
    stream_poller.disable_moto_dynamodb_push()

    _check_port_free(port)
    server = MotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    # Nothing is saved before the first periodic save, so a request in the moment before this is harmless.
    persistence.gate_server(gate, server)
    undo.append(request_threads.install(server))
    undo.append(service_lookup.install())
    cloud = RunningCloud(port=port, home=home, server=server, runner=runner, store=store, undo=undo)
    LOG.info("moto %s serving %s (home %s)", _moto_version(), endpoint, home)
    _start_services(
        cloud,
        deliverer,
        endpoint=endpoint,
        region=region,
        role_credentials=lambda role_arn, name: _session_of(authorizer, role_arn, name),
    )
    # After the server and the Lambda runner are up: the executions call them.
    sfn.resume_saved_executions()
    if store is not None and save_interval_seconds > 0:
        saver = persistence.PeriodicSaver(store, save_interval_seconds)
        saver.start()
        cloud.services.append(saver)

    threading.Thread(target=_reap_idle_environments, args=(cloud,), name="lambda-reaper", daemon=True).start()
    return cloud


def _start_services(
    cloud: RunningCloud,
    deliverer: events.EventDeliverer,
    *,
    endpoint: str,
    region: str,
    role_credentials: Callable[[str, str], dict[str, str]],
) -> None:
    """The background services that do what AWS does between requests, once the server answers."""
    services: list[Service] = [
        deliverer,
        # Lambda reads a mapping's source with the function's role (sessions named after the function).
        sqs_poller.EventSourcePoller(endpoint, region, role_credentials=role_credentials),
        # Positions on moto's mappings: saved with the state, so a restored cloud resumes each stream.
        stream_poller.StreamPoller(
            endpoint,
            region,
            positions=stream_poller.MotoPositions(),
            iterator_age=stream_poller.iterator_age_publisher(region=region),
            role_credentials=role_credentials,
        ),
        alarm_evaluator.AlarmEvaluator(endpoint, region),
    ]
    for service in services:
        service.start()
        cloud.services.append(service)


# The name of the session Step Functions' integrations run as (AWS does not document its own).
STATES_SESSION = "StepFunctions"


def _install_iam(iam: bool, undo: list[Callable[[], None]]) -> enforcement.Enforcement:
    authorizer = enforcement.Enforcement(enabled=iam)
    undo.append(enforcement.install(authorizer))
    undo.append(execution_role.install(lambda role_arn: _session_of(authorizer, role_arn, STATES_SESSION)))
    return authorizer


def _session_of(authorizer: enforcement.Enforcement, role_arn: str, session_name: str) -> dict[str, str]:
    """The environment variables of a session of `role_arn`; the administrator's dummy credentials when
    there is no role (moto accepts a function without one; AWS does not)."""
    if not role_arn:
        return dict(DUMMY_CREDENTIALS)
    return authorizer.sessions.issue(role_arn, session_name).environment()


def _check_port_free(port: int) -> None:
    # ThreadedMotoServer binds in its own thread and would wait forever for a port it cannot have.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))


def _reap_idle_environments(cloud: RunningCloud) -> None:
    while not cloud.stopped.wait(REAP_INTERVAL_SECONDS):
        stopped = cloud.runner.reap_idle()
        if stopped:
            LOG.info("stopped %d idle Lambda environment(s)", stopped)


def _moto_version() -> str:
    return version("moto")


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # One line per HTTP request is noise at this rate (the CDK deploy alone makes hundreds).
    logging.getLogger("werkzeug").setLevel(logging.INFO if verbose else logging.WARNING)
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m localcloud.core.server", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1")
    parser.add_argument("--home", type=Path, required=True, help="directory for code, logs and state")
    parser.add_argument("--region", default=REGION)
    parser.add_argument(
        "--ephemeral",
        action="store_true",
        help=f"start empty and save nothing (default: restore DIR/{SAVED_DIR}/ and save there)",
    )
    parser.add_argument(
        "--save-interval",
        type=float,
        default=SAVE_INTERVAL_SECONDS,
        metavar="SECONDS",
        help="save the state this often while in use, 0 for only when stopping (default %(default)s)",
    )
    parser.add_argument(
        "--iam",
        action=argparse.BooleanOptionalAction,
        default=enforcement.enabled_by_environment(os.environ.get(enforcement.ENV_VARIABLE)),
        help="authorize the calls of functions, state machines and event source mappings against their "
        f"roles (--no-iam: every caller is an administrator; default on unless ${enforcement.ENV_VARIABLE}=off)",
    )
    parser.add_argument("--verbose", action="store_true", help="log every HTTP request")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    _configure_logging(args.verbose)
    home = args.home.resolve()
    stop_requested = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        LOG.info("received %s: shutting down", signal.Signals(signum).name)
        stop_requested.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        cloud = start_cloud(
            port=args.port,
            home=home,
            region=args.region,
            persist=not args.ephemeral,
            save_interval_seconds=args.save_interval,
            iam=args.iam,
        )
    except OSError as error:
        LOG.error("cannot serve on 127.0.0.1:%d: %s", args.port, error)
        return 1
    except persistence.SnapshotError as error:
        LOG.error("%s", error)
        return 1
    # Wait in short slices: a signal handler runs only between bytecodes of the main thread.
    while not stop_requested.wait(0.5):
        pass
    cloud.stop()
    return 0


def exit_now(code: int) -> None:
    """Exit without the interpreter's teardown: once the cloud has stopped (its state saved, its services
    and Lambda environments stopped) nothing is left to clean up, and freeing moto's thousands of modules
    and objects took 0.6 s of every `down`. Of the exit handlers skipped, logging's runs here; the others
    close urllib3's connection pools, which the exit closes anyway."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
