package compat

import (
	"strings"
	"testing"
	"time"

	"github.com/dtm-labs/client/dtmcli"
)

// dtmcli saga, sequential, submitted with WaitResult: dtm answers once both actions succeeded.
func TestSagaSequentialSuccess(t *testing.T) {
	gid := newGid("saga-seq")
	req := &busiReq{User: gid, Amount: 30}
	saga := dtmcli.NewSaga(dtmServer, gid).
		Add(busiUrl("TransOut"), busiUrl("TransOutRevert"), req).
		Add(busiUrl("TransIn"), busiUrl("TransInRevert"), req)
	saga.WaitResult = true
	expectNoErr(t, "saga.Submit", saga.Submit())
	expectStatus(t, gid, dtmcli.StatusSucceed)
	expectBranches(t, gid, "01 compensate prepared", "01 action succeed", "02 compensate prepared", "02 action succeed")
	expectCalls(t, gid, "TransOut:action", "TransIn:action")
	got := callsFull(gid)
	if len(got) > 0 && (got[0].Method != "POST" || got[0].BranchID != "01" || got[0].Body != `{"user":"`+gid+`","amount":30}`) {
		t.Errorf("first action call: %+v", got[0])
	}
}

// Without WaitResult Submit returns at once and dtx runs the saga in the background.
func TestSagaSubmitAsync(t *testing.T) {
	gid := newGid("saga-async")
	saga := dtmcli.NewSaga(dtmServer, gid).
		Add(busiUrl("TransOut"), busiUrl("TransOutRevert"), &busiReq{Amount: 30}).
		Add(busiUrl("TransIn"), busiUrl("TransInRevert"), &busiReq{Amount: 30})
	expectNoErr(t, "saga.Submit", saga.Submit())
	waitStatus(t, gid, dtmcli.StatusSucceed)
	expectCalls(t, gid, "TransOut:action", "TransIn:action")
}

// SetConcurrent + AddBranchOrder: step 2 runs only after steps 0 and 1 succeeded.
func TestSagaConcurrentWithOrders(t *testing.T) {
	gid := newGid("saga-conc")
	req := &busiReq{Amount: 30}
	saga := dtmcli.NewSaga(dtmServer, gid).
		Add(busiUrl("TransOut"), busiUrl("TransOutRevert"), req).
		Add(busiUrl("TransIn"), busiUrl("TransInRevert"), req).
		Add(busiUrl("Step3"), busiUrl("Step3Revert"), req).
		AddBranchOrder(2, []int{0, 1}).
		SetConcurrent()
	saga.WaitResult = true
	expectNoErr(t, "saga.Submit", saga.Submit())
	expectStatus(t, gid, dtmcli.StatusSucceed)
	got := calls(gid)
	if len(got) != 3 || got[2] != "Step3:action" {
		t.Errorf("calls %q: want TransOut and TransIn (any order) then Step3", got)
	}
	q := query(t, gid)
	if q.Transaction != nil && !strings.Contains(q.Transaction.CustomData, `"orders":{"2":[0,1]}`) {
		t.Errorf("custom_data %q does not carry the orders", q.Transaction.CustomData)
	}
}

// A failing action (409) rolls the saga back: both compensations run in reverse order. With
// WaitResult dtm answers 409, which dtm's client returns as an error whose text has FAILURE.
func TestSagaFailureCompensates(t *testing.T) {
	gid := newGid("saga-fail")
	program(gid, "TransIn", outFailure)
	req := &busiReq{Amount: 30}
	saga := dtmcli.NewSaga(dtmServer, gid).
		Add(busiUrl("TransOut"), busiUrl("TransOutRevert"), req).
		Add(busiUrl("TransIn"), busiUrl("TransInRevert"), req)
	saga.WaitResult = true
	err := saga.Submit()
	if err == nil || !strings.Contains(err.Error(), dtmcli.ResultFailure) {
		t.Fatalf("saga.Submit = %v, want dtm's 409 FAILURE answer as an error", err)
	}
	expectStatus(t, gid, dtmcli.StatusFailed)
	expectBranches(t, gid, "01 compensate succeed", "01 action succeed", "02 compensate succeed", "02 action failed")
	expectCalls(t, gid, "TransOut:action", "TransIn:action", "TransInRevert:compensate", "TransOutRevert:compensate")
	if q := query(t, gid); q.Transaction == nil || !strings.Contains(q.Transaction.RollbackReason, "FAILURE") {
		t.Errorf("rollback_reason should name the failure: %s", mustJSON(q.Transaction))
	}
}

// The same failure without WaitResult: Submit succeeds, the rollback happens in the background.
func TestSagaFailureAsync(t *testing.T) {
	gid := newGid("saga-fail-async")
	program(gid, "TransIn", outFailure)
	saga := dtmcli.NewSaga(dtmServer, gid).
		Add(busiUrl("TransOut"), busiUrl("TransOutRevert"), &busiReq{Amount: 30}).
		Add(busiUrl("TransIn"), busiUrl("TransInRevert"), &busiReq{Amount: 30})
	expectNoErr(t, "saga.Submit", saga.Submit())
	waitStatus(t, gid, dtmcli.StatusFailed)
	expectCalls(t, gid, "TransOut:action", "TransIn:action", "TransInRevert:compensate", "TransOutRevert:compensate")
}

// TimeoutToFail: the first action keeps answering ONGOING; once the timeout passes, the cron
// rolls the saga back (the ongoing action is compensated since it may have run).
func TestSagaTimeoutToFail(t *testing.T) {
	gid := newGid("saga-timeout")
	program(gid, "TransOut", outOngoing)
	saga := dtmcli.NewSaga(dtmServer, gid).
		Add(busiUrl("TransOut"), busiUrl("TransOutRevert"), &busiReq{Amount: 30}).
		Add(busiUrl("TransIn"), busiUrl("TransInRevert"), &busiReq{Amount: 30})
	saga.TimeoutToFail = 3
	expectNoErr(t, "saga.Submit", saga.Submit())
	settle(t)
	expectStatus(t, gid, dtmcli.StatusSubmitted)
	cron(t, 4*time.Second)
	waitStatus(t, gid, dtmcli.StatusFailed)
	if q := query(t, gid); q.Transaction == nil || q.Transaction.RollbackReason != "Timeout after 3 seconds" {
		t.Errorf("rollback_reason: %s, want \"Timeout after 3 seconds\"", mustJSON(q.Transaction))
	}
	expectBranches(t, gid, "01 compensate succeed", "01 action prepared", "02 compensate prepared", "02 action prepared")
	got := calls(gid)
	if len(got) < 2 || got[0] != "TransOut:action" || got[len(got)-1] != "TransOutRevert:compensate" {
		t.Errorf("calls %q: want TransOut:action (ongoing, maybe retried) then TransOutRevert:compensate", got)
	}
	for _, c := range got {
		if strings.HasPrefix(c, "TransIn") {
			t.Errorf("calls %q: TransIn must not run", got)
		}
	}
}

// An empty compensate URL is a no-op branch: on rollback it is marked succeed without a call.
func TestSagaEmptyCompensate(t *testing.T) {
	gid := newGid("saga-nocomp")
	program(gid, "TransIn", outFailure)
	saga := dtmcli.NewSaga(dtmServer, gid).
		Add(busiUrl("TransOut"), "", &busiReq{Amount: 30}).
		Add(busiUrl("TransIn"), busiUrl("TransInRevert"), nil)
	saga.WaitResult = true
	if err := saga.Submit(); err == nil || !strings.Contains(err.Error(), dtmcli.ResultFailure) {
		t.Fatalf("saga.Submit = %v, want dtm's 409 FAILURE answer as an error", err)
	}
	expectStatus(t, gid, dtmcli.StatusFailed)
	expectBranches(t, gid, "01 compensate succeed", "01 action succeed", "02 compensate succeed", "02 action failed")
	expectCalls(t, gid, "TransOut:action", "TransIn:action", "TransInRevert:compensate")
	if c := callsFull(gid); len(c) > 1 && c[1].Body != "null" {
		t.Errorf("nil payload sent as %q, want null", c[1].Body)
	}
}

// An action still ONGOING when a WaitResult submit returns. dtm answers 409 ("wait result not
// return success"), although the saga is still running and will commit; dtx answers 425 ONGOING
// (deviation D11, docs/deviations.md). dtm's HTTP client returns any non-200 as a plain error
// holding the body: here it says ONGOING and never FAILURE, so nobody mistakes it for a rollback.
func TestSagaWaitResultOngoing(t *testing.T) {
	gid := newGid("saga-wr-ongoing")
	program(gid, "TransIn", outOngoing, outSuccess)
	saga := dtmcli.NewSaga(dtmServer, gid).
		Add(busiUrl("TransOut"), busiUrl("TransOutRevert"), &busiReq{Amount: 30}).
		Add(busiUrl("TransIn"), busiUrl("TransInRevert"), &busiReq{Amount: 30})
	saga.WaitResult = true
	err := saga.Submit()
	if err == nil || !strings.Contains(err.Error(), dtmcli.ResultOngoing) || strings.Contains(err.Error(), dtmcli.ResultFailure) {
		t.Fatalf("saga.Submit = %v, want dtx's 425 ONGOING answer (D11) as an error without FAILURE", err)
	}
	expectStatus(t, gid, dtmcli.StatusSubmitted)
	cron(t, 5*time.Second)
	waitStatus(t, gid, dtmcli.StatusSucceed)
	expectCalls(t, gid, "TransOut:action", "TransIn:action", "TransIn:action")
}

// dtm takes any gid (it drops \n, \r and ;); dtx refuses a gid outside [A-Za-z0-9_.:-]{1,128}
// with 400 INVALID_GID (docs/errors.md), a documented difference. dtm's client reports the 400
// as an error before anything is stored.
func TestGidOutsideDtxCharsetIsRefused(t *testing.T) {
	for _, gid := range []string{"order/2024/" + runID, "user@example.com#" + runID, "订单-" + runID} {
		saga := dtmcli.NewSaga(dtmServer, gid).Add(busiUrl("TransOut"), busiUrl("TransOutRevert"), nil)
		err := saga.Submit()
		if err == nil || !strings.Contains(err.Error(), "INVALID_GID") {
			t.Errorf("saga.Submit(gid %q) = %v, want dtx's 400 INVALID_GID", gid, err)
		}
		expectCalls(t, gid)
	}
}
