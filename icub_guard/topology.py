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
    arguments: tuple[str, ...] = ()  # launch arguments / CLI options that become parameters of this node
    remappings: dict[str, str] = field(default_factory=dict)

    @property
    def executable(self) -> str:
        return self.name

    def argument_defaults(self) -> dict:
        """Each argument's default: the demo's own (demo.yaml) or the node's parameter file."""
        demo, own = demo_settings(), node_defaults(self.parameters_file.name)
        return {a: demo[a] if a in demo else own[a] for a in self.arguments}


def demo_settings() -> dict:
    return dict(load("demo.yaml")["demo"])


def demo_nodes(attack: bool) -> list[NodeSpec]:
    """The nodes of the demo, with (`attack`) or without the man-in-the-middle attack node."""
    out = []
    for name, spec in load("demo.yaml")["nodes"].items():
        if spec.get("attack_only") and not attack:
            continue
        remaps = dict(spec.get("remappings") or {})
        if not attack:
            remaps.update(spec.get("without_attack") or {})
        out.append(NodeSpec(name, config_file(spec["parameters"]), tuple(spec.get("arguments") or ()), remaps))
    return out


def _param_text(v) -> str:
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
        cmd += ["-p", f"{k}:={_param_text(v)}"]
    for k, v in (remappings or {}).items():
        cmd += ["-r", f"{k}:={v}"]
    return cmd


def spec_command(spec: NodeSpec, arguments: dict, extra_params: dict | None = None) -> list[str]:
    """The command for one node of the topology, with values for its arguments (defaults where missing)."""
    values = {**spec.argument_defaults(), **{k: v for k, v in arguments.items() if k in spec.arguments}}
    return node_command(spec.name, spec.parameters_file, {**values, **(extra_params or {})}, spec.remappings)
