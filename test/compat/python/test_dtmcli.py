"""dtm's Python client (PyPI dtmcli) against a running dtx.

Env: DTX_HTTP_URL (required, dtx with DTX_TEST_CONTROL=1), DTX_TEST_MYSQL_URL (default
mysql://root@127.0.0.1:3306/dtx_test). Each case checks what dtmcli returned or raised, dtx's
/api/dtmsvr/query, and the participant's calls and database.

dtmcli 1.7.7.0 has saga, msg (with the barrier and DoAndSubmit), TCC and the MySQL barrier; it
has no XA helpers. The XA cases do what a Python team using dtm would: the application drives the
global transaction with dtmcli's HTTP helper (dtmimp.trans_call_dtm: prepare, submit, abort) and
calls each branch the way dtm's XaGlobalTransaction does; the participant runs MariaDB XA through
PyMySQL (participant.py, /api/xa/<name>).
"""

import os
import random
import string
import time

import pytest
import requests
from dtmcli import barrier, dtmimp, msg, saga, tcc, utils

from participant import Busi, mysql_connect, xa_recovered

DTX = os.environ.get("DTX_HTTP_URL", "").rstrip("/")
DTM = DTX + "/api/dtmsvr"
RUN = "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(6))

MYSQL_BARRIER_DDL = [
    "create database if not exists dtm_barrier /*!40100 DEFAULT CHARACTER SET utf8mb4 */",
    """create table if not exists dtm_barrier.barrier(
  id bigint(22) PRIMARY KEY AUTO_INCREMENT,
  trans_type varchar(45) default '',
  gid varchar(128) default '',
  branch_id varchar(128) default '',
  op varchar(45) default '',
  barrier_id varchar(45) default '',
  reason varchar(45) default '' comment 'the branch type who insert this record',
  create_time datetime DEFAULT now(),
  update_time datetime DEFAULT now(),
  key(create_time),
  key(update_time),
  UNIQUE key(gid, branch_id, op, barrier_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4""",
    "create table if not exists compat_account(id varchar(128) primary key, balance int not null) ENGINE = InnoDB",
]


@pytest.fixture(scope="session")
def busi():
    assert DTX, "DTX_HTTP_URL is not set: start dtx (DTX_TEST_CONTROL=1) and pass its URL"
    conn = mysql_connect()
    try:
        with conn.cursor() as c:
            for stmt in MYSQL_BARRIER_DDL:
                c.execute(stmt)
        conn.commit()
    finally:
        conn.close()
    b = Busi().start()
    yield b
    b.stop()
    # dtmcli hard-codes its barrier table, shared by every run: take this run's rows out of it.
    conn = mysql_connect()
    try:
        with conn.cursor() as c:
            c.execute("delete from dtm_barrier.barrier where gid like %s", ("py-%s-%%" % RUN,))
        conn.commit()
    finally:
        conn.close()


def new_gid(name):
    return "py-%s-%s" % (RUN, name)


# ---------------------------------------------------------------- dtx and database helpers

def query(gid):
    r = requests.get(DTM + "/query", params={"gid": gid}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def status(gid):
    t = query(gid)["transaction"]
    return t and t["status"]


def branches(gid):
    return ["%s %s %s" % (b["branch_id"], b["op"], b["status"]) for b in query(gid)["branches"]]


def cron(advance_ms=0):
    r = requests.post(DTX + "/api/dtx/test/cron", json={"advanceMs": advance_ms}, timeout=60)
    assert r.status_code == 200, "test cron: %d %s (dtx needs DTX_TEST_CONTROL=1)" % (r.status_code, r.text)


def settle():
    r = requests.post(DTX + "/api/dtx/test/settle", json={}, timeout=60)
    assert r.status_code == 200, r.text


def wait_status(gid, want, timeout=15):
    deadline = time.time() + timeout
    got = None
    while time.time() < deadline:
        settle()
        got = status(gid)
        if got == want:
            return
        time.sleep(0.05)
    raise AssertionError("trans %s: status %r, want %r; %s" % (gid, got, want, query(gid)))


def sql(stmt, *args):
    conn = mysql_connect()
    try:
        with conn.cursor() as c:
            c.execute(stmt, args)
            rows = c.fetchall()
        conn.commit()
        return rows
    finally:
        conn.close()


def accounts(**balances):
    for k, v in balances.items():
        sql("insert into compat_account(id, balance) values(%s, %s)", k, v)


def balance(account):
    return sql("select balance from compat_account where id = %s", account)[0][0]


def barrier_rows(gid):
    rows = sql("select branch_id, op, barrier_id, reason from dtm_barrier.barrier where gid = %s order by id", gid)
    return ["/".join(r) for r in rows]


# ---------------------------------------------------------------- cases

def test_new_gid(busi):
    gid = utils.gen_gid(DTM)
    assert isinstance(gid, str) and len(gid) > 0


def two_step_saga(busi, gid):
    body = {"user": gid, "amount": 30}
    return (saga.Saga(DTM, gid)
            .add(body, busi.url + "/api/busi/TransOut", busi.url + "/api/busi/TransOutRevert")
            .add(body, busi.url + "/api/busi/TransIn", busi.url + "/api/busi/TransInRevert"))


def test_saga_success(busi):
    gid = new_gid("saga-ok")
    s = two_step_saga(busi, gid)
    s.trans_base.wait_result = True
    s.submit()
    assert status(gid) == "succeed"
    assert branches(gid) == ["01 compensate prepared", "01 action succeed", "02 compensate prepared", "02 action succeed"]
    assert busi.calls_of(gid) == ["TransOut:action", "TransIn:action"]
    first = busi.full_calls_of(gid)[0]
    assert first["method"] == "POST" and first["body"] == '{"user": "%s", "amount": 30}' % gid


def test_saga_failure(busi):
    gid = new_gid("saga-fail")
    busi.set_outcomes(gid, "TransIn", "FAILURE")
    s = two_step_saga(busi, gid)
    s.trans_base.wait_result = True
    with pytest.raises(utils.DTMFailureError):  # dtm answers the wait_result submit with 409
        s.submit()
    assert status(gid) == "failed"
    assert branches(gid) == ["01 compensate succeed", "01 action succeed", "02 compensate succeed", "02 action failed"]
    assert busi.calls_of(gid) == ["TransOut:action", "TransIn:action", "TransInRevert:compensate", "TransOutRevert:compensate"]


def test_saga_failure_async(busi):
    gid = new_gid("saga-fail-async")
    busi.set_outcomes(gid, "TransIn", "FAILURE")
    two_step_saga(busi, gid).submit()
    wait_status(gid, "failed")
    assert busi.calls_of(gid) == ["TransOut:action", "TransIn:action", "TransInRevert:compensate", "TransOutRevert:compensate"]


def test_saga_barrier(busi):
    gid = new_gid("saga-bar")
    out, inn = gid + "-out", gid + "-in"
    accounts(**{out: 100, inn: 0})
    s = (saga.Saga(DTM, gid)
         .add({"user": out, "amount": 30}, busi.url + "/api/barrier/TransOut", busi.url + "/api/barrier/TransOutRevert")
         .add({"user": inn, "amount": 30}, busi.url + "/api/barrier/TransIn", busi.url + "/api/barrier/TransInRevert"))
    s.trans_base.wait_result = True
    s.submit()
    assert status(gid) == "succeed"
    assert (balance(out), balance(inn)) == (70, 30)
    assert barrier_rows(gid) == ["01/action/01/action", "02/action/01/action"]


def test_msg_prepare_submit(busi):
    gid = new_gid("msg-ps")
    body = {"user": gid, "amount": 30}
    m = msg.Msg(DTM, gid).add(body, busi.url + "/api/busi/TransOut").add(body, busi.url + "/api/busi/TransIn")
    m.prepare(busi.url + "/api/msg/QueryPrepared")
    assert status(gid) == "prepared"
    assert busi.calls_of(gid) == []
    m.submit()
    wait_status(gid, "succeed")
    assert busi.calls_of(gid) == ["TransOut:action", "TransIn:action"]


def test_msg_do_and_submit_db(busi):
    gid = new_gid("msg-do")
    out, inn = gid + "-out", gid + "-in"
    accounts(**{out: 100, inn: 0})
    m = msg.Msg(DTM, gid).add({"user": inn, "amount": 30}, busi.url + "/api/barrier/TransIn")
    conn = mysql_connect()
    try:
        with conn.cursor() as cursor:
            m.do_and_submit_db(busi.url + "/api/msg/QueryPrepared", cursor,
                               lambda c: utils.sqlexec(c, "update compat_account set balance = balance - 30 where id = '%s'" % out))
    finally:
        conn.close()
    wait_status(gid, "succeed")
    assert (balance(out), balance(inn)) == (70, 30)
    assert barrier_rows(gid) == ["00/msg/01/msg", "01/action/01/action"]
    assert busi.calls_of(gid) == ["TransIn:action"]


def test_msg_check_back_after_sender_crash(busi):
    """Prepared, local transaction committed, sender gone before submit: dtx checks back and delivers."""
    gid = new_gid("msg-crash-ok")
    m = msg.Msg(DTM, gid).add({"user": gid, "amount": 30}, busi.url + "/api/busi/TransIn")
    m.trans_base.timeout_to_fail = 5
    m.prepare(busi.url + "/api/msg/QueryPrepared")
    bb = barrier.BranchBarrier("msg", gid, "00", "msg")
    conn = mysql_connect()
    try:
        with conn.cursor() as cursor:
            bb.call(cursor, lambda c: None)
    finally:
        conn.close()
    cron(1000)
    assert status(gid) == "prepared"
    cron(5000)
    wait_status(gid, "succeed")
    assert busi.calls_of(gid) == ["QueryPrepared:msg", "TransIn:action"]
    assert busi.full_calls_of(gid)[0]["branch_id"] == "00"


def test_msg_check_back_rollback(busi):
    """Prepared, sender gone before its local transaction committed: the check-back answers FAILURE."""
    gid = new_gid("msg-crash-rb")
    m = msg.Msg(DTM, gid).add({"user": gid, "amount": 30}, busi.url + "/api/busi/TransIn")
    m.trans_base.timeout_to_fail = 5
    m.prepare(busi.url + "/api/msg/QueryPrepared")
    cron(6000)
    wait_status(gid, "failed")
    assert busi.calls_of(gid) == ["QueryPrepared:msg"]
    assert barrier_rows(gid) == ["00/msg/01/rollback"]


def tcc_two_branches(busi, gid):
    body = {"user": gid, "amount": 30}
    u = busi.url + "/api/busi/"

    def cb(t):
        t.call_branch(body, u + "TransOutTry", u + "TransOutConfirm", u + "TransOutCancel")
        t.call_branch(body, u + "TransInTry", u + "TransInConfirm", u + "TransInCancel")

    return tcc.tcc_global_transaction(DTM, gid, cb)


def test_tcc_success(busi):
    gid = new_gid("tcc-ok")
    assert tcc_two_branches(busi, gid) == gid
    wait_status(gid, "succeed")
    assert branches(gid) == ["01 cancel prepared", "01 confirm succeed", "02 cancel prepared", "02 confirm succeed"]
    assert busi.calls_of(gid) == ["TransOutTry:try", "TransInTry:try", "TransInConfirm:confirm", "TransOutConfirm:confirm"]


def test_tcc_try_failure(busi):
    gid = new_gid("tcc-fail")
    busi.set_outcomes(gid, "TransInTry", "FAILURE")
    # dtmcli-py's tcc_global_transaction aborts and returns "" instead of raising
    assert tcc_two_branches(busi, gid) == ""
    wait_status(gid, "failed")
    assert branches(gid) == ["01 cancel succeed", "01 confirm prepared", "02 cancel succeed", "02 confirm prepared"]
    assert busi.calls_of(gid) == ["TransOutTry:try", "TransInTry:try", "TransInCancel:cancel", "TransOutCancel:cancel"]


def test_msg_wait_result_ongoing(busi):
    """A wait_result submit whose branch answers ONGOING: dtm processes once, finds the msg still
    submitted and answers 409 "wait result not return success", which dtmcli-py raises as
    DTMFailureError although the msg is delivered later. dtx answers 425 ONGOING (deviation D11,
    docs/deviations.md), which dtmcli-py raises as a plain error, never as DTMFailureError."""
    gid = new_gid("msg-wr-ongoing")
    busi.set_outcomes(gid, "TransIn", "ONGOING", "SUCCESS")
    m = msg.Msg(DTM, gid).add({"user": gid, "amount": 30}, busi.url + "/api/busi/TransIn")
    m.set_wait_result()
    with pytest.raises(Exception) as raised:
        m.submit()
    assert not isinstance(raised.value, utils.DTMFailureError)
    assert status(gid) == "submitted"
    cron(5000)
    wait_status(gid, "succeed")
    assert busi.calls_of(gid) == ["TransIn:action", "TransIn:action"]


# ---------------------------------------------------------------- XA (no dtmcli helpers in 1.7.7.0)

class Xa:
    """The application's side of dtm's XA (docs/protocol.md#xa and docs/protocol.md#what-clients-send), as Go's dtmcli.Xa does it."""

    def __init__(self, dtm, gid):
        self.dtm = dtm
        self.gid = gid
        self.id_generator = utils.IdGenerator()

    def call_branch(self, body, url):
        branch_id = self.id_generator.new_branch_id()
        r = requests.post(url, json=body, timeout=10, params={
            "dtm": self.dtm, "gid": self.gid, "trans_type": "xa", "branch_id": branch_id, "op": "action",
            "phase2_url": url,
        })
        utils.check_result(r)  # 409 -> DTMFailureError
        return r


def xa_global_transaction(dtm, gid, xa_cb):
    """prepare, the branches, then submit; abort (with the error as rollback_reason) and re-raise
    when a branch fails, like Go's dtmcli.XaGlobalTransaction."""
    tbody = {"gid": gid, "trans_type": "xa"}
    dtmimp.trans_call_dtm(dtm, tbody, "prepare", 10)
    try:
        xa_cb(Xa(dtm, gid))
    except Exception as e:
        dtmimp.trans_call_dtm(dtm, dict(tbody, rollback_reason=str(e)), "abort", 10)
        raise
    dtmimp.trans_call_dtm(dtm, tbody, "submit", 10)
    return gid


def xa_transfer(busi, gid, *steps):
    """One XA branch per (name, user, amount), in order."""
    def cb(xa):
        for name, user, amount in steps:
            xa.call_branch({"user": user, "amount": amount}, busi.url + "/api/xa/" + name)

    return xa_global_transaction(DTM, gid, cb)


def test_xa_commit(busi):
    """Two MariaDB XA branches prepared through PyMySQL; the application submits, dtx commits both."""
    gid = new_gid("xa-ok")
    out, inn = gid + "-out", gid + "-in"
    accounts(**{out: 100, inn: 0})
    assert xa_transfer(busi, gid, ("TransOut", out, 30), ("TransIn", inn, 30)) == gid
    wait_status(gid, "succeed")
    assert branches(gid) == ["01 rollback prepared", "01 commit succeed", "02 rollback prepared", "02 commit succeed"]
    assert busi.calls_of(gid) == ["TransOut:action", "TransIn:action", "TransOut:commit", "TransIn:commit"]
    notes = [c["note"] for c in busi.full_calls_of(gid)]
    assert notes == ["prepared %s-01" % gid, "prepared %s-02" % gid, "commit %s-01" % gid, "commit %s-02" % gid]
    phase2 = busi.full_calls_of(gid)[2]
    assert (phase2["method"], phase2["body"]) == ("POST", "")
    assert (balance(out), balance(inn)) == (70, 30)
    assert xa_recovered(gid) == []
    assert barrier_rows(gid) == ["01/action/01/action", "02/action/01/action"]


def test_xa_rollback(busi):
    """The second branch's business check fails (the account would go below zero): its local XA
    rolls back and it answers 409, the application aborts, dtx rolls back the first branch's
    prepared XA transaction. No money moves."""
    gid = new_gid("xa-rb")
    out, inn = gid + "-out", gid + "-in"
    accounts(**{out: 10, inn: 0})
    with pytest.raises(utils.DTMFailureError):
        xa_transfer(busi, gid, ("TransIn", inn, 30), ("TransOut", out, 30))
    wait_status(gid, "failed")
    assert branches(gid) == ["01 rollback succeed", "01 commit prepared"]
    assert busi.calls_of(gid) == ["TransIn:action", "TransOut:action", "TransIn:rollback"]
    notes = [c["note"] for c in busi.full_calls_of(gid)]
    assert notes[0] == "prepared %s-01" % gid and notes[2] == "rollback %s-01" % gid
    assert notes[1].startswith("failure: balance check failed"), notes[1]
    assert "FAILURE" in query(gid)["transaction"]["rollback_reason"]
    assert (balance(out), balance(inn)) == (10, 0)
    assert xa_recovered(gid) == []
    assert barrier_rows(gid) == ["01/action/01/rollback"]
