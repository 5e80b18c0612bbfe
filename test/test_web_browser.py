"""The teacher page in a real browser: camera, guard and web node as processes over rclpy, headless Chromium.

Skipped (with the reason) where Chromium, its driver or Selenium is missing; `make test-browser`
installs Debian's `chromium` and `chromium-driver` and runs this file. With ICUB_GUARD_SCREENSHOT
set, the screenshot of the page goes there (README's picture comes from it); otherwise to tmp.
The tests run in file order on one set of processes (a module fixture), as a teacher would use the page.
"""

from __future__ import annotations

import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import rclpy
from browser import INSTALL_HINT, chromium, find_chromium

from ros_harness import Harness, start_node, stop

if os.environ.get("ICUB_GUARD_REQUIRE_BROWSER"):  # make test-browser: a skip would be a silent pass
    import selenium  # noqa: F401

    assert None not in find_chromium(), f"no Chromium/chromedriver: {INSTALL_HINT}"
pytest.importorskip("selenium", reason=f"selenium is not installed: {INSTALL_HINT}")
if None in find_chromium():
    pytest.skip(f"no Chromium/chromedriver here: {INSTALL_HINT}", allow_module_level=True)

from selenium.common.exceptions import StaleElementReferenceException  # after the skip: selenium may be absent
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

TOKEN = "browser-test-token"
GUARD = {"weights": "random", "input_size": 64, "crop_size": 48, "query_rate_limit": 2.0, "device": "cpu",
         "diagnostics_period": 0.3}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def robot(tmp_path_factory):
    """Camera, guard and teacher page as processes; a harness watching /diagnostics; a browser on the page."""
    d = tmp_path_factory.mktemp("web")
    port = free_port()
    web = {"port": port, "token": TOKEN, "name": "browser", "frame_max_fps": 10.0}
    procs = {"camera": start_node("sim_camera_node", {"rate": 4.0, "switch_period": 2.0}, d / "camera.log"),
             "guard": start_node("guard_node", {**GUARD, "model_path": str(d / "model.npz")}, d / "guard.log"),
             "web": start_node("teacher_web_node", web, d / "web.log")}
    rclpy.init()
    ros = Harness("browser_test_harness")
    driver = None
    try:
        ros.wait_for(lambda: "guard_node: recognition" in ros.diag or any(p.poll() is not None for p in procs.values()),
                     90, "the guard's diagnostics")
        assert all(p.poll() is None for p in procs.values()), f"a node exited; logs in {d}"
        driver = chromium(d / "profile")
        yield {"ros": ros, "driver": driver, "url": f"http://127.0.0.1:{port}/", "procs": procs, "dir": d,
               "web": web}
    finally:
        if driver is not None:
            driver.quit()
        for p in procs.values():
            stop(p)
        ros.destroy_node()
        rclpy.shutdown()


def guard_count(r, key: str) -> int:
    return int(r["ros"].diag.get("guard_node: recognition", {}).get(key, "0"))


def wait(r, predicate, timeout: float, what: str):
    """Until `predicate()` holds, spinning the harness (diagnostics) meanwhile."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if predicate():
                return
        except StaleElementReferenceException:
            pass  # the page re-rendered under us: look again
        r["ros"].spin_for(0.1)
    r["driver"].save_screenshot(str(r["dir"] / "timeout.png"))
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (screenshot in {r['dir']})")


def open_question(r, with_buttons: bool = False):
    """The newest question whose crop has loaded (and, if asked, with class buttons)."""
    def found():
        for q in r["driver"].find_elements(By.CSS_SELECTOR, "#questions .question"):
            img = q.find_element(By.CSS_SELECTOR, "img.crop")
            loaded = r["driver"].execute_script("return arguments[0].complete && arguments[0].naturalWidth", img)
            if loaded and (not with_buttons or q.find_elements(By.CSS_SELECTOR, "button.cls")):
                return q
        return None

    wait(r, lambda: found() is not None, 60, "a question with its image")
    return found()


def test_the_page_connects_and_shows_the_live_view_and_decisions(robot):
    r, drv = robot, robot["driver"]
    drv.get(f"{r['url']}?token={TOKEN}")
    wait(r, lambda: drv.find_element(By.ID, "conn").text == "connected", 20, "the WebSocket")
    wait(r, lambda: drv.execute_script("return document.getElementById('live').naturalWidth") > 0, 20, "a frame")
    wait(r, lambda: drv.find_element(By.ID, "decision").text.startswith("#"), 20, "a decision")
    wait(r, lambda: "learning: on" == drv.find_element(By.ID, "learning").text, 20, "the guard's status")
    first = drv.execute_script("return document.getElementById('live').src")
    wait(r, lambda: drv.execute_script("return document.getElementById('live').src") != first, 10, "the next frame")


def test_answering_a_question_with_a_new_label_teaches_the_guard(robot):
    r, drv = robot, robot["driver"]
    name = drv.find_element(By.ID, "teacher")
    name.clear()
    name.send_keys("browser-ana")
    learned = guard_count(r, "learned")
    q = open_question(r)
    field = q.find_element(By.CSS_SELECTOR, "input[name=label]")
    field.send_keys("red cube", Keys.ENTER)
    wait(r, lambda: guard_count(r, "learned") == learned + 1 and guard_count(r, "classes") == 1, 30,
         "the guard to learn the label")
    wait(r, lambda: "red cube — label from browser-ana" in drv.find_element(By.ID, "history").text, 10,
         "the label in the page's history")
    # the guard's decisions now score the new class, and the page draws its bar
    wait(r, lambda: "red cube" in r["ros"].decisions()[-1]["scores"], 20, "a decision with the new class")
    wait(r, lambda: "red cube" in drv.find_element(By.ID, "scores").text, 10, "the class's score bar")
    assert guard_count(r, "rejected_input.feedback") == 0


def test_clicking_a_class_button_and_pressing_a_digit_answer_questions(robot):
    r, drv = robot, robot["driver"]
    learned = guard_count(r, "learned")
    q = open_question(r, with_buttons=True)
    button = q.find_element(By.CSS_SELECTOR, "button.cls")
    assert button.get_attribute("data-label") == "red cube"
    button.click()
    wait(r, lambda: guard_count(r, "learned") == learned + 1, 30, "the clicked label to be learned")
    open_question(r, with_buttons=True)
    drv.find_element(By.TAG_NAME, "body").send_keys("1")
    wait(r, lambda: guard_count(r, "learned") == learned + 2, 30, "the label of digit 1 to be learned")


def test_that_was_wrong_forgets_a_taught_label_and_teaches_the_right_one(robot):
    r, drv = robot, robot["driver"]
    learned, forgotten = guard_count(r, "learned"), guard_count(r, "forgotten")
    entry = next(li for li in drv.find_elements(By.CSS_SELECTOR, "#history li") if "label from browser-ana" in li.text)
    entry.find_element(By.TAG_NAME, "button").click()
    WebDriverWait(drv, 5).until(lambda d: d.switch_to.alert)
    alert = drv.switch_to.alert
    assert "was taught “red cube”" in alert.text
    alert.send_keys("blue ball")
    alert.accept()
    wait(r, lambda: guard_count(r, "forgotten") == forgotten + 1 and guard_count(r, "learned") == learned + 1, 30,
         "the guard to forget the wrong label and learn the right one")
    wait(r, lambda: guard_count(r, "classes") == 2, 10, "the corrected class")
    wait(r, lambda: "blue ball — label from browser-ana" in drv.find_element(By.ID, "history").text, 10,
         "the correction in the history")


def test_an_overlong_label_shows_an_error_and_teaches_nothing(robot):
    r, drv = robot, robot["driver"]
    learned = guard_count(r, "learned")
    q = open_question(r)
    q.find_element(By.CSS_SELECTOR, "input[name=label]").send_keys("x" * 70, Keys.ENTER)
    msg = drv.find_element(By.ID, "message")
    wait(r, lambda: msg.is_displayed() and "at most 64" in msg.text, 10, "the error in the page")
    assert "error" in msg.get_attribute("class")
    r["ros"].spin_for(1.0)
    assert guard_count(r, "learned") == learned
    q.find_element(By.CSS_SELECTOR, "input[name=label]").clear()


def test_the_learning_switch_and_save_call_the_guard(robot):
    r, drv = robot, robot["driver"]
    drv.find_element(By.ID, "learning").click()
    wait(r, lambda: r["ros"].diag["guard_node: recognition"]["learning"] == "False", 15, "learning off")
    wait(r, lambda: drv.find_element(By.ID, "learning").text == "learning: off", 10, "the switch to show off")
    drv.find_element(By.ID, "learning").click()
    wait(r, lambda: r["ros"].diag["guard_node: recognition"]["learning"] == "True", 15, "learning on")
    drv.find_element(By.ID, "save").click()
    msg = drv.find_element(By.ID, "message")
    wait(r, lambda: msg.is_displayed() and msg.text.startswith("saved ") and "model.npz" in msg.text, 15,
         "the guard's answer to save_model")


def test_screenshot_of_the_page(robot):
    """With a second teacher (an oracle node) beside the page, the guard learns more objects; the page shows it."""
    r, drv = robot, robot["driver"]
    oracle = start_node("teacher_node", {"mode": "oracle", "name": "oracle"}, r["dir"] / "oracle.log")
    try:
        wait(r, lambda: guard_count(r, "classes") >= 4, 120, "the oracle to teach four objects")
    finally:
        stop(oracle)
    wait(r, lambda: "label from oracle" in drv.find_element(By.ID, "history").text, 10, "the oracle's labels")
    open_question(r, with_buttons=True)
    wait(r, lambda: len(drv.find_elements(By.CSS_SELECTOR, "#scores .score")) >= 4, 10, "the score bars")
    path = Path(os.environ.get("ICUB_GUARD_SCREENSHOT") or r["dir"] / "teacher_page.png")
    path.parent.mkdir(parents=True, exist_ok=True)
    assert drv.save_screenshot(str(path)) and path.stat().st_size > 10_000


def test_a_wrong_token_is_refused(robot):
    r, drv = robot, robot["driver"]
    drv.get(f"{r['url']}?token=wrong-token")
    assert "forbidden" in drv.find_element(By.TAG_NAME, "body").text
    with pytest.raises(urllib.error.HTTPError, match="403"):
        urllib.request.urlopen(f"{r['url']}app.js?token=wrong-token", timeout=5)
    with pytest.raises(urllib.error.HTTPError, match="403"):
        urllib.request.urlopen(r["url"], timeout=5)  # none at all
    ok = urllib.request.urlopen(urllib.request.Request(r["url"], headers={"Authorization": f"Bearer {TOKEN}"}),
                                timeout=5)
    assert ok.status == 200
    wait(r, lambda: int(r["ros"].diag.get("teacher_web_node: page", {}).get("refused_token", "0")) >= 3, 5,
         "the refusals in the web node's diagnostics")


def test_the_page_reconnects_after_the_node_restarts(robot):
    r, drv = robot, robot["driver"]
    drv.get(f"{r['url']}?token={TOKEN}")
    wait(r, lambda: drv.find_element(By.ID, "conn").text == "connected", 20, "the WebSocket")
    stop(r["procs"]["web"])
    wait(r, lambda: drv.find_element(By.ID, "conn").text != "connected", 20, "the page to notice")
    r["procs"]["web"] = start_node("teacher_web_node", r["web"], r["dir"] / "web2.log")
    wait(r, lambda: drv.find_element(By.ID, "conn").text == "connected", 40, "the page to reconnect")
    wait(r, lambda: drv.execute_script("return document.getElementById('live').naturalWidth") > 0, 20, "frames again")
    wait(r, lambda: "red cube" in drv.find_element(By.ID, "scores").text, 20, "the guard's classes again")
