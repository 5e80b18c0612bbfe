"""The demo topology and the defaults come from config/ only, for launch files and `icub-guard demo` alike."""

import ast
from pathlib import Path

import pytest

from icub_guard.defaults import config_dir, load, node_defaults
from icub_guard.topology import argument_choices, demo_nodes, demo_settings, node_command, spec_command

ROOT = Path(__file__).resolve().parents[1]


def test_attack_node_sits_between_camera_and_guard_only_in_the_attack_demo():
    plain = {s.name: s for s in demo_nodes(attack=False, arguments={})}
    attack = {s.name: s for s in demo_nodes(attack=True, arguments={})}
    assert set(plain) == {"sim_camera_node", "guard_node", "teacher_node"}
    assert set(attack) == set(plain) | {"attack_node"}
    camera_out = attack["sim_camera_node"].remappings["image"]
    assert plain["guard_node"].remappings["image"] == camera_out  # the guard watches the camera itself
    assert attack["attack_node"].remappings["image_in"] == camera_out
    assert attack["guard_node"].remappings["image"] == attack["attack_node"].remappings["image_out"] != camera_out


def test_teacher_web_starts_the_page_instead_of_the_teacher_node():
    web = {s.name: s for s in demo_nodes(attack=False, arguments={"teacher": "web", "web_port": 8123})}
    assert set(web) == {"sim_camera_node", "guard_node", "teacher_web_node"}
    cmd = spec_command(web["teacher_web_node"], {"teacher": "web", "web_port": 8123})
    assert "port:=8123" in cmd and not any(c.startswith("teacher:=") for c in cmd)
    mal = {s.name: s for s in demo_nodes(attack=False, arguments={"teacher": "malicious"})}
    assert 'mode:="malicious"' in spec_command(mal["teacher_node"], {"teacher": "malicious"})
    assert argument_choices()["teacher"] == ["oracle", "malicious", "strategic", "interactive", "web"]
    assert not demo_nodes(attack=False, arguments={"teacher": "nobody"})[-1].name.startswith("teacher")


def test_every_argument_has_a_default_and_a_description():
    described = load("demo.yaml")["arguments"]
    for spec in demo_nodes(attack=True):
        assert spec.parameters_file.is_file()
        for name, value in spec.argument_defaults().items():
            assert described.get(name), name
            assert value is not None
    assert spec_command(next(s for s in demo_nodes(True) if s.name == "sim_camera_node"), {})[-6:] == [
        "-r", "image:=/camera/image", "-r", "roi:=/roi", "-r", "ground_truth:=/ground_truth"]


def test_commands_carry_the_parameter_file_then_overrides():
    guard = next(s for s in demo_nodes(True) if s.name == "guard_node")
    cmd = spec_command(guard, {"weights": "random", "rate": 9.0})  # rate is the camera's, not the guard's
    i = cmd.index("--params-file")
    assert cmd[i + 1] == str(config_dir() / "guard.yaml")
    assert 'weights:="random"' in cmd and not any(c.startswith("rate:=") for c in cmd)
    assert f'model_path:="{demo_settings()["model_path"]}"' in cmd
    assert node_command("teacher_node", None, {"flag": True, "variant": "7", "n": 3})[-6:] == [
        "-p", "flag:=true", "-p", 'variant:="7"', "-p", "n:=3"]


def test_launch_files_read_the_topology_and_restate_nothing():
    for name in ("demo.launch.py", "attack_demo.launch.py"):
        tree = ast.parse((ROOT / "launch" / name).read_text())
        calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        assert "demo_launch_description" in calls and "Node" not in calls, name


@pytest.mark.parametrize("node,module", [("guard.yaml", "guard_node"), ("teacher.yaml", "teacher_node"),
                                         ("sim_camera.yaml", "sim_camera_node"), ("attack.yaml", "attack_node"),
                                         ("teacher_web.yaml", "teacher_web_node"), ("replay.yaml", "replay_node")])
def test_nodes_declare_exactly_their_config_files_parameters(node, module):
    """Every parameter a node declares has its default in its YAML file, and the file holds nothing else."""
    from dataclasses import fields

    from icub_guard.core.recognizer import RecognizerConfig
    from icub_guard.core.screening import ScreeningConfig
    from icub_guard.core.session import SessionConfig

    src = (ROOT / "icub_guard" / "ros" / f"{module}.py").read_text()
    calls = [n for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Call) and n.args]
    name = lambda n: n.func.id if isinstance(n.func, ast.Name) else getattr(n.func, "attr", None)
    declared = {n.args[0].value for n in calls if name(n) == "p" and isinstance(n.args[0], ast.Constant)}
    configs = {c.__name__: c for c in (RecognizerConfig, SessionConfig, ScreeningConfig)}
    for n in calls:  # a core config's settings, declared from its fields; a QoS pair from its prefix
        if name(n) == "declare_settings":
            declared |= {f.metadata["param"] for f in fields(configs[n.args[1].id]) if "param" in f.metadata}
        elif name(n) == "qos_parameters":
            declared |= {f"{n.args[1].value}_qos_reliability", f"{n.args[1].value}_qos_depth"}
    assert declared == set(node_defaults(node))


def test_the_cli_restates_no_demo_default():
    """`icub-guard demo` leaves every topology default to config/ (it used to hard-code rate 10 vs 5, 0.4 vs 0.5)."""
    from icub_guard.cli import build_parser

    args = build_parser().parse_args(["demo"])
    for opt in ("duration", "attack_fraction", "attack", "eps", "attack_steps", "rate", "teacher", "weights",
                "input_size"):
        assert getattr(args, opt) is None, opt
