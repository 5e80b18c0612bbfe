"""Start-up to first label, memory per node, and shutdown time of the demo topology; prints JSON.

The nodes of config/demo.yaml (no attack node) start as processes, as `icub-guard demo` and
`ros2 launch icub_guard demo.launch.py` start them, with default parameters. Measured: seconds
from spawning them to the first `/label` message, each node's resident memory once the first
label is out, and — after SIGINT to every node, as Ctrl-C in a terminal sends to the process
group — seconds until all have exited, with their exit codes and whether any printed a traceback.
Targets (issue 8): first label <= 8 s, teacher and camera < 200 MB each, shutdown <= 2 s, exit 0.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--weights", default=None, help="guard weights (default: config/guard.yaml)")
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    from icub_guard.demo import ros_env
    from icub_guard.topology import demo_nodes, spec_command

    env = ros_env()
    os.environ.update({k: env[k] for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID")})
    import rclpy
    from std_msgs.msg import String

    rclpy.init()
    listener = rclpy.create_node("bench_startup")
    labels: list[float] = []
    listener.create_subscription(String, "/label", lambda m: labels.append(time.monotonic()), 10)
    runs = []
    for _ in range(args.runs):
        work = Path(tempfile.mkdtemp(prefix="icub_guard_bench_startup_"))
        labels.clear()
        arguments = {"model_path": str(work / "model.npz"), **({"weights": args.weights} if args.weights else {})}
        t0 = time.monotonic()
        procs = {s.name: subprocess.Popen(spec_command(s, arguments), env=env, stdout=open(work / f"{s.name}.log", "w"),
                                          stderr=subprocess.STDOUT, start_new_session=False)
                 for s in demo_nodes(attack=False)}
        while not labels and time.monotonic() - t0 < 120:
            rclpy.spin_once(listener, timeout_sec=0.05)
        first = labels[0] - t0 if labels else None
        memory = {k: rss_mb(p.pid) for k, p in procs.items()}
        t1 = time.monotonic()
        for p in procs.values():
            p.send_signal(signal.SIGINT)
        codes = {}
        for k, p in procs.items():
            try:
                codes[k] = p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                codes[k] = "killed after 20 s"
        stop = time.monotonic() - t1
        tracebacks = [k for k in procs if "Traceback" in (work / f"{k}.log").read_text()]
        runs.append({"first_label_s": first, "rss_mb": memory, "shutdown_s": stop, "exit_codes": codes,
                     "tracebacks": tracebacks})
    listener.destroy_node()
    rclpy.shutdown()
    print(json.dumps({"benchmark": "startup_shutdown", "cpu_count": os.cpu_count(), "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
