"""The parameter files in `config/` are the single source of every default.

Nodes declare their parameters with the values from their YAML file, the
in-process demo builds its `SessionConfig` from `guard.yaml`, and the demo
topology (`demo.yaml`) names the files each node gets. This module only finds
and reads them: in a colcon install they are in the package's share directory,
in a pip install under `<prefix>/share/icub_guard/config`, and in a source
checkout (or an editable install) next to the package.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import yaml

PACKAGE = "icub_guard"


def _ament_share() -> Path | None:
    try:  # a ROS install: the ament index knows the share directory
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE)) / "config"
    except Exception:  # not installed with ament, no AMENT_PREFIX_PATH, or no ament_index at all
        return None


def _candidates():
    env = os.environ.get("ICUB_GUARD_CONFIG_DIR")
    if env:
        yield Path(env)
    yield Path(__file__).resolve().parents[1] / "config"  # source checkout / editable install
    share = _ament_share()
    if share is not None:
        yield share
    yield Path(sys.prefix) / "share" / PACKAGE / "config"  # pip install (data_files)


@functools.cache
def config_dir() -> Path:
    """The folder holding guard.yaml, teacher.yaml, … (`ICUB_GUARD_CONFIG_DIR` overrides)."""
    for d in _candidates():
        if (d / "guard.yaml").is_file():
            return d
    raise FileNotFoundError(f"icub_guard's config folder was not found; looked in {[str(d) for d in _candidates()]}"
                            " (set ICUB_GUARD_CONFIG_DIR)")


def config_file(name: str) -> Path:
    return config_dir() / name


@functools.cache
def load(name: str) -> dict:
    """A YAML file of the config folder, parsed safely (no object construction)."""
    with open(config_file(name), encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def node_defaults(name: str) -> dict:
    """The `ros__parameters` of a node's parameter file (`/**` section), e.g. `node_defaults("guard.yaml")`."""
    body = load(name)
    try:
        return dict(body["/**"]["ros__parameters"])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{config_file(name)} has no '/**: ros__parameters:' section") from exc
