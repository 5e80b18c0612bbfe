"""The command line: train a model file, and the in-process teaching demo."""

import json

from icub_guard.cli import main
from icub_guard.core import Recognizer

SMALL = ["--weights", "random", "--input-size", "64", "--device", "cpu"]


def test_train_writes_a_loadable_calibrated_model(tmp_path, capsys):
    out = tmp_path / "m.npz"
    assert main(["-q", "train", *SMALL, "--n-per-class", "6", "--classifier", "svm-adv", "--out", str(out)]) == 0
    assert "model saved" in capsys.readouterr().out
    rec = Recognizer.load(out, device="cpu")
    assert len(rec.classes) == 7 and rec.classifier.reject
    assert (rec.classifier.thresholds_ >= 0).all() and rec.classifier.thresholds_.any()


def test_demo_in_process_teaches_every_object(tmp_path, capsys):
    summary = tmp_path / "s.json"
    assert main(["-q", "demo", "--in-process", *SMALL, "--rounds", "2", "--frames-per-object", "3",
                 "--test-per-class", "3", "--json", str(summary)]) == 0
    out = capsys.readouterr().out
    assert "held-out simworld7 test" in out
    s = json.loads(summary.read_text())
    assert s["teaching"]["rounds"][-1]["classes"] == 7
    assert s["teaching"]["total"]["queries"] + s["teaching"]["total"]["corrections"] >= 7


def test_bad_configuration_is_a_clear_error(capsys, tmp_path):
    """Checked on stderr, not through caplog: under launch_testing's pytest plugin (colcon test) new loggers
    do not propagate, and caplog saw nothing."""
    assert main(["train", "--weights", "/no/such/file.pth", "--out", str(tmp_path / "x.npz")]) == 2
    assert "weights must be" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()
    assert main(["demo", "--in-process", "--defences", "nope"]) == 2  # not a traceback
    assert "--defences: unknown defence 'nope'" in capsys.readouterr().err


def test_demo_with_the_web_teacher_serves_the_page_and_prints_its_url(tmp_path, capsys):
    """`icub-guard demo --teacher web`: the page instead of the oracle, its URL printed, the page served."""
    import socket
    import threading
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pages: list[str] = []

    def fetch():
        end = time.monotonic() + 120
        while time.monotonic() < end and not pages:
            try:
                pages.append(urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read().decode())
            except OSError:
                time.sleep(0.5)

    t = threading.Thread(target=fetch, daemon=True)
    t.start()
    assert main(["-q", "demo", *SMALL[:4], "--teacher", "web", "--web-port", str(port), "--duration", "3",
                 "--attack-fraction", "0", "--workdir", str(tmp_path)]) == 0
    t.join(5)
    assert f"open the teacher page: http://127.0.0.1:{port}/" in capsys.readouterr().out
    assert pages and "icub_guard teacher" in pages[0]
    logs = {p.name for p in (tmp_path / "logs").iterdir()}
    assert "teacher_web_node.log" in logs and "teacher_node.log" not in logs
