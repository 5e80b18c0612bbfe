"""`icub-guard sweep`: grid and hashes, bad files refused, resume, failed cells kept and retried, shared work once.

The Ray tests share one local Ray (2 CPUs) started once for the module, and run a small real evaluation kind
defined here ("toy": the shared preparation — crops of a tiny image folder, their features, the fitted SVM-adv —
then its test accuracy at a threshold offset) so a cell costs seconds. The cluster test (two `ray start` nodes,
one killed mid-sweep, real `evaluate` cells through the CLI) takes minutes: opt-in with ICUB_GUARD_CLUSTER_TEST=1.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from icub_guard.cli import main
from icub_guard.sweep import REGISTRY, EvaluationKind, ResultsTable, SweepError, expand
from icub_guard.sweep.report import status_lines, write_report
from icub_guard.sweep.spec import parse_spec

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


@dataclass
class ToyConfig:
    dataset: str
    backbone: str = "resnet18"
    weights: str = "random"
    seed: int = 0
    input_size: int = 32
    n_train: int = 3
    n_val: int = 2
    n_test: int = 3
    device: str = "cpu"
    offset: float = 0.0


def toy_run(cfg: ToyConfig, prepared) -> dict:
    """Test accuracy of the shared SVM-adv with every threshold raised by `offset` (a real, cheap evaluation)."""
    prepared.check(cfg, linear=False)
    clf = prepared.classifier("svm-adv")
    clf.thresholds_ = clf.thresholds_ + cfg.offset
    test = prepared.splits["test"]
    labels = clf.predict(test.features)
    return {"offset": cfg.offset, "accuracy": float(np.mean(labels == test.data.labels))}


def toy_summary(r: dict) -> dict:
    return {"x_name": "offset", "x": [r["offset"]], "curves": {"svm-adv": [r["accuracy"]]},
            "checks": [{"check": "accuracy is a fraction", "passed": 0 <= r["accuracy"] <= 1, "detail": ""}],
            "timing": {}, "result": r}


TOY = EvaluationKind("toy", ToyConfig, toy_run, toy_summary, shares=True, linear=False)
KINDS = {**REGISTRY, "toy": TOY}


def image_folder(root: Path, readable: bool = True) -> Path:
    """root/<split>/<class>/<img>.png: two classes (a bright and a dark pattern, seeded), 3 images each."""
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        for cls, base in (("bright", 200), ("dark", 40)):
            d = root / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(3):
                f = d / f"{i}.png"
                if readable:
                    img = np.clip(base + rng.normal(0, 20, (40, 40, 3)), 0, 255).astype(np.uint8)
                    cv2.imwrite(str(f), img)
                else:
                    f.write_bytes(b"not a png")
    return root


def spec_of(tmp_path: Path, doc: dict, kinds=None):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(doc))
    return parse_spec(doc, path, KINDS if kinds is None else kinds)


# ------------------------------------------------------------------ no Ray: grid, hashes, refusals

def test_grid_expands_every_combination_with_stable_distinct_hashes(tmp_path):
    doc = {"evaluation": "evaluate", "fixed": {"n_train": 5, "d_max": [0, 1000]},
           "axes": {"attack": ["fmn", "algorithm1"], "seed": [0, 1, 2]}}
    cells = expand(spec_of(tmp_path, doc))
    assert [c.axes for c in cells][:2] == [{"attack": "fmn", "seed": 0}, {"attack": "fmn", "seed": 1}]
    assert len(cells) == 6 and len({c.hash for c in cells}) == 6
    assert cells[0].config.d_max == (0.0, 1000.0) and cells[0].config.n_train == 5
    # the same run spelled differently is the same cell; any changed field is a new one
    same = expand(spec_of(tmp_path, {**doc, "fixed": {"n_train": 5, "d_max": [0.0, 1000.0]}}))
    assert [c.hash for c in same] == [c.hash for c in cells]
    other = expand(spec_of(tmp_path, {**doc, "fixed": {"n_train": 6, "d_max": [0, 1000]}}))
    assert not {c.hash for c in other} & {c.hash for c in cells}
    # a comma-separated string is a tuple parameter's list (as on the command line)
    d = expand(spec_of(tmp_path, {"evaluation": "evaluate-defences", "axes": {"defences": ["jpeg,blur", "kde"]}}))
    assert [c.config.defences for c in d] == [("jpeg", "blur"), ("kde",)]


def test_a_linked_axis_varies_its_parameters_together_not_as_a_product(tmp_path):
    doc = {"evaluation": "evaluate", "fixed": {"n_train": 5},
           "axes": {"weights,input_size": [["random", 224], ["simworld", 64]], "seed": [0, 1]}}
    spec = spec_of(tmp_path, doc)
    cells = expand(spec)
    assert [c.axes for c in cells] == [{"weights": "random", "input_size": 224, "seed": 0},
                                       {"weights": "random", "input_size": 224, "seed": 1},
                                       {"weights": "simworld", "input_size": 64, "seed": 0},
                                       {"weights": "simworld", "input_size": 64, "seed": 1}]
    assert [(c.config.weights, c.config.input_size) for c in cells[::2]] == [("random", 224), ("simworld", 64)]
    assert cells[0].label == "weights=random, input_size=224, seed=0"
    assert len({c.hash for c in cells}) == 4


@pytest.mark.parametrize(("doc", "reason"), [
    ({"evaluation": "evaluate", "axes": {"weights,input_size": [["random"]]}},
     "linked axis 'weights,input_size': ['random'] is not a list of 2 values (weights, input_size)"),
    ({"evaluation": "evaluate", "axes": {"weights,size": [["random", 64]]}}, "unknown parameter 'size'"),
    ({"evaluation": "evaluate", "axes": {"weights,input_size": [["random", "big"]]}}, "'big' is not a int"),
    ({"evaluation": "evaluate", "axes": {"weights,input_size": [["random", 64]], "input_size": [32]}},
     "input_size is on more than one axis"),
    ({"evaluation": "evaluate", "fixed": {"input_size": 64}, "axes": {"weights,input_size": [["random", 64]]}},
     "input_size is both fixed and an axis"),
    ({"evaluation": "evaluate", "axes": {"colour": ["red"]}}, "unknown parameter 'colour'"),
    ({"evaluation": "evaluate", "axes": {"backbone": ["alexnet", "lenet"]}}, "unknown backbone 'lenet'"),
    ({"evaluation": "evaluate", "axes": {"n_train": []}}, "axis 'n_train' has no values"),
    ({"evaluation": "evaluate", "fixed": {"n_train": 5}}, "the grid is empty"),
    ({"evaluation": "evaluate", "axes": {"n_train": [5, "many"]}}, "'many' is not a int"),
    ({"evaluation": "evaluate", "axes": {"dataset": ["simworld8"]}}, "unknown dataset 'simworld8'"),
    ({"evaluation": "evaluate", "axes": {"dataset": ["bag:/nonexistent/x.mcap"]}}, "does not exist"),
    ({"evaluation": "evaluate", "axes": {"seed": [1, 1]}}, "repeats 1"),
    ({"evaluation": "evaluate", "fixed": {"norm": "linf"}, "axes": {"attack": ["auto", "fmn"]}},
     "cell 1 (attack=fmn) cannot be built: the fast minimum-norm attack is l2 only"),
    ({"evaluation": "evaluate-defences", "axes": {"defences": ["jpeg", "nodefence"]}}, "cell 1 (defences=nodefence)"),
    ({"evaluation": "evaluate-everything", "axes": {"seed": [0]}}, "evaluation must be one of"),
    ({"evaluation": "evaluate-defences", "fixed": {"d_max": [0, 500, 1000], "table_d_max": 1000},
      "axes": {"norm": ["l2", "linf"]}}, "cell 1 (norm=linf) cannot be built: linf d_max 500, 1000 is above 255"),
    ({"evaluation": "evaluate-openset", "axes": {"taught": [["mug", "duck"], ["mug"]]}},
     "cell 1 (taught=mug) cannot be built: taught must name 2..6"),
    ({"evaluation": "evaluate-openset", "axes": {"weights": ["random", "resnet.pth"]}}, "unknown weights 'resnet.pth'"),
    ({"evaluation": "evaluate-openset", "axes": {"input_size": [64, -1]}}, "input_size must be >= 0"),
    ({"evaluation": "evaluate", "axes": {"seed": [0]}, "retry": 3}, "unknown key(s) retry"),
])
def test_bad_sweep_files_are_refused_before_anything_runs(tmp_path, capsys, doc, reason):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert main(["-q", "sweep", "run", str(path)]) == 2
    assert reason in capsys.readouterr().err
    assert not (tmp_path / "bad.sqlite").exists()  # nothing ran, no table was created


def test_unreadable_or_invalid_sweep_files_are_refused(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("axes: [")
    assert main(["-q", "sweep", "status", str(bad)]) == 2
    assert "is not valid YAML" in capsys.readouterr().err
    assert main(["-q", "sweep", "report", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read sweep file" in capsys.readouterr().err
    table = tmp_path / "results.sqlite"  # the results table where the sweep file goes: a reason, not a traceback
    sqlite3.connect(table).execute("create table cells (hash text)").connection.commit()
    assert main(["-q", "sweep", "report", str(table)]) == 2
    assert "is not a sweep file (YAML text)" in capsys.readouterr().err
    with pytest.raises(SweepError, match="a sweep file is a mapping"):
        parse_spec(["evaluate"], bad)


def test_a_file_that_is_not_a_results_table_is_refused_and_kept(tmp_path):
    bad = tmp_path / "results.sqlite"
    bad.write_bytes(b"important notes, not a database" * 100)
    with pytest.raises(SweepError, match="is not a sweep results table"):
        ResultsTable(bad)
    assert bad.read_bytes().startswith(b"important notes")


# ------------------------------------------------------------------ one local Ray for the module

@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the toy kind travels to the workers
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    yield ray
    ray.shutdown()


def test_shared_features_once_and_a_rerun_skips_finished_cells(tmp_path, local_ray):
    from icub_guard.sweep.runner import run_sweep

    a, b = image_folder(tmp_path / "a"), image_folder(tmp_path / "b")
    doc = {"evaluation": "toy", "axes": {"dataset": [str(a), str(b)], "offset": [0.0, 5.0]}}
    spec = spec_of(tmp_path, doc)
    cells = expand(spec)
    s = run_sweep(spec, cells, quiet=True)
    assert (s["done"], s["failed"], s["prepare_tasks"]) == (4, 0, 2)
    table = ResultsTable(spec.results)
    rows = table.rows([c.hash for c in cells])
    # one extraction per data set: every cell of a data set got the same preparation, the two data sets two
    tokens = {r["shared"]["key"]["dataset"]: set() for r in rows}
    for r in rows:
        tokens[r["shared"]["key"]["dataset"]].add(r["shared"]["token"])
    assert {k: len(v) for k, v in tokens.items()} == {str(a): 1, str(b): 1}
    assert all(r["status"] == "done" and r["attempts"] == 1 and r["code_version"] for r in rows)
    acc = {r["axes"]["offset"]: r["summary"]["curves"]["svm-adv"][0] for r in rows if r["axes"]["dataset"] == str(a)}
    assert acc[0.0] > acc[5.0]  # a threshold raised by 5 rejects everything (a rejection is not a right label)
    table.close()

    again = run_sweep(spec, cells, quiet=True)
    assert (again["done"], again["skipped_done"], again["prepare_tasks"]) == (0, 4, 0)
    # a grown grid runs only its new cells
    grown = spec_of(tmp_path, {**doc, "axes": {"dataset": [str(a), str(b)], "offset": [0.0, 5.0, -5.0]}})
    s3 = run_sweep(grown, expand(grown), quiet=True)
    assert (s3["done"], s3["skipped_done"], s3["prepare_tasks"]) == (2, 4, 2)
    table = ResultsTable(spec.results)
    assert len(table.rows()) == 6 and all(len(table.attempts(r["hash"])) == 1 for r in table.rows())
    lines = status_lines(expand(grown), table)
    assert lines == ["6 cells: 6 done, 0 running, 0 failed, 0 left"]
    files = write_report(grown, expand(grown), table, tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    assert files["accuracy"] == "accuracy.png" and (tmp_path / "report" / "cost.png").stat().st_size > 0
    assert "6 done" in text and "## Failed cells\n\nnone" in text
    table.close()


def test_an_openset_sweep_runs_its_cells_and_reports_auroc(tmp_path, local_ray):
    """`evaluation: evaluate-openset`: one backbone column per cell, on Ray; the results table holds the attacked
    untaught crops' curve and its check, and the report gives each cell's AUROC table."""
    from icub_guard.sweep.runner import run_sweep

    doc = {"evaluation": "evaluate-openset",
           "fixed": {"n_train": 6, "n_val": 8, "n_test": 3, "n_far": 4, "n_adv": 1, "d_max": [0, 500, 4000],
                     "fmn_steps": 5, "steps": 2, "recognition_train": 0, "analysis_n": 0, "knn_k": 2,
                     "backbone": "resnet18", "input_size": 32, "device": "cpu"},
           "axes": {"taught": [["mug", "duck"], ["mug", "duck", "teddy"]]}}
    spec = spec_of(tmp_path, doc)
    cells = expand(spec)
    s = run_sweep(spec, cells, quiet=True)
    assert (s["done"], s["failed"], s["prepare_tasks"]) == (2, 0, 0)  # nothing shared: each cell is one column
    table = ResultsTable(spec.results)
    rows = {r["axes"]["taught"][-1]: r for r in table.rows([c.hash for c in cells])}
    for taught, r in rows.items():
        summary = r["summary"]
        curve = summary["curves"]["untaught crops attacked: still rejected"]
        assert summary["x"] == [0.0, 500.0, 4000.0] and len(curve) == 3 and all(0 <= v <= 1 for v in curve)
        assert [c["check"] for c in summary["checks"]] == [
            "attacked untaught crops still rejected does not rise with d_max (by more than one crop)"]
        column = next(iter(summary["result"]["backbones"].values()))
        untaught = 5 if taught == "duck" else 4  # the rest of SimWorld7's 7 kinds
        assert len(summary["result"]["config"]["untaught"]) == untaught
        assert set(column["ood"]) == {"untaught", "look-alike", "noise", "blank", "textures", "dead-leaves"}
    write_report(spec, cells, table, tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    assert text.count("AUROC / FPR@95 per score (rows) and OOD set (columns):") == 2
    assert "| reject (AUROC / FPR@95) |" in text and "2 done" in text
    table.close()


def test_a_failing_cell_is_recorded_retried_and_resumed(tmp_path, local_ray):
    from icub_guard.sweep.runner import run_sweep

    good, broken = image_folder(tmp_path / "good"), image_folder(tmp_path / "broken", readable=False)
    doc = {"evaluation": "toy", "retries": 1, "axes": {"dataset": [str(good), str(broken)]}}
    spec = spec_of(tmp_path, doc)
    cells = expand(spec)
    s = run_sweep(spec, cells, quiet=True)
    assert (s["done"], s["failed"]) == (1, 1)
    table = ResultsTable(spec.results)
    row = table.rows([cells[1].hash])[0]
    assert row["status"] == "failed" and row["attempts"] == 2  # the first attempt and one retry
    assert "no readable images" in row["error"] and str(broken) in row["error"]
    assert [a["status"] for a in table.attempts(cells[1].hash)] == ["failed", "failed"]
    assert "[failed] cell 1" in "\n".join(status_lines(cells, table))
    write_report(spec, cells, table, tmp_path / "report")
    assert "no readable images" in (tmp_path / "report" / "report.md").read_text()
    table.close()
    image_folder(broken)  # the data is repaired: a re-run runs only the failed cell, and it succeeds
    s2 = run_sweep(spec, cells, quiet=True)
    assert (s2["done"], s2["failed"], s2["skipped_done"]) == (1, 0, 1)
    table = ResultsTable(spec.results)
    assert [a["status"] for a in table.attempts(cells[1].hash)] == ["failed", "failed", "done"]
    table.close()


# ------------------------------------------------------------------ a two-node cluster on this machine (opt-in)

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_node(args: list[str], log: Path) -> subprocess.Popen:
    """`ray start --block` in its own process group: ended by its id (not `ray stop`, which ends every Ray
    process on the machine, another user's too)."""
    return subprocess.Popen([str(Path(PY).with_name("ray")), "start", "--block", "--disable-usage-stats", *args],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "RAY_AUTH_MODE": "disabled"})


def _wait_started(p: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    """Until `ray start` says the node runs (bounded); its log in the failure otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text() if log.exists() else ""
        if "Ray runtime started" in text:
            return
        if p.poll() is not None:
            break
        time.sleep(1)
    raise AssertionError(f"ray start did not come up:\n{log.read_text()[-3000:]}")


def _end(p: subprocess.Popen, sig=15) -> None:
    if p.poll() is None:
        os.killpg(p.pid, sig)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9)
            p.wait(10)


@pytest.mark.skipif(os.environ.get("ICUB_GUARD_CLUSTER_TEST") != "1" or shutil.which("git") is None,
                    reason="minutes: set ICUB_GUARD_CLUSTER_TEST=1 (two `ray start` nodes, one killed mid-sweep)")
def test_cluster_sweep_loses_no_cell_when_a_node_dies(tmp_path):
    port = _free_port()
    address = f"127.0.0.1:{port}"
    ray_tmp = tempfile.mkdtemp(prefix="icg-ray-", dir="/tmp")  # Ray's socket paths must stay under 108 bytes
    common = ["--num-cpus=1", "--node-ip-address=127.0.0.1"]
    head = _ray_node(["--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={ray_tmp}",
                      f"--dashboard-agent-listen-port={_free_port()}", f"--metrics-export-port={_free_port()}",
                      *common], tmp_path / "head.log")
    second = None
    sweep = None
    try:
        _wait_started(head, tmp_path / "head.log")
        second = _ray_node([f"--address={address}", f"--dashboard-agent-listen-port={_free_port()}",
                            f"--metrics-export-port={_free_port()}", *common], tmp_path / "second.log")
        _wait_started(second, tmp_path / "second.log")
        doc = {"evaluation": "evaluate", "retries": 1,
               # cells of tens of seconds: with seconds-long ones the head's warm worker runs them all back to
               # back before the second node's first worker has imported torch
               "fixed": {"n_train": 3, "n_val": 3, "n_test": 2, "d_max": [0, 500, 1000], "steps": 10,
                         "fmn_steps": 20, "backbone": "resnet18", "input_size": 64, "device": "cpu",
                         "ensemble_steps": 0, "binarization": 0, "square_queries": 0, "adaptive": False},
               "axes": {"attack": ["fmn", "algorithm1"], "target_false_reject": [0.05, 0.1, 0.2]}}
        path = tmp_path / "cluster.yaml"
        path.write_text(yaml.safe_dump(doc))
        sweep = subprocess.Popen([PY, "-m", "icub_guard.cli", "-q", "sweep", "run", str(path), "--address", address],
                                 cwd=ROOT, stdout=(tmp_path / "sweep.log").open("w"), stderr=subprocess.STDOUT,
                                 env={**os.environ, "RAY_AUTH_MODE": "disabled"})
        db = tmp_path / "cluster.sqlite"
        deadline = time.monotonic() + 900
        killed_at = None
        while sweep.poll() is None and time.monotonic() < deadline:
            time.sleep(2)
            if killed_at is None and db.exists():
                with sqlite3.connect(db) as con:
                    nodes = [json.loads(m)["ray_node"] for (m,) in con.execute(
                        "SELECT machine FROM cells WHERE status='done' ORDER BY updated")]
                # both nodes have finished a cell, and cells are left: the second node (the one that did not
                # finish first) has taken the next one, and dies under it
                if len(set(nodes)) == 2 and len(nodes) < 5:
                    _end(second, 9)
                    killed_at = len(nodes)
        assert sweep.poll() is not None, "the sweep did not finish in 15 minutes"
        log = (tmp_path / "sweep.log").read_text()
        assert killed_at is not None, f"the second node never finished a cell:\n{log}"
        assert sweep.returncode == 0, log
        with sqlite3.connect(db) as con:
            rows = con.execute("SELECT status, machine FROM cells ORDER BY updated").fetchall()
        assert [r[0] for r in rows] == ["done"] * 6, log
        after = {json.loads(m)["ray_node"] for _, m in rows[killed_at:]}
        assert len(after) == 1, after  # what was left, the lost node's cell too, ran on the one node still alive
    finally:
        for p in (sweep, second, head):
            if p is not None:
                if p is sweep and p.poll() is None:
                    p.kill()
                    p.wait(10)
                elif p is not sweep:
                    _end(p)
        shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.mark.skipif(os.environ.get("ICUB_GUARD_CLUSTER_TEST") != "1",
                    reason="minutes: set ICUB_GUARD_CLUSTER_TEST=1 (a real sweep interrupted with Ctrl-C, resumed)")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_then_the_same_command_resumes(tmp_path, sig):
    doc = {"evaluation": "evaluate", "retries": 0,
           "fixed": {"n_train": 3, "n_val": 3, "n_test": 2, "d_max": [0, 500, 1000], "steps": 10, "fmn_steps": 20,
                     "backbone": "resnet18", "input_size": 64, "device": "cpu", "ensemble_steps": 0,
                     "binarization": 0, "square_queries": 0, "adaptive": False},
           "axes": {"attack": ["fmn", "algorithm1"], "target_false_reject": [0.05, 0.1, 0.2]}}
    path = tmp_path / "ctrlc.yaml"
    path.write_text(yaml.safe_dump(doc))
    db = tmp_path / "ctrlc.sqlite"
    cmd = [PY, "-m", "icub_guard.cli", "-q", "sweep", "run", str(path), "--workers", "2"]
    # SIGINT as a terminal's Ctrl-C sends it (a background parent may have left it ignored)
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 600
    done = 0
    while p.poll() is None and time.monotonic() < deadline and done < 1:
        time.sleep(1)
        if db.exists():
            with sqlite3.connect(db) as con:
                done = con.execute("SELECT COUNT(*) FROM cells WHERE status='done'").fetchone()[0]
    p.send_signal(sig)  # Ctrl-C, or `kill` / `timeout` / a scheduler's SIGTERM: the same clean stop
    out = p.communicate(timeout=120)[0]
    assert p.returncode == 128 + sig and "run the same command again to resume" in out, out
    with sqlite3.connect(db) as con:
        states = dict(con.execute("SELECT status, COUNT(*) FROM cells GROUP BY status").fetchall())
    assert states.get("running", 0) == 0 and 1 <= states.get("done", 0) < 6, states  # none left "running"
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{6 - states['done']} done, 0 failed, {states['done']} already done" in again.stdout
    with sqlite3.connect(db) as con:
        attempts = [n for (n,) in con.execute("SELECT COUNT(*) FROM attempts GROUP BY hash")]
    assert attempts == [1] * 6  # no finished cell ran twice
