"""The demo topology (config/demo.yaml) as data, and the command line that starts one node.

The launch files turn `demo_nodes()` into launch_ros `Node` actions; `icub-guard
demo` turns it into processes with `node_command()`. Neither restates a topic,
a parameter file or a default: they all come from config/.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .defaults import config_file, load, node_defaults

PACKAGE = "icub_guard"


@dataclass(frozen=True)
class NodeSpec:
    name: str  # node name, and executable (`ros2 run icub_guard <name>`, module icub_guard.ros.<name>)
    parameters_file: Path
    #: (parameter, launch argument) pairs: launch arguments / CLI options that become parameters of this node
    arguments: tuple[tuple[str, str], ...] = ()
    remappings: dict[str, str] = field(default_factory=dict)
    #: launch argument → the values for which this node runs (none: always)
    when: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def executable(self) -> str:
        return self.name

    def argument_defaults(self) -> dict:
        """Each launch argument's default: the demo's own (demo.yaml) or the node's parameter file."""
        demo, own = demo_settings(), node_defaults(self.parameters_file.name)
        return {arg: demo[arg] if arg in demo else own[param] for param, arg in self.arguments}

    def runs_with(self, arguments: dict) -> bool:
        """Whether this node is part of the demo for these launch-argument values (defaults where missing)."""
        settings = demo_settings()
        return all(str(arguments.get(a, settings.get(a))) in values for a, values in self.when.items())


def demo_settings() -> dict:
    return dict(load("demo.yaml")["demo"])


def _pairs(arguments) -> tuple[tuple[str, str], ...]:
    if isinstance(arguments, dict):
        return tuple((str(p), str(a)) for p, a in arguments.items())
    return tuple((str(a), str(a)) for a in arguments or ())


def demo_nodes(attack: bool, arguments: dict | None = None) -> list[NodeSpec]:
    """The nodes of the demo, with (`attack`) or without the man-in-the-middle attack node.

    With `arguments` (launch-argument values), only the nodes that run with them (`when`);
    without, all of them (a launch file puts the condition on each).
    """
    out = []
    for name, spec in load("demo.yaml")["nodes"].items():
        if spec.get("attack_only") and not attack:
            continue
        remaps = dict(spec.get("remappings") or {})
        if not attack:
            remaps.update(spec.get("without_attack") or {})
        when = {str(k): tuple(str(v) for v in vs) for k, vs in (spec.get("when") or {}).items()}
        node = NodeSpec(name, config_file(spec["parameters"]), _pairs(spec.get("arguments")), remaps, when)
        if arguments is None or node.runs_with(arguments):
            out.append(node)
    return out


def argument_choices() -> dict[str, list[str]]:
    """The values a launch argument may take where nodes are chosen by it (e.g. `teacher`)."""
    out: dict[str, list[str]] = {}
    for spec in demo_nodes(attack=True):
        for arg, values in spec.when.items():
            out.setdefault(arg, []).extend(v for v in values if v not in out.get(arg, []))
    return out


def param_text(v) -> str:
    """A value as `-p name:=value` needs it (YAML): strings quoted so "7" stays a string."""
    if isinstance(v, str):
        return json.dumps(v)
    return json.dumps(v) if isinstance(v, bool | list) else str(v)


def node_command(name: str, parameters_file: Path | None = None, params: dict | None = None,
                 remappings: dict | None = None) -> list[str]:
    """`python -m icub_guard.ros.<name> --ros-args [--params-file F] -p k:=v -r from:=to`."""
    cmd = [sys.executable, "-m", f"{PACKAGE}.ros.{name}", "--ros-args"]
    if parameters_file is not None:
        cmd += ["--params-file", str(parameters_file)]
    for k, v in (params or {}).items():
        cmd += ["-p", f"{k}:={param_text(v)}"]
    for k, v in (remappings or {}).items():
        cmd += ["-r", f"{k}:={v}"]
    return cmd


def spec_command(spec: NodeSpec, arguments: dict, extra_params: dict | None = None) -> list[str]:
    """The command for one node of the topology, with values for its arguments (defaults where missing)."""
    values = {**spec.argument_defaults(), **{k: v for k, v in arguments.items() if v is not None}}
    params = {param: values[arg] for param, arg in spec.arguments}
    return node_command(spec.name, spec.parameters_file, {**params, **(extra_params or {})}, spec.remappings)
