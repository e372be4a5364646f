"""A participant ("busi") for the dtmcli-py cases: standard library http.server in a thread.

Routes (query string from dtx: gid, trans_type, branch_id, op):
  /api/busi/<name>            records the call, answers as programmed (SUCCESS by default)
  /api/barrier/<name>         TransOut / TransOutRevert / TransIn / TransInRevert moving money in
                              MariaDB through dtmcli's BranchBarrier.call
  /api/msg/QueryPrepared      the msg check-back: BranchBarrier.query_prepared
Answers follow dtm's convention: 200 SUCCESS, 409 FAILURE, 425 ONGOING, 500 anything else.
"""

import json
import os
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pymysql
from dtmcli import barrier, utils

MYSQL_URL = os.environ.get("DTX_TEST_MYSQL_URL", "").strip() or "mysql://root@127.0.0.1:3306/dtx_test"

RESPONSES = {
    "SUCCESS": (200, {"dtm_result": "SUCCESS"}),
    "FAILURE": (409, {"dtm_result": "FAILURE", "message": "programmed failure"}),
    "ONGOING": (425, {"dtm_result": "ONGOING"}),
    "ERROR": (500, {"message": "programmed error"}),
}


def mysql_connect():
    u = urllib.parse.urlparse(MYSQL_URL)
    return pymysql.connect(
        host=u.hostname or "127.0.0.1",
        port=u.port or 3306,
        user=urllib.parse.unquote(u.username or "root"),
        password=urllib.parse.unquote(u.password or ""),
        database=(u.path or "/dtx_test").lstrip("/"),
        autocommit=False,
    )


class Busi:
    def __init__(self):
        self.lock = threading.Lock()
        self.calls = []  # dicts: name, op, gid, branch_id, method, body, note
        self.program = {}  # gid/name -> list of outcomes; the last one sticks
        self.server = None
        self.url = ""

    def set_outcomes(self, gid, name, *outcomes):
        with self.lock:
            self.program[gid + "/" + name] = list(outcomes)

    def next_outcome(self, gid, name):
        with self.lock:
            q = self.program.get(gid + "/" + name) or ["SUCCESS"]
            if len(q) > 1:
                self.program[gid + "/" + name] = q[1:]
            return q[0]

    def record(self, call):
        with self.lock:
            self.calls.append(call)

    def calls_of(self, gid):
        with self.lock:
            return ["%s:%s" % (c["name"], c["op"]) for c in self.calls if c["gid"] == gid]

    def full_calls_of(self, gid):
        with self.lock:
            return [dict(c) for c in self.calls if c["gid"] == gid]

    def start(self):
        busi = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                self.handle_any()

            def do_POST(self):
                self.handle_any()

            def answer(self, outcome):
                status, body = RESPONSES[outcome]
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def handle_any(self):
                parsed = urllib.parse.urlparse(self.path)
                q = {k: v[0] for k, v in urllib.parse.parse_qs(parsed.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                parts = parsed.path.split("/")
                kind, name = (parts[2], parts[3]) if len(parts) >= 4 else ("", "")
                call = {"name": name, "op": q.get("op", ""), "gid": q.get("gid", ""), "branch_id": q.get("branch_id", ""),
                        "method": self.command, "body": body, "note": ""}
                try:
                    if kind == "busi":
                        outcome = busi.next_outcome(call["gid"], name)
                    elif kind == "barrier":
                        outcome = busi.barrier_branch(q, name, body, call)
                    elif kind == "msg" and name == "QueryPrepared":
                        outcome = busi.query_prepared(q, call)
                    else:
                        outcome = "ERROR"
                except utils.DTMFailureError as e:
                    call["note"] = "failure: %s" % e
                    outcome = "FAILURE"
                except Exception as e:  # noqa: BLE001 - any other error is a 500, dtx retries
                    call["note"] = "error: %s" % e
                    outcome = "ERROR"
                if not call["note"]:
                    call["note"] = outcome
                busi.record(call)
                self.answer(outcome)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()

    # dtm's barrier as dtmcli-py documents it: BranchBarrier(trans_type, gid, branch_id, op).call(cursor, busi)
    def barrier_branch(self, q, name, body, call):
        req = json.loads(body or "{}")
        delta = {"TransOut": -1, "TransOutRevert": 1, "TransIn": 1, "TransInRevert": -1}[name] * int(req.get("amount", 0))
        bb = barrier.BranchBarrier(q["trans_type"], q["gid"], q["branch_id"], q["op"])
        ran = []

        def busi_call(cursor):
            ran.append(True)
            utils.sqlexec(cursor, "update compat_account set balance = balance + %d where id = '%s'" % (delta, req["user"]))

        conn = mysql_connect()
        try:
            with conn.cursor() as cursor:
                bb.call(cursor, busi_call)
        finally:
            conn.close()
        call["note"] = "busi" if ran else "skipped"
        return "SUCCESS"

    def query_prepared(self, q, call):
        bb = barrier.BranchBarrier(q["trans_type"], q["gid"], q["branch_id"], q["op"])
        conn = mysql_connect()
        try:
            with conn.cursor() as cursor:
                bb.query_prepared(cursor)  # raises DTMFailureError when the sender's transaction never committed
        finally:
            conn.close()
        return "SUCCESS"
