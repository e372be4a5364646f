package compat

import (
	"context"
	"database/sql"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dtm-labs/client/dtmcli"
	"github.com/dtm-labs/client/dtmcli/dtmimp"
	"github.com/dtm-labs/client/workflow"
	"github.com/go-resty/resty/v2"
)

// dtmcli.MustGenGid asks dtx's newGid.
func TestMustGenGid(t *testing.T) {
	a, b := dtmcli.MustGenGid(dtmServer), dtmcli.MustGenGid(dtmServer)
	if a == "" || a == b {
		t.Fatalf("MustGenGid: %q then %q, want two different gids", a, b)
	}
}

// The Go client speaking JSON-RPC to dtx (Protocol json-rpc, dtm URL .../api/json-rpc).
func TestSagaJsonRpc(t *testing.T) {
	gid := newGid("saga-jrpc")
	saga := dtmcli.NewSaga(dtxURL+"/api/json-rpc", gid).
		Add(busiUrl("TransOut"), busiUrl("TransOutRevert"), &busiReq{Amount: 30}).
		Add(busiUrl("TransIn"), busiUrl("TransInRevert"), &busiReq{Amount: 30})
	saga.Protocol = dtmimp.Jrpc
	saga.WaitResult = true
	expectNoErr(t, "saga.Submit over JSON-RPC", saga.Submit())
	expectStatus(t, gid, dtmcli.StatusSucceed)
	expectCalls(t, gid, "TransOut:action", "TransIn:action")
	if q := query(t, gid); q.Transaction == nil || q.Transaction.Protocol != dtmimp.Jrpc {
		t.Errorf("protocol: %s", mustJSON(q.Transaction))
	}
}

// TCC over JSON-RPC: prepare, registerBranch, submit through /api/json-rpc.
func TestTccJsonRpc(t *testing.T) {
	gid := newGid("tcc-jrpc")
	err := dtmcli.TccGlobalTransaction2(dtxURL+"/api/json-rpc", gid, func(tcc *dtmcli.Tcc) { tcc.Protocol = dtmimp.Jrpc }, func(tcc *dtmcli.Tcc) (*resty.Response, error) {
		return tcc.CallBranch(&busiReq{Amount: 30}, busiUrl("TransOutTry"), busiUrl("TransOutConfirm"), busiUrl("TransOutCancel"))
	})
	expectNoErr(t, "TccGlobalTransaction over JSON-RPC", err)
	waitStatus(t, gid, dtmcli.StatusSucceed)
	expectCalls(t, gid, "TransOutTry:try", "TransOutConfirm:confirm")
}

// BranchHeaders reach every branch call: dtx's calls (action, confirm) and the client's own (try).
func TestBranchHeaders(t *testing.T) {
	gid := newGid("saga-hdr")
	saga := dtmcli.NewSaga(dtmServer, gid).Add(busiUrl("TransOut"), busiUrl("TransOutRevert"), &busiReq{Amount: 30})
	saga.BranchHeaders = map[string]string{"X-Compat": "saga-" + gid}
	saga.WaitResult = true
	expectNoErr(t, "saga.Submit", saga.Submit())
	for _, c := range callsFull(gid) {
		if c.Header != "saga-"+gid {
			t.Errorf("%s:%s got X-Compat %q", c.Name, c.Op, c.Header)
		}
	}

	gid2 := newGid("tcc-hdr")
	err := dtmcli.TccGlobalTransaction2(dtmServer, gid2, func(tcc *dtmcli.Tcc) {
		tcc.BranchHeaders = map[string]string{"X-Compat": "tcc-" + gid2}
	}, func(tcc *dtmcli.Tcc) (*resty.Response, error) {
		return tcc.CallBranch(&busiReq{Amount: 30}, busiUrl("TransOutTry"), busiUrl("TransOutConfirm"), busiUrl("TransOutCancel"))
	})
	expectNoErr(t, "TccGlobalTransaction2", err)
	waitStatus(t, gid2, dtmcli.StatusSucceed)
	expectCalls(t, gid2, "TransOutTry:try", "TransOutConfirm:confirm")
	for _, c := range callsFull(gid2) {
		if c.Header != "tcc-"+gid2 {
			t.Errorf("%s:%s got X-Compat %q", c.Name, c.Op, c.Header)
		}
	}
}

// WithRetryLimit: an action that keeps erroring is retried at once up to the limit, then the saga
// rolls back (docs/protocol.md#saga); WaitResult reports the rollback as dtm's 409.
func TestSagaRetryLimit(t *testing.T) {
	gid := newGid("saga-rlimit")
	program(gid, "TransIn", outError)
	saga := dtmcli.NewSaga(dtmServer, gid).
		Add(busiUrl("TransOut"), busiUrl("TransOutRevert"), &busiReq{Amount: 30}).
		Add(busiUrl("TransIn"), busiUrl("TransInRevert"), &busiReq{Amount: 30})
	saga.WithRetryLimit(2)
	saga.WaitResult = true
	err := saga.Submit()
	if err == nil || !strings.Contains(err.Error(), dtmcli.ResultFailure) {
		t.Fatalf("saga.Submit = %v, want dtm's 409 FAILURE answer as an error", err)
	}
	waitStatus(t, gid, dtmcli.StatusFailed)
	expectCalls(t, gid, "TransOut:action", "TransIn:action", "TransIn:action", "TransIn:action", "TransInRevert:compensate", "TransOutRevert:compensate")
	if q := query(t, gid); q.Transaction == nil || q.Transaction.RollbackReason != "RetryCount is greater than RetryLimit, RetryLimit: 2" {
		t.Errorf("rollback_reason: %s", mustJSON(q.Transaction))
	}
}

// SetDelay: the submitted msg is delivered only once the delay has passed.
func TestMsgDelay(t *testing.T) {
	gid := newGid("msg-delay")
	msg := dtmcli.NewMsg(dtmServer, gid).Add(busiUrl("TransIn"), &busiReq{Amount: 30}).SetDelay(20)
	expectNoErr(t, "msg.Prepare", msg.Prepare(busiUrl("QueryPrepared")))
	expectNoErr(t, "msg.Submit", msg.Submit())
	settle(t)
	expectStatus(t, gid, dtmcli.StatusSubmitted)
	expectCalls(t, gid)
	cron(t, 5*time.Second)
	expectCalls(t, gid)
	cron(t, 20*time.Second)
	waitStatus(t, gid, dtmcli.StatusSucceed)
	expectCalls(t, gid, "TransIn:action")
}

// AddTopic: a msg step naming a topic goes to each subscriber (subscribed through dtm's HTTP API).
func TestMsgTopic(t *testing.T) {
	gid := newGid("msg-topic")
	topic := "compat-" + runID
	for _, name := range []string{"TopicA", "TopicB"} {
		code, data, err := dtxCall("GET", "/api/dtmsvr/subscribe?"+url.Values{"topic": {topic}, "url": {busiUrl(name)}, "remark": {"compat"}}.Encode(), nil)
		if err != nil || code != http.StatusOK {
			t.Fatalf("subscribe %s: %d %s %v", name, code, data, err)
		}
	}
	msg := dtmcli.NewMsg(dtmServer, gid).AddTopic(topic, &busiReq{Amount: 30})
	msg.WaitResult = true
	expectNoErr(t, "msg.Prepare", msg.Prepare(busiUrl("QueryPrepared")))
	expectNoErr(t, "msg.Submit", msg.Submit())
	waitStatus(t, gid, dtmcli.StatusSucceed)
	expectCalls(t, gid, "TopicA:action", "TopicB:action")
	expectBranches(t, gid, "01-01 action succeed", "01-02 action succeed")
}

// Concurrent msg branches with WaitResult: Submit answers after every branch succeeded.
func TestMsgConcurrentWaitResult(t *testing.T) {
	gid := newGid("msg-conc")
	msg := dtmcli.NewMsg(dtmServer, gid).
		Add(busiUrl("TransOut"), &busiReq{Amount: 30}).
		Add(busiUrl("TransIn"), &busiReq{Amount: 30})
	msg.Concurrent = true
	msg.WaitResult = true
	expectNoErr(t, "msg.Prepare", msg.Prepare(busiUrl("QueryPrepared")))
	expectNoErr(t, "msg.Submit", msg.Submit())
	expectStatus(t, gid, dtmcli.StatusSucceed)
	if got := calls(gid); len(got) != 2 {
		t.Errorf("calls %q, want TransOut and TransIn", got)
	}
}

var workflowOkName = "wf-http-ok"

func init() {
	// A TCC-style branch (Try, OnCommit) and a MariaDB XA branch (DoXa), returning a result.
	_ = workflow.Register2(workflowOkName, func(wf *workflow.Workflow, data []byte) ([]byte, error) {
		wf.NewBranch().OnCommit(func(bb *dtmcli.BranchBarrier) error {
			_, err := wf.NewRequest().SetBody(data).Post(busiUrl("TransOutConfirm"))
			return err
		})
		if _, err := wf.NewRequest().SetBody(data).Post(busiUrl("TransOutTry")); err != nil {
			return nil, err
		}
		if _, err := wf.NewBranch().DoXa(mysqlConf, func(db *sql.DB) ([]byte, error) {
			_, err := db.Exec("update compat_account set balance = balance + 30 where id = ?", wf.Gid+"-in")
			return []byte("xa-done"), err
		}); err != nil {
			return nil, err
		}
		return []byte("result of " + wf.Gid), nil
	})
}

// A workflow that commits: Try, then an XA branch, then phase 2 (XA commit, then Confirm), and its
// result; executing it again returns the stored result without running anything.
func TestWorkflowHTTPCommitWithResult(t *testing.T) {
	gid := newGid("wf-ok")
	placeAccounts(t, mysqlDB, map[string]int{gid + "-in": 0})
	workflow.InitHTTP(dtmServer, busiURL+"/api/wf/resume")
	res, err := workflow.ExecuteCtx(context.Background(), workflowOkName, gid, []byte(`{"amount":30}`))
	expectNoErr(t, "workflow.ExecuteCtx", err)
	expectEqual(t, "result", string(res), "result of "+gid)
	expectStatus(t, gid, dtmcli.StatusSucceed)
	expectCalls(t, gid, "TransOutTry:action", "TransOutConfirm:commit")
	expectBranches(t, gid, "01 action succeed", "02 business succeed", "02 action succeed", "02 commit succeed", "01 commit succeed")
	expectBalance(t, mysqlDB, gid+"-in", 30)
	expectEqual(t, "prepared XA transactions left", xaRecovered(t, gid), []string{})

	res, err = workflow.ExecuteCtx(context.Background(), workflowOkName, gid, []byte(`{"amount":30}`))
	expectNoErr(t, "workflow.ExecuteCtx again", err)
	expectEqual(t, "stored result", string(res), "result of "+gid)
	expectCalls(t, gid, "TransOutTry:action", "TransOutConfirm:commit")
}
