"""The ROS 2 demo: camera → attack (man-in-the-middle) → guard ⇄ teacher, as real processes.

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
import sys
import tempfile
import time
from collections import Counter, deque
from pathlib import Path

import rclpy
from rclpy.node import Node
from std_msgs.msg import String
from std_srvs.srv import SetBool

from .common import EVENT_QOS


def ros_env(domain_id: int | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.setdefault("ROS_DOMAIN_ID", str(domain_id if domain_id is not None else random.randint(1, 100)))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def node_cmd(module: str, params: dict, remaps: dict | None = None) -> list[str]:
    """`python -m icub_guard.ros.<module> --ros-args -p k:=v -r from:=to` (values as YAML)."""
    cmd = [sys.executable, "-m", f"icub_guard.ros.{module}", "--ros-args"]
    for k, v in params.items():
        text = json.dumps(v) if isinstance(v, bool) else ("''" if v == "" else str(v))
        cmd += ["-p", f"{k}:={text}"]
    for k, v in (remaps or {}).items():
        cmd += ["-r", f"{k}:={v}"]
    return cmd


class Watcher(Node):
    """Scores the guard's decisions against the simulator's ground truth, per phase."""

    def __init__(self):
        super().__init__("demo_watcher")
        self.truth: dict[tuple[int, int], str] = {}
        self.attacked: set[tuple[int, int]] = set()
        self.phase = "learning"
        self.stats = {"learning": Counter(), "attack": Counter()}
        self.latency = deque(maxlen=200)
        self.times = deque(maxlen=50)
        self.classes = 0
        self.create_subscription(String, "/ground_truth", self.on_truth, EVENT_QOS)
        self.create_subscription(String, "/decision", self.on_decision, EVENT_QOS)
        self.create_subscription(String, "/teacher/query", lambda m: self._count("queries"), EVENT_QOS)
        self.create_subscription(String, "/teacher/feedback", lambda m: self._count("answers"), EVENT_QOS)
        self.create_subscription(String, "/attack/info", self.on_attack, EVENT_QOS)
        self.attack_client = self.create_client(SetBool, "/enable")
        self.learning_client = self.create_client(SetBool, "/set_learning")

    def _count(self, key: str) -> None:
        self.stats[self.phase][key] += 1

    @staticmethod
    def _key(stamp: dict) -> tuple[int, int]:
        return int(stamp["sec"]), int(stamp["nanosec"])

    def on_truth(self, msg: String) -> None:
        b = json.loads(msg.data)
        self.truth[self._key(b["stamp"])] = b["label"]

    def on_attack(self, msg: String) -> None:
        b = json.loads(msg.data)
        self.attacked.add(self._key(b["stamp"]))

    def on_decision(self, msg: String) -> None:
        d = json.loads(msg.data)
        key = self._key(d["stamp"])
        truth = self.truth.get(key)
        if truth is None:
            return
        s = self.stats[self.phase]
        s["frames"] += 1
        self.latency.append(d["latency_ms"])
        self.times.append(time.monotonic())
        self.classes = max(self.classes, len(d["scores"]))
        attacked = key in self.attacked
        if attacked:
            s["attacked"] += 1
            if d["scores"] and max(d["scores"], key=d["scores"].get) != truth:
                s["fooled_without_reject"] += 1  # what SVM-RBF (argmax, no reject option) would have said
        if not d["accepted"]:
            s["caught" if attacked else "rejected"] += 1
        elif d["label"] == truth:
            s["correct_attacked" if attacked else "correct"] += 1
        else:
            s["fooled" if attacked else "wrong"] += 1

    def call(self, client, value: bool, timeout: float = 10.0) -> bool:
        if not client.wait_for_service(timeout_sec=timeout):
            return False
        fut = client.call_async(SetBool.Request(data=value))
        rclpy.spin_until_future_complete(self, fut, timeout_sec=timeout)
        return fut.done() and fut.result().success

    def line(self) -> str:
        s = self.stats[self.phase]
        n = max(s["frames"], 1)
        rate = (len(self.times) - 1) / (self.times[-1] - self.times[0]) if len(self.times) > 1 else 0.0
        lat = sorted(self.latency)[len(self.latency) // 2] if self.latency else float("nan")
        base = (f"[{self.phase:8s}] frames {s['frames']:4d}  accuracy {(s['correct'] + s['correct_attacked']) / n:.2f}"
                f"  rejected {(s['rejected'] + s['caught']) / n:.2f}  queries {s['queries']:3d}"
                f"  classes {self.classes}  {rate:4.1f} Hz  {lat:5.1f} ms")
        if self.phase == "attack":
            a = max(s["attacked"], 1)
            base += f"  | attacked {s['attacked']}: caught {s['caught'] / a:.2f} fooled {s['fooled'] / a:.2f}"
        return base


def run_demo(duration: float = 90.0, attack_fraction: float = 0.5, attack: str = "paper", eps: float = 1000.0,
             steps: int = 10, weights: str = "auto", input_size: int = 224, rate: float = 5.0,
             quiet: bool = False, workdir: str | None = None) -> dict:
    env = ros_env()
    work = Path(workdir or tempfile.mkdtemp(prefix="icub_guard_demo_"))
    model = work / "guard_model.npz"
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    common = {"weights": weights, "input_size": input_size}
    cmds = {
        "sim_camera": node_cmd("sim_camera_node", {"rate": rate, "switch_period": 3.0},
                               {"image": "/camera/image", "roi": "/roi", "ground_truth": "/ground_truth"}),
        "attack": node_cmd("attack_node", {"model_path": str(model), "attack": attack, "eps": eps, "steps": steps},
                           {"image_in": "/camera/image", "image_out": "/guard/image", "roi": "/roi"}),
        "guard": node_cmd("guard_node", {**common, "model_path": str(model), "query_rate_limit": 5.0},
                          {"image": "/guard/image", "roi": "/roi"}),
        "teacher": node_cmd("teacher_node", {"mode": "oracle"}),
    }
    print(f"icub_guard ROS 2 demo — ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}, localhost DDS, logs in {logs}")
    procs = {k: subprocess.Popen(c, env=env, stdout=open(logs / f"{k}.log", "w"), stderr=subprocess.STDOUT)
             for k, c in cmds.items()}
    os.environ.update({k: env[k] for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID")})
    rclpy.init()
    w = Watcher()
    summary: dict = {}
    try:
        t_wait = time.monotonic()
        while w.stats["learning"]["frames"] == 0:  # the guard loads its network first
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
            if w.phase == "learning" and now >= t_attack:
                print(w.line())
                w.call(w.learning_client, False)
                ok = w.call(w.attack_client, True)
                w.phase = "attack"
                state = "ok" if ok else "FAILED"
                print(f"--- learning frozen; attack node switched in ({attack}, d_max {eps:g}): {state}")
            if not quiet and now - last >= 2.0:
                print(w.line(), flush=True)
                last = now
        print(w.line())
        summary = {p: dict(c) for p, c in w.stats.items()}
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
