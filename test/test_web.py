"""The teacher page's protocol, state and server, without ROS or a browser (test_web_browser.py has both)."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import WSMsgType, WSServerHandshakeError
from aiohttp.test_utils import TestClient, TestServer

from icub_guard.core.errors import InputError
from icub_guard.web.hub import Ack, Answer, HubLimits, RateLimit, Save, SetLearning, TeacherHub, parse_command
from icub_guard.web.server import COOKIE, RequestLog, ServerConfig, ServerThread, TeacherPage, loopback_host

# ---------------------------------------------------------------------------------------- commands


def test_parse_command_accepts_the_page_messages():
    assert parse_command('{"type":"answer","query_id":3,"label":" mug ","teacher":"ana"}', 4096) == \
        Answer("mug", "ana", query_id=3)
    fix = parse_command('{"type":"correct","decision_id":7,"label":"ball","teacher":"ana"}', 4096)
    assert fix.feedback() == {"decision_id": 7, "label": "ball", "teacher": "ana"}
    assert parse_command('{"type":"learning","on":false}', 4096) == SetLearning(False)
    assert parse_command('{"type":"save"}', 4096) == Save()
    assert parse_command('{"type":"ack"}', 4096) == Ack()


@pytest.mark.parametrize("text, why", [
    ('{"type":"answer","query_id":3,"label":"' + "x" * 65 + '","teacher":"ana"}', "at most 64"),
    ('{"type":"answer","query_id":3,"label":"unknown","teacher":"ana"}', "reserved"),
    ('{"type":"answer","query_id":3,"label":"a\\u0000b","teacher":"ana"}', "control"),
    ('{"type":"answer","query_id":3,"label":"mug","teacher":""}', "teacher name"),
    ('{"type":"answer","query_id":-1,"label":"mug","teacher":"ana"}', "query_id"),
    ('{"type":"answer","query_id":1.5,"label":"mug","teacher":"ana"}', "query_id"),
    ('{"type":"answer","label":"mug","teacher":"ana"}', "query_id"),
    ('{"type":"learning","on":"yes"}', "on"),
    ('{"type":"rm -rf"}', "unknown message type"),
    ("[1, 2]", "JSON object"),
    ("not json", "JSON"),
])
def test_parse_command_says_what_is_wrong(text, why):
    with pytest.raises(InputError, match=why):
        parse_command(text, 4096)


def test_parse_command_refuses_binary_and_oversized_messages():
    with pytest.raises(InputError, match="binary"):
        parse_command(b"{}", 4096)
    with pytest.raises(InputError, match="longer than 100 bytes"):
        parse_command('{"type":"save","pad":"' + "é" * 50 + '"}', 100)


def test_rate_limit_allows_a_burst_then_the_rate():
    t = [0.0]
    rl = RateLimit(2.0, 3, clock=lambda: t[0])
    assert [rl.allow() for _ in range(4)] == [True, True, True, False]
    t[0] += 0.5  # one token back
    assert [rl.allow(), rl.allow()] == [True, False]
    with pytest.raises(InputError):
        RateLimit(0.0, 1)


# -------------------------------------------------------------------------------------------- hub


def query(qid: int, sec: int, **kw) -> dict:
    return {"schema": "icub_guard/query@1", "query_id": qid, "decision_id": 100 + qid, "reason": "below_threshold",
            "top": [["mug", 0.1]], "known_classes": ["mug"], "stamp": {"sec": sec, "nanosec": 5}, **kw}


def test_a_question_meets_its_crop_in_either_order():
    hub = TeacherHub()
    c = hub.connect(lambda: None)
    hub.on_crop({"sec": 1, "nanosec": 5}, "data:image/jpeg;base64,AAA")
    hub.on_query(query(1, 1))
    assert hub.questions[1]["image"] == "data:image/jpeg;base64,AAA"
    hub.on_query(query(2, 2))
    assert hub.questions[2]["image"] is None
    hub.on_crop({"sec": 2, "nanosec": 5}, "data:image/jpeg;base64,BBB")
    msgs, _ = hub.next_messages(c)
    assert {"type": "question_image", "query_id": 2, "image": "data:image/jpeg;base64,BBB"} in msgs
    assert hub.questions[2]["image"].endswith("BBB")


def test_an_answer_closes_its_question_and_enters_the_history():
    hub = TeacherHub()
    c = hub.connect(lambda: None)
    hub.on_query(query(4, 4))
    hub.on_feedback({"query_id": 4, "label": "ball", "teacher": "ana"})
    assert 4 not in hub.questions
    msgs, _ = hub.next_messages(c)
    assert {"type": "closed", "query_id": 4, "why": "answered 'ball'"} in msgs
    entry = hub.history[0]
    assert (entry["label"], entry["teacher"], entry["decision_id"]) == ("ball", "ana", 104)


def test_questions_are_bounded_and_expire():
    t = [0.0]
    hub = TeacherHub(HubLimits(questions=3, question_ttl_s=10.0), clock=lambda: t[0])
    for i in range(5):
        hub.on_query(query(i, i))
    assert list(hub.questions) == [2, 3, 4]
    t[0] = 11.0
    hub.on_query(query(9, 9))
    hub.expire()
    assert list(hub.questions) == [9]


def test_history_lists_label_changes_not_every_frame():
    hub = TeacherHub(HubLimits(history=3))
    for i, label in enumerate(["mug", "mug", "mug", "ball", "unknown", "ball"]):
        hub.on_decision({"id": i, "label": label, "accepted": label != "unknown", "scores": {"mug": 0, "ball": 1}})
    assert [(e["label"], e["decision_id"]) for e in hub.history] == [("ball", 5), ("ball", 3), ("mug", 0)]
    assert hub.classes == ["mug", "ball"]


def test_frames_wait_for_the_page_to_acknowledge():
    hub = TeacherHub()
    c = hub.connect(lambda: None)
    hub.on_frame(b"one")
    assert hub.next_messages(c)[1] == b"one"
    hub.on_frame(b"two")
    hub.on_frame(b"three")
    assert hub.next_messages(c)[1] is None  # the page has not shown "one" yet
    c.acked = True
    assert hub.next_messages(c)[1] == b"three"  # the newest; "two" was never queued
    assert hub.next_messages(c)[1] is None


def test_a_slow_page_gets_a_snapshot_instead_of_an_unbounded_queue():
    hub = TeacherHub(HubLimits(queue=4))
    c = hub.connect(lambda: None)
    for i in range(10):
        hub.on_query(query(i, i))
    assert len(c.events) <= 4
    msgs, _ = hub.next_messages(c)
    assert msgs[0]["type"] == "state" and len(msgs[0]["questions"]) == 10


# ----------------------------------------------------------------------------------------- server


class FakeRobot:
    def __init__(self):
        self.sent: list[dict] = []
        self.learning: list[bool] = []
        self.forgotten: list[int] = []

    async def teach(self, body: dict):
        """The guard's teach service: refuses "lie", learns the rest."""
        self.sent.append(body)
        if body["label"] == "lie":
            return False, "refused: suspicion 0.90, contradicted by its neighbours"
        return True, "learned: suspicion 0.10"

    async def set_learning(self, on: bool):
        self.learning.append(on)
        return True, f"learning {'on' if on else 'off'}"

    async def save(self):
        return False, "nothing learned yet"

    async def forget(self, decision_id: int):
        self.forgotten.append(decision_id)
        return (True, "forgot 1 example") if decision_id != 13 else (False, "nothing was learned from decision 13")


def serve(test, **cfg):
    """Run `test(client, robot, page)` against a page served by aiohttp's test server."""
    async def main():
        robot = FakeRobot()
        page = TeacherPage(TeacherHub(), robot, ServerConfig(**{"rate": 5.0, "burst": 3, **cfg}))
        async with TestClient(TestServer(page.app, host="127.0.0.1")) as client:
            page.port = client.port  # the port the test server bound: the Host header must name it
            await test(client, robot, page)
    asyncio.run(main())


async def receive_until(ws, kind: str, n: int = 20) -> dict:
    for _ in range(n):
        msg = await asyncio.wait_for(ws.receive(), 5)
        if msg.type == WSMsgType.TEXT and json.loads(msg.data)["type"] == kind:
            return json.loads(msg.data)
    raise AssertionError(f"no {kind!r} message")


def test_the_page_is_served_from_memory_and_nothing_else_is():
    async def t(client, robot, page):
        r = await client.get("/")
        assert r.status == 200 and "icub_guard teacher" in await r.text()
        assert "default-src 'none'" in r.headers["Content-Security-Policy"]
        assert (await client.get("/app.js")).status == 200
        for path in ("/index.html", "/static/app.js", "/../setup.py", "/%2e%2e/setup.py", "/etc/passwd"):
            assert (await client.get(path)).status == 404, path
        assert (await client.post("/", data=b"x")).status == 405
    serve(t)


def test_on_the_loopback_a_foreign_host_header_is_refused():
    async def t(client, robot, page):
        assert (await client.get("/", headers={"Host": "rebind.example:80"})).status == 403
        assert page.stats["refused_host"] == 1
        p = client.port
        for host in (f"127.attacker.example:{p}", f"127.0.0.1.evil.com:{p}"):  # DNS names that look like it
            assert (await client.get("/", headers={"Host": host})).status == 403, host
            with pytest.raises(WSServerHandshakeError, match="403"):  # its WebSocket, with a matching Origin
                await client.ws_connect("/ws", headers={"Host": host, "Origin": f"http://{host}"})
        assert robot.sent == [] and page.stats["refused_host"] >= 5
        assert (await client.get("/", headers={"Host": f"localhost:{p}"})).status == 200
    serve(t)


@pytest.mark.parametrize("host,ok", [
    ("127.0.0.1:8080", True), ("127.5.6.7:8080", True), ("localhost:8080", True), ("[::1]:8080", True),
    ("127.attacker.example:8080", False), ("127.0.0.1.evil.com:8080", False), ("127.0.0.1:8081", False),
    ("127.0.0.1", False), ("localhost.evil:8080", False), ("127.1:8080", False), ("0x7f000001:8080", False),
    ("[::ffff:127.0.0.1]:8080", False), ("::1:8080", False), ("user@127.0.0.1:8080", False),
    ("127.0.0.1:80a", False), ("[::1:8080", False), ("", False), ("10.0.0.1:8080", False)])
def test_only_loopback_literals_and_localhost_with_the_pages_port_pass(host, ok):
    assert loopback_host(host, 8080) is ok


def test_malformed_requests_are_counted_and_logged_at_most_once_a_second():
    import logging

    now = [0.0]
    stats: dict = __import__("collections").Counter()
    rl = RequestLog(stats, clock=lambda: now[0])
    lines = []
    handler = logging.Handler()
    handler.emit = lines.append
    server_log = logging.getLogger("icub_guard.web.server")
    server_log.addHandler(handler)
    try:
        for i in range(30):
            now[0] = i * 0.1  # 30 bad requests in 3 s
            rl.exception("Error handling request from %s", "1.2.3.4", exc_info=ValueError("bad header"))
    finally:
        server_log.removeHandler(handler)
    assert stats["bad_requests"] == 30 and len(lines) == 3
    assert all(r.exc_info is None for r in lines)  # one line each, no traceback


def test_a_real_server_counts_garbage_requests():
    import socket

    page = TeacherPage(TeacherHub(), FakeRobot(), ServerConfig(port=0))
    thread = ServerThread(page)
    port = thread.start()
    try:
        for garbage in (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: nope\r\n\r\n",
                        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" * 4, b"GET /\x00 HTTP/1.1\r\n\r\n"):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                c.sendall(garbage)
                c.recv(4096)
        assert page.stats["bad_requests"] == 3
    finally:
        thread.stop()


def test_with_a_token_every_request_needs_it():
    async def t(client, robot, page):
        assert (await client.get("/")).status == 403
        assert (await client.get("/?token=wrong-token-1")).status == 403
        assert (await client.get("/app.js", headers={"Authorization": "Bearer secret-token-1"})).status == 200
        r = await client.get("/?token=secret-token-1")
        assert r.status == 200 and r.cookies[COOKIE].value == "secret-token-1"
        assert (await client.get("/app.js")).status == 200  # the cookie now carries it
        client.session.cookie_jar.clear()
        assert (await client.get("/style.css")).status == 403
        assert page.stats["refused_token"] == 3
        with pytest.raises(Exception, match="403"):
            await client.ws_connect("/ws?token=wrong-token-1")
        ws = await client.ws_connect("/ws?token=secret-token-1")
        assert (await receive_until(ws, "hello"))["protocol"] == "icub_guard/teacher-page@1"
        await ws.close()
    serve(t, token="secret-token-1")


def test_bound_beyond_the_loopback_a_token_is_generated():
    cfg = ServerConfig(host="0.0.0.0").with_token()
    assert len(cfg.token) >= 16 and "?token=" in cfg.url()
    assert ServerConfig(host="127.0.0.1").with_token().token == ""
    with pytest.raises(InputError, match="token"):
        ServerConfig(token="short")


def test_a_websocket_from_another_origin_is_refused():
    async def t(client, robot, page):
        with pytest.raises(Exception, match="403"):
            await client.ws_connect("/ws", headers={"Origin": "http://evil.example"})
        assert page.stats["refused_origin"] == 1
        ws = await client.ws_connect("/ws", headers={"Origin": f"http://{client.host}:{client.port}"})
        await ws.close()
    serve(t)


def test_labels_go_to_the_robot_and_bad_ones_come_back_as_errors():
    async def t(client, robot, page):
        ws = await client.ws_connect("/ws")
        state = await receive_until(ws, "state")
        assert state["questions"] == []
        page.hub.on_query({"query_id": 5, "decision_id": 4, "reason": "below_threshold", "top": []})
        page.hub.on_query({"query_id": 6, "decision_id": 5, "reason": "below_threshold", "top": []})
        await ws.send_str(json.dumps({"type": "answer", "query_id": 6, "label": "lie", "teacher": "ana"}))
        refused = await receive_until(ws, "result")  # what the guard answered, with its reason
        assert refused["ok"] is False and "refused: suspicion 0.90" in refused["message"]
        robot.sent.clear()
        await ws.send_str(json.dumps({"type": "answer", "query_id": 5, "label": "mug", "teacher": "ana"}))
        learned = await receive_until(ws, "result")
        assert learned["ok"] is True and "learned" in learned["message"]
        assert robot.sent == [{"query_id": 5, "label": "mug", "teacher": "ana"}]
        await ws.send_str(json.dumps({"type": "answer", "query_id": 5, "label": "m" * 100, "teacher": "ana"}))
        assert "at most 64" in (await receive_until(ws, "error"))["message"]
        await ws.send_str(json.dumps({"type": "learning", "on": False}))
        assert (await receive_until(ws, "result"))["message"] == "learning off"
        assert robot.sent == [{"query_id": 5, "label": "mug", "teacher": "ana"}] and robot.learning == [False]
        assert page.stats["bad_messages"] == 1
        await ws.close()
    serve(t)


def test_actions_are_rate_limited_and_floods_and_huge_messages_disconnect():
    async def t(client, robot, page):
        ws = await client.ws_connect("/ws")
        for _ in range(5):
            await ws.send_str('{"type":"save"}')
        errors = [await receive_until(ws, "error")]
        assert "too fast" in errors[0]["message"] and page.stats["rate_limited"] >= 1
        await ws.send_str('{"type":"save","pad":"' + "x" * 5000 + '"}')
        msg = await asyncio.wait_for(ws.receive(), 5)
        while msg.type == WSMsgType.TEXT:
            msg = await asyncio.wait_for(ws.receive(), 5)
        assert ws.close_code == 1009  # message too big
        ws = await client.ws_connect("/ws")
        for _ in range(200):
            await ws.send_str('{"type":"ack"}')
        msg = await asyncio.wait_for(ws.receive(), 5)
        while msg.type == WSMsgType.TEXT:
            msg = await asyncio.wait_for(ws.receive(), 5)
        assert ws.close_code == 1008 and page.stats["flooded"] == 1
    serve(t, max_messages_per_s=20.0)


def test_a_page_gets_frames_one_at_a_time():
    async def t(client, robot, page):
        ws = await client.ws_connect("/ws")
        await receive_until(ws, "state")
        page.hub.on_frame(b"\xff\xd8one")
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert msg.type == WSMsgType.BINARY and msg.data == b"\xff\xd8one"
        page.hub.on_frame(b"\xff\xd8two")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.receive(), 0.3)  # not acknowledged yet
        await ws.send_str('{"type":"ack"}')
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert msg.data == b"\xff\xd8two"
        await ws.close()
    serve(t)


def test_a_correction_forgets_a_wrong_taught_label_first_and_old_decisions_are_refused():
    async def t(client, robot, page):
        ws = await client.ws_connect("/ws")
        page.hub.on_decision({"id": 100, "label": "unknown", "accepted": False, "scores": {}})
        fix = {"type": "correct", "label": "duck", "teacher": "ana"}
        await ws.send_str(json.dumps({**fix, "decision_id": 90, "forget": True}))
        assert "forgot 1 example" in (await receive_until(ws, "result"))["message"]
        assert robot.forgotten == [90] and robot.sent == [{"decision_id": 90, "label": "duck", "teacher": "ana"}]
        await ws.send_str(json.dumps({**fix, "decision_id": 13, "forget": True}))
        assert "too old to correct" in (await receive_until(ws, "error"))["message"]  # 100 - 13 >= 64
        page.hub.on_decision({"id": 40, "label": "unknown", "accepted": False, "scores": {}})
        await ws.send_str(json.dumps({**fix, "decision_id": 13, "forget": True}))
        assert "nothing was learned" in (await receive_until(ws, "error"))["message"]
        await ws.send_str(json.dumps({**fix, "decision_id": 41}))  # a decision the guard has not made
        assert "too old" in (await receive_until(ws, "error"))["message"]
        assert robot.forgotten == [90, 13] and len(robot.sent) == 1
        await ws.close()
    serve(t, burst=10)
