"""A participant ("busi") for the dtmcli-py cases: standard library http.server in a thread.

Routes (query string from dtx: gid, trans_type, branch_id, op):
  /api/busi/<name>            records the call, answers as programmed (SUCCESS by default)
  /api/barrier/<name>         TransOut / TransOutRevert / TransIn / TransInRevert moving money in
                              MariaDB through dtmcli's BranchBarrier.call
  /api/msg/QueryPrepared      the msg check-back: BranchBarrier.query_prepared
  /api/xa/<name>              TransOut / TransIn as MariaDB XA branches through PyMySQL (dtmcli 1.7.7.0
                              has no XA helpers; this is dtm's XaLocalTransaction written out):
                              op=action runs the local branch, op=commit / op=rollback is phase 2
Answers follow dtm's convention: 200 SUCCESS, 409 FAILURE, 425 ONGOING, 500 anything else.
"""

import json
import os
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pymysql
from dtmcli import barrier, dtmimp, utils

MYSQL_URL = os.environ.get("DTX_TEST_MYSQL_URL", "").strip() or "mysql://root@127.0.0.1:3306/dtx_test"

RESPONSES = {
    "SUCCESS": (200, {"dtm_result": "SUCCESS"}),
    "FAILURE": (409, {"dtm_result": "FAILURE", "message": "programmed failure"}),
    "ONGOING": (425, {"dtm_result": "ONGOING"}),
    "ERROR": (500, {"message": "programmed error"}),
}


def mysql_connect(autocommit=False):
    u = urllib.parse.urlparse(MYSQL_URL)
    return pymysql.connect(
        host=u.hostname or "127.0.0.1",
        port=u.port or 3306,
        user=urllib.parse.unquote(u.username or "root"),
        password=urllib.parse.unquote(u.password or ""),
        database=(u.path or "/dtx_test").lstrip("/"),
        autocommit=autocommit,
    )


def xa_recovered(prefix=""):
    """The XIDs `XA RECOVER` lists (prepared XA transactions), those starting with prefix."""
    conn = mysql_connect(autocommit=True)
    try:
        with conn.cursor() as c:
            c.execute("XA RECOVER")
            xids = [r[3].decode() if isinstance(r[3], bytes) else r[3] for r in c.fetchall()]
    finally:
        conn.close()
    return [x for x in xids if x.startswith(prefix)]


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
                    elif kind == "xa" and q.get("op") in ("commit", "rollback"):
                        outcome = busi.xa_phase2(q, call)
                    elif kind == "xa":
                        outcome = busi.xa_local(q, name, body, call)
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

    # ------------------------------------------------------------ XA (docs/protocol.md#xa and docs/protocol.md#xa-barrier)
    # dtm's XaLocalTransaction, by hand: XA START 'gid-branch', the xa barrier, the business SQL and
    # its check, registerBranch {url: phase2_url} with dtx, XA END, XA PREPARE. Any error before
    # the prepare: XA END + XA ROLLBACK, and the branch answers FAILURE (409) or ERROR (500).
    def xa_local(self, q, name, body, call):
        req = json.loads(body or "{}")
        delta = {"TransOut": -1, "TransIn": 1}[name] * int(req.get("amount", 0))
        gid, branch_id = q["gid"], q["branch_id"]
        xid = "%s-%s" % (gid, branch_id)
        conn = mysql_connect()
        prepared = False
        try:
            with conn.cursor() as c:
                c.execute("XA START %s", (xid,))
                try:
                    # A phase-2 rollback that came first left (xa, gid, branch, action, 01, rollback):
                    # then this late action must not prepare (the barrier's "suspension" case).
                    if barrier.insert_barrier(c, "xa", gid, branch_id, "action", "01", "action") == 0:
                        raise utils.DTMFailureError("xa branch %s already rolled back" % xid)
                    # The business check: the account exists and its balance stays >= 0.
                    if c.execute("update compat_account set balance = balance + %s where id = %s and balance + %s >= 0",
                                 (delta, req["user"], delta)) != 1:
                        raise utils.DTMFailureError("balance check failed: account %s, change %d" % (req["user"], delta))
                    dtmimp.trans_call_dtm(q["dtm"], {"gid": gid, "trans_type": "xa", "branch_id": branch_id,
                                                     "url": q["phase2_url"]}, "registerBranch", 10)
                    c.execute("XA END %s", (xid,))
                except BaseException:
                    try:
                        c.execute("XA END %s", (xid,))
                        c.execute("XA ROLLBACK %s", (xid,))
                    except pymysql.MySQLError:
                        pass  # closing the session rolls back an XA transaction that is not prepared
                    raise
                c.execute("XA PREPARE %s", (xid,))
                prepared = True
                c.execute("select connection_id()")
                session = c.fetchone()[0]
        finally:
            conn.close()
        if prepared:
            # On MariaDB a prepared XA transaction stays attached to its session: another session's
            # XA COMMIT answers XAER_NOTA until the server has ended this one. Wait for that.
            wait_session_gone(session)
        call["note"] = "prepared %s" % xid
        return "SUCCESS"

    # Phase 2, from dtx: POST <phase2_url>?gid&branch_id&trans_type=xa&op=commit|rollback.
    def xa_phase2(self, q, call):
        gid, branch_id, op = q["gid"], q["branch_id"], q["op"]
        xid = "%s-%s" % (gid, branch_id)
        conn = mysql_connect(autocommit=True)  # XA COMMIT/ROLLBACK need a session with no transaction
        try:
            with conn.cursor() as c:
                try:
                    c.execute({"commit": "XA COMMIT %s", "rollback": "XA ROLLBACK %s"}[op], (xid,))
                    call["note"] = "%s %s" % (op, xid)
                except pymysql.MySQLError as e:
                    if "XAER_NOTA" not in str(e) and "does not exist" not in str(e):
                        raise
                    # Unknown XID: done before (a retry), or never prepared. Not if it is still listed
                    # as prepared (attached to a session that has not ended): then retry later.
                    if xid in xa_recovered(xid):
                        raise Exception("xa %s is prepared but still attached to its session" % xid)
                    call["note"] = "%s %s: unknown xid, done" % (op, xid)
                if op == "rollback":
                    # After XA ROLLBACK: an action arriving late finds this row and does not prepare.
                    barrier.insert_barrier(c, "xa", gid, branch_id, "action", "01", "rollback")
        finally:
            conn.close()
        return "SUCCESS"


def wait_session_gone(session_id, timeout=10):
    conn = mysql_connect(autocommit=True)
    try:
        deadline = time.time() + timeout
        with conn.cursor() as c:
            while c.execute("select 1 from information_schema.processlist where id = %s", (session_id,)):
                if time.time() > deadline:
                    raise Exception("MariaDB session %s did not end" % session_id)
                time.sleep(0.002)
    finally:
        conn.close()
