"""What every icub_guard node shares: QoS, counters, diagnostics, parameter helpers, guarded callbacks."""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
import time
from collections import Counter, deque
from pathlib import Path

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.clock import Clock, ClockType
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from std_msgs.msg import String

#: Camera frames: best effort, keep only the newest (a slow model never builds a backlog).
FRAME_QOS = QoSProfile(depth=1, reliability=qos_profile_sensor_data.reliability,
                       history=qos_profile_sensor_data.history, durability=qos_profile_sensor_data.durability)
#: Labels, decisions, queries: reliable, a short queue.
EVENT_QOS = QoSProfile(depth=10)
#: Requests each service queues (rclpy's default keeps 10: callers past those wait for ever under a burst).
SERVICE_QUEUE_DEPTH = 1000
#: A client that may send a burst (a teacher's labels): rclpy's default keeps 10 replies and drops the rest.
CLIENT_QOS = QoSProfile(depth=SERVICE_QUEUE_DEPTH)
#: Teacher feedback: reliable, and deep enough for a burst while the node is busy learning
#: (every label a teacher sends must reach a counter: learned, rejected or ignored).
FEEDBACK_QOS = QoSProfile(depth=1000)


RELIABILITY = {"reliable": ReliabilityPolicy.RELIABLE, "best_effort": ReliabilityPolicy.BEST_EFFORT}


def qos(reliability: str, depth: int) -> QoSProfile:
    """A keep-last QoS from parameter values (volatile durability, as the defaults)."""
    if reliability not in RELIABILITY:
        raise ValueError(f"QoS reliability must be one of {sorted(RELIABILITY)}, got {reliability!r}")
    if not 1 <= depth <= 100_000:
        raise ValueError(f"QoS depth must be in [1, 100000], got {depth}")
    return QoSProfile(depth=depth, reliability=RELIABILITY[reliability], history=HistoryPolicy.KEEP_LAST,
                      durability=DurabilityPolicy.VOLATILE)


def declare(node: Node, name: str, default, description: str, *, read_only: bool = False,
            lo: float | None = None, hi: float | None = None):
    """Declare a parameter with a descriptor (with its range for numbers, which `ros2 param describe` shows);
    return its value.

    A float parameter stays a double: a whole number given for it (`ros2 param set /guard_node threshold 1`,
    or `1` in a YAML file) is taken as that number (`GuardedNode` converts it before the type check).
    """
    desc = ParameterDescriptor(description=description, read_only=read_only)
    is_float = isinstance(default, float)
    if lo is not None and hi is not None:
        if is_float:
            desc.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
        elif isinstance(default, int) and not isinstance(default, bool):
            desc.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
    if is_float:
        node.float_parameters.add(name)
        given = node._parameter_overrides.get(name)  # a whole number in a params file or on the command line
        if given is not None and given.type_ == rclpy.Parameter.Type.INTEGER:
            node._parameter_overrides[name] = rclpy.Parameter(name, value=float(given.value))
    try:
        return node.declare_parameter(name, default, desc).value
    except ParameterException as exc:  # a start-up value of the wrong type or out of range: exit 2, the reason said
        raise ValueError(f"parameter {name}: {exc}") from exc


def qos_parameters(p: Parameters, prefix: str, what: str) -> QoSProfile:
    """The QoS of `what` from its two read-only parameters, `<prefix>_qos_reliability` and `<prefix>_qos_depth`."""
    return qos(p(f"{prefix}_qos_reliability", f"QoS of {what}: reliable | best_effort", read_only=True),
               p(f"{prefix}_qos_depth", f"queue depth of {what}", read_only=True, lo=1, hi=100000))


class Parameters:
    """Declares a node's parameters with the defaults of its config file (the single source of defaults)."""

    def __init__(self, node: Node, config_name: str):
        from ..defaults import config_file, node_defaults

        self.node, self.defaults, self.file = node, node_defaults(config_name), config_file(config_name)

    def __call__(self, name: str, description: str, **kw):
        if name not in self.defaults:
            raise ValueError(f"parameter {name!r} has no default in {self.file}")
        return declare(self.node, name, self.defaults[name], description, **kw)


def json_msg(payload: dict) -> String:
    """Strict JSON (non-finite numbers as null) in a std_msgs/String."""
    from ..core.jsonio import dumps

    return String(data=dumps(payload))


def stamp_to_float(stamp) -> float:
    return float(stamp.sec) + 1e-9 * float(stamp.nanosec)


class Health:
    """Counters and rolling timings that end up in /diagnostics."""

    def __init__(self, window: int = 200):
        self.counts: Counter[str] = Counter()
        self.rejected_inputs: Counter[str] = Counter()
        self.callback_errors: Counter[str] = Counter()
        self.latency_ms: deque[float] = deque(maxlen=window)
        self.frame_times: deque[float] = deque(maxlen=window)
        self.last_error = "-"  # the last input refused, with its reason

    def frame(self, latency_ms: float) -> None:
        self.counts["frames"] += 1
        self.latency_ms.append(latency_ms)
        self.frame_times.append(time.monotonic())

    def reject(self, reason: str) -> None:
        self.rejected_inputs[reason] += 1

    @property
    def rate_hz(self) -> float:
        t = self.frame_times
        return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else 0.0

    def percentile(self, q: float) -> float:
        if not self.latency_ms:
            return float("nan")
        s = sorted(self.latency_ms)
        return s[min(len(s) - 1, int(q / 100 * len(s)))]

    def status(self, name: str, hardware_id: str, level: bytes, message: str, extra: dict,
               stamp=None) -> DiagnosticArray:
        """One DiagnosticStatus (`level`: DiagnosticStatus.OK / WARN / ERROR) stamped with the node's clock.

        Timings read "no data" until there is a sample, never "nan".
        """
        st = DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id)
        timed = bool(self.latency_ms)
        values = {"rate_hz": f"{self.rate_hz:.2f}" if len(self.frame_times) > 1 else "no data",
                  "latency_ms_p50": f"{self.percentile(50):.1f}" if timed else "no data",
                  "latency_ms_p95": f"{self.percentile(95):.1f}" if timed else "no data",
                  **{k: str(v) for k, v in self.counts.items()},
                  "rejected_inputs_total": str(sum(self.rejected_inputs.values())),
                  **{f"rejected_input.{k}": str(v) for k, v in self.rejected_inputs.items()},
                  **{f"callback_error.{k}": str(v) for k, v in self.callback_errors.items()},
                  **{k: str(v) for k, v in extra.items()}}
        st.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        arr = DiagnosticArray()
        if stamp is not None:
            arr.header.stamp = stamp
        arr.status = [st]
        return arr


class GuardedNode(Node):
    """A node that no message can end.

    Every subscription, service and timer callback runs inside a guard: an
    unexpected exception is logged (throttled), counted in /diagnostics
    (`callback_errors`, and per callback) and the node goes on; a service
    answers `success: false`. Expected bad input is handled inside the callbacks
    (a logged, counted rejection); this is the net under them.
    """

    def __init__(self, node_name: str, **kwargs):
        super().__init__(node_name, **kwargs)
        self.health = Health()
        self.float_parameters: set[str] = set()
        self.add_pre_set_parameters_callback(self._whole_numbers_as_floats)
        #: requests a service queues while the node is busy (a node may set it from a parameter before its services)
        self.service_queue_depth = SERVICE_QUEUE_DEPTH

    def _whole_numbers_as_floats(self, params):
        """`ros2 param set … threshold 1` sends an integer: a float parameter takes it as 1.0 (its type stays)."""
        return [rclpy.Parameter(p.name, value=float(p.value))
                if p.name in self.float_parameters and p.type_ == rclpy.Parameter.Type.INTEGER else p
                for p in params]

    def _guarded(self, where: str, fn, on_error=None):
        @functools.wraps(fn)
        def run(*args):
            try:
                return fn(*args)
            except Exception as exc:
                if self.context.ok():  # at shutdown a publish may fail: that is no error
                    self.health.counts["callback_errors"] += 1
                    self.health.callback_errors[where] += 1
                    self.get_logger().error(f"{where}: unexpected {type(exc).__name__}: {exc}",
                                            throttle_duration_sec=1.0)
                return on_error(*args) if on_error is not None else None
        return run

    def create_subscription(self, msg_type, topic, callback, qos_profile, **kwargs):
        return super().create_subscription(msg_type, topic, self._guarded(f"topic {topic}", callback), qos_profile,
                                           **kwargs)

    def create_service(self, srv_type, srv_name, callback, **kwargs):
        def failed(request, response):
            if hasattr(response, "success"):
                response.success, response.message = False, "internal error (logged; see /diagnostics)"
            elif hasattr(response, "outcome"):  # Teach, Confirm: nothing was acknowledged
                response.outcome, response.reason = "failed", "internal error (logged; see /diagnostics)"
            return response

        depth = getattr(self, "service_queue_depth", SERVICE_QUEUE_DEPTH)  # rclpy's parameter services come first
        kwargs.setdefault("qos_profile", QoSProfile(depth=depth))  # not rclpy's 10: callers past it wait for ever
        return super().create_service(srv_type, srv_name, self._guarded(f"service {srv_name}", callback, failed),
                                      **kwargs)

    def create_timer(self, timer_period_sec, callback, **kwargs):
        return super().create_timer(timer_period_sec, self._guarded("timer", callback), **kwargs)

    def reject_input(self, where: str, exc: Exception) -> None:
        """A message refused: logged (throttled) and counted (`rejected_input.<where>`); the node goes on."""
        self.health.reject(where)
        self.get_logger().warning(f"rejected {where}: {exc}", throttle_duration_sec=1.0)
        self.health.last_error = f"{where}: {exc}"

    def count_lost(self, what: str) -> SubscriptionEventCallbacks:
        """Event callbacks for a subscription: what DDS reports lost in transport is counted (`<what>_lost`) and
        logged, never silent."""
        def lost(info) -> None:
            self.health.counts[f"{what}_lost"] += int(info.total_count_change)
            self.get_logger().warning(f"{info.total_count_change} {what} message(s) lost in transport",
                                      throttle_duration_sec=1.0)
        return SubscriptionEventCallbacks(message_lost=lost)

    def create_health_timer(self, period: float, callback):
        """A timer on the steady clock: /diagnostics keeps coming with `use_sim_time` and no /clock (or a paused
        one), when a ROS-time timer would never fire."""
        return self.create_timer(period, callback, clock=Clock(clock_type=ClockType.STEADY_TIME))

    def diagnostics(self, suffix: str, hardware_id: str, level: bytes, message: str, extra: dict) -> DiagnosticArray:
        """This node's /diagnostics message, named "<node>: <suffix>", stamped now."""
        return self.health.status(f"{self.get_name()}: {suffix}", hardware_id, level, message, extra,
                                  self.get_clock().now().to_msg())


def exit_process(rc: int) -> None:
    """End a node process now that it has shut down cleanly.

    By then the node is destroyed, its model flushed and rclpy shut down; what is
    left is the interpreter's teardown, which with torch loaded takes seconds (and
    launch escalates to SIGTERM/SIGKILL after 5). Logs and stdio are flushed first.
    Only for a node's process entry point, never inside a library call or a test.
    """
    import logging
    import os

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(rc)


def run_node(node_cls, args=None) -> int:
    """Init, spin until Ctrl-C or shutdown, clean up (SIGINT ignored from then on: the process is ending); a
    configuration error exits 2 with the reason."""
    from ..core.errors import GuardError

    rclpy.init(args=args)
    node = None
    try:
        try:
            node = node_cls()
        except (GuardError, ValueError) as exc:  # only start-up configuration is fatal
            print(f"{node_cls.__name__}: {exc}", file=sys.stderr)
            return 2
        threads = getattr(node_cls, "executor_threads", 1)
        executor = MultiThreadedExecutor(threads) if threads > 1 else SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # SIGTERM shuts the context down under a running callback; its publish then
        # fails (RCLError). That is a normal shutdown; anything else is re-raised.
        if rclpy.ok():
            raise
    finally:
        # Ctrl-C in a terminal reaches a launched node twice: from the terminal (its whole process group) and
        # again from ros2 launch, which forwards it. A second KeyboardInterrupt inside the clean-up cut it short
        # (model flush, destroy_node): a traceback and exit code -2. The process is ending: SIGINT is ignored.
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


def declare_settings(p: Parameters, config_cls, read_only: bool = False) -> dict:
    """Declare a core config's settings (`core.validation.setting` fields) as parameters, with the description
    and range written there; returns {field: value}."""
    from dataclasses import fields

    out = {}
    for f in fields(config_cls):
        if "help" in f.metadata:
            lo_hi = f.metadata["range"]
            out[f.name] = p(f.metadata["param"], f.metadata["help"], read_only=read_only,
                            **({} if lo_hi is None else {"lo": lo_hi[0], "hi": lo_hi[1]}))
    return out


def ros_home() -> Path:
    """ROS's folder for a node's files: `$ROS_HOME`, else `~/.ros` (the convention rclcpp's logging follows)."""
    return Path(os.environ.get("ROS_HOME") or Path.home() / ".ros").expanduser()


def resolve_model_path(text: str) -> str | None:
    """A `model_path` parameter as a path: empty → None (nothing saved); relative → under
    `$ROS_HOME/icub_guard/` (never the directory a launch happened to start in); absolute → as given."""
    text = str(text).strip()
    if not text:
        return None
    path = Path(text).expanduser()
    return str(path if path.is_absolute() else ros_home() / "icub_guard" / path)
