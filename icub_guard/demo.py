"""`icub-guard demo`: the demo topology (config/demo.yaml) as real processes, watched and scored.

The robot starts knowing nothing. For the first part it watches the simulated
tabletop, asks about what it rejects, is corrected when wrong, and learns every
object online. Then learning is frozen, the attack node is switched in, and we
count how many attacked frames the reject option catches. Everything runs on
this machine: DDS is restricted to localhost and gets its own domain id.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import tempfile
import time
from pathlib import Path

from .topology import demo_nodes, demo_settings, spec_command


def ros_env(domain_id: int | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.setdefault("ROS_DOMAIN_ID", str(domain_id if domain_id is not None else random.randint(1, 100)))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_demo(arguments: dict | None = None, duration: float | None = None, attack_fraction: float | None = None,
             quiet: bool = False, workdir: str | None = None) -> dict:
    """Start the topology with `arguments` (launch-argument values; defaults from config/), score it, stop it."""
    import rclpy

    from .ros.watcher import Watcher

    settings = demo_settings()
    args = {k: v for k, v in (arguments or {}).items() if v is not None}
    web = str(args.get("teacher", settings["teacher"])) == "web"
    duration = settings["web_duration" if web else "duration"] if duration is None else duration
    attack_fraction = settings["attack_fraction"] if attack_fraction is None else attack_fraction
    env = ros_env()
    work = Path(workdir or tempfile.mkdtemp(prefix="icub_guard_demo_"))
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    args.setdefault("model_path", str(work / Path(settings["model_path"]).name))
    attack = args.get("attack", "paper")
    print(f"icub_guard ROS 2 demo — ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}, localhost DDS, logs in {logs}")
    procs = {}
    for spec in demo_nodes(attack=attack_fraction > 0, arguments=args):
        with open(logs / f"{spec.name}.log", "w") as log:
            procs[spec.name] = subprocess.Popen(spec_command(spec, args), env=env, stdout=log, stderr=subprocess.STDOUT)
    os.environ.update({k: env[k] for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID")})
    if web:
        print(f"open the teacher page: {page_url(logs / 'teacher_web_node.log')}  "
              f"(the demo runs {duration:g} s; --duration to change, Ctrl-C to stop)")
    rclpy.init()
    w = Watcher()
    summary: dict = {}
    try:
        t_wait = time.monotonic()
        while w.tally["learning"].counts["frames"] == 0:  # the guard loads its network first
            rclpy.spin_once(w, timeout_sec=0.2)
            dead = [k for k, p in procs.items() if p.poll() is not None]
            if dead or time.monotonic() - t_wait > 120:
                raise RuntimeError(f"nodes did not start ({dead or 'timeout'}); see {logs}")
        print("nodes up: the robot knows nothing yet; the teacher answers its questions")
        t0 = time.monotonic()
        t_attack = t0 + duration * (1 - attack_fraction)
        last = 0.0
        while time.monotonic() - t0 < duration:
            rclpy.spin_once(w, timeout_sec=0.1)
            now = time.monotonic()
            if w.phase == "learning" and attack_fraction > 0 and now >= t_attack:
                print(w.line())
                w.call(w.learning_client, False)
                ok = w.call(w.attack_client, True)
                w.phase = "attack"
                print(f"--- learning frozen; attack node switched in ({attack}, d_max {args.get('eps', 'default')}): "
                      f"{'ok' if ok else 'FAILED'}")
            if not quiet and now - last >= 2.0:
                print(w.line(), flush=True)
                last = now
        print(w.line())
        summary = {p: dict(t.counts) for p, t in w.tally.items()}
        summary["classes_learned"] = w.classes
    finally:
        w.destroy_node()
        rclpy.shutdown()
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    (work / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def page_url(log: Path, timeout: float = 20.0) -> str:
    """The teacher page's URL, as its node logs it at start (with the token when one was generated)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
            if "teacher page: " in line:
                return line.split("teacher page: ", 1)[1].strip()
        time.sleep(0.2)
    return f"(not logged yet; see {log})"


def print_summary(s: dict) -> None:
    learn, att = s.get("learning", {}), s.get("attack", {})
    n = max(learn.get("frames", 0), 1)
    print("\nsummary")
    print(f"  learning phase: {learn.get('frames', 0)} frames, accuracy {learn.get('correct', 0) / n:.2f}, "
          f"{learn.get('queries', 0)} queries, {learn.get('answers', 0)} teacher answers, "
          f"{s.get('classes_learned', 0)} classes learned")
    a = max(att.get("attacked", 0), 1)
    m = max(att.get("frames", 0), 1)
    print(f"  attack phase:   {att.get('frames', 0)} frames, {att.get('attacked', 0)} attacked: "
          f"caught by the reject option {att.get('caught', 0) / a:.2f}, fooled {att.get('fooled', 0) / a:.2f}, "
          f"still right {att.get('correct_attacked', 0) / a:.2f}; overall accuracy "
          f"{(att.get('correct', 0) + att.get('correct_attacked', 0)) / m:.2f}")
    print(f"  without the reject option (argmax only), {att.get('fooled_without_reject', 0) / a:.2f} of the attacked "
          f"frames would have been misclassified")
