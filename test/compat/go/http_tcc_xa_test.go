package compat

import (
	"strings"
	"testing"
	"time"

	"github.com/dtm-labs/client/dtmcli"
	"github.com/go-resty/resty/v2"
)

// TccGlobalTransaction with two CallBranch: both Try succeed, dtx confirms both.
func TestTccSuccess(t *testing.T) {
	gid := newGid("tcc-ok")
	req := &busiReq{Amount: 30}
	err := dtmcli.TccGlobalTransaction(dtmServer, gid, func(tcc *dtmcli.Tcc) (*resty.Response, error) {
		resp, err := tcc.CallBranch(req, busiUrl("TransOutTry"), busiUrl("TransOutConfirm"), busiUrl("TransOutCancel"))
		if err != nil {
			return resp, err
		}
		return tcc.CallBranch(req, busiUrl("TransInTry"), busiUrl("TransInConfirm"), busiUrl("TransInCancel"))
	})
	expectNoErr(t, "TccGlobalTransaction", err)
	waitStatus(t, gid, dtmcli.StatusSucceed)
	expectBranches(t, gid, "01 cancel prepared", "01 confirm succeed", "02 cancel prepared", "02 confirm succeed")
	// dtm confirms in reverse store order.
	expectCalls(t, gid, "TransOutTry:try", "TransInTry:try", "TransInConfirm:confirm", "TransOutConfirm:confirm")
}

// The second Try fails (409): TccGlobalTransaction aborts and returns the Try's ErrFailure;
// dtx cancels every registered branch, the failed one included.
func TestTccTryFailure(t *testing.T) {
	gid := newGid("tcc-fail")
	program(gid, "TransInTry", outFailure)
	req := &busiReq{Amount: 30}
	err := dtmcli.TccGlobalTransaction(dtmServer, gid, func(tcc *dtmcli.Tcc) (*resty.Response, error) {
		resp, err := tcc.CallBranch(req, busiUrl("TransOutTry"), busiUrl("TransOutConfirm"), busiUrl("TransOutCancel"))
		if err != nil {
			return resp, err
		}
		return tcc.CallBranch(req, busiUrl("TransInTry"), busiUrl("TransInConfirm"), busiUrl("TransInCancel"))
	})
	expectErrIs(t, "TccGlobalTransaction", err, dtmcli.ErrFailure)
	waitStatus(t, gid, dtmcli.StatusFailed)
	expectBranches(t, gid, "01 cancel succeed", "01 confirm prepared", "02 cancel succeed", "02 confirm prepared")
	expectCalls(t, gid, "TransOutTry:try", "TransInTry:try", "TransInCancel:cancel", "TransOutCancel:cancel")
	if q := query(t, gid); q.Transaction == nil || !strings.Contains(q.Transaction.RollbackReason, "FAILURE") {
		t.Errorf("rollback_reason should carry the Try's error: %s", mustJSON(q.Transaction))
	}
}

func xaTransfer(t *testing.T, gid string) error {
	out, in := gid+"-out", gid+"-in"
	return dtmcli.XaGlobalTransaction(dtmServer, gid, func(xa *dtmcli.Xa) (*resty.Response, error) {
		resp, err := xa.CallBranch(&busiReq{User: out, Amount: 30}, xaUrl("TransOut"))
		if err != nil {
			return resp, err
		}
		return xa.CallBranch(&busiReq{User: in, Amount: 30}, xaUrl("TransIn"))
	})
}

func xaRecovered(t *testing.T, gid string) []string {
	t.Helper()
	rows, err := mysqlDB.Query("xa recover")
	if err != nil {
		t.Fatalf("xa recover: %v", err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var format, gl, bl int
		var data string
		if err := rows.Scan(&format, &gl, &bl, &data); err != nil {
			t.Fatalf("xa recover: %v", err)
		}
		if strings.HasPrefix(data, gid) {
			out = append(out, data)
		}
	}
	return out
}

// XaGlobalTransaction with two MariaDB XA branches (XaLocalTransaction): dtx commits both.
func TestXaCommit(t *testing.T) {
	gid := newGid("xa-ok")
	placeAccounts(t, mysqlDB, map[string]int{gid + "-out": 100, gid + "-in": 0})
	expectNoErr(t, "XaGlobalTransaction", xaTransfer(t, gid))
	waitStatus(t, gid, dtmcli.StatusSucceed)
	expectBranches(t, gid, "01 rollback prepared", "01 commit succeed", "02 rollback prepared", "02 commit succeed")
	expectCalls(t, gid, "TransOut:action", "TransIn:action", "TransOut:commit", "TransIn:commit")
	expectBalance(t, mysqlDB, gid+"-out", 70)
	expectBalance(t, mysqlDB, gid+"-in", 30)
	expectEqual(t, "prepared XA transactions left", xaRecovered(t, gid), []string{})
}

// The second XA branch fails (409) before it registers: the global transaction aborts, dtx
// rolls back the first branch's prepared XA transaction, and no money moves.
func TestXaRollback(t *testing.T) {
	gid := newGid("xa-rb")
	placeAccounts(t, mysqlDB, map[string]int{gid + "-out": 100, gid + "-in": 0})
	program(gid, "TransIn", outFailure)
	expectErrIs(t, "XaGlobalTransaction", xaTransfer(t, gid), dtmcli.ErrFailure)
	waitStatus(t, gid, dtmcli.StatusFailed)
	expectBranches(t, gid, "01 rollback succeed", "01 commit prepared")
	expectCalls(t, gid, "TransOut:action", "TransIn:action", "TransOut:rollback")
	expectBalance(t, mysqlDB, gid+"-out", 100)
	expectBalance(t, mysqlDB, gid+"-in", 0)
	expectEqual(t, "prepared XA transactions left", xaRecovered(t, gid), []string{})
	expectEqual(t, "XA barrier rows", barrierRows(t, mysqlDB, gid), []string{"01/action/01/rollback"})
}

// A nested TCC branch: the Try of branch 01 opens branch 0101 with dtmcli.TccFromQuery.
func TestTccNested(t *testing.T) {
	gid := newGid("tcc-nested")
	err := dtmcli.TccGlobalTransaction(dtmServer, gid, func(tcc *dtmcli.Tcc) (*resty.Response, error) {
		return tcc.CallBranch(&busiReq{Amount: 30}, busiURL+"/api/tccnested/TransOutTry", busiUrl("TransOutConfirm"), busiUrl("TransOutCancel"))
	})
	expectNoErr(t, "TccGlobalTransaction", err)
	waitStatus(t, gid, dtmcli.StatusSucceed)
	expectBranches(t, gid, "01 cancel prepared", "01 confirm succeed", "0101 cancel prepared", "0101 confirm succeed")
	expectCalls(t, gid, "NestedTry:try", "TransInTry:try", "TransInConfirm:confirm", "TransOutConfirm:confirm")
	if c := callsFull(gid); len(c) > 1 && c[1].BranchID != "0101" {
		t.Errorf("nested Try branch_id %q, want 0101", c[1].BranchID)
	}
}

// The application stalls after a Try, past the TCC's TimeoutToFail: dtx's cron cancels the
// branch; when the application comes back, its Submit is refused (dtm: 409 FAILURE).
func TestTccTimeoutWhileApplicationStalls(t *testing.T) {
	gid := newGid("tcc-timeout")
	err := dtmcli.TccGlobalTransaction2(dtmServer, gid, func(tcc *dtmcli.Tcc) { tcc.TimeoutToFail = 5 }, func(tcc *dtmcli.Tcc) (*resty.Response, error) {
		resp, err := tcc.CallBranch(&busiReq{Amount: 30}, busiUrl("TransOutTry"), busiUrl("TransOutConfirm"), busiUrl("TransOutCancel"))
		if err != nil {
			return resp, err
		}
		cron(t, 6*time.Second) // ... the application is stalled here
		waitStatus(t, gid, dtmcli.StatusFailed)
		return resp, nil
	})
	if err == nil || !strings.Contains(err.Error(), dtmcli.ResultFailure) {
		t.Fatalf("TccGlobalTransaction = %v, want the refused submit (409 FAILURE) as an error", err)
	}
	expectCalls(t, gid, "TransOutTry:try", "TransOutCancel:cancel")
	if q := query(t, gid); q.Transaction == nil || q.Transaction.RollbackReason != "Timeout after 5 seconds" {
		t.Errorf("rollback_reason: %s", mustJSON(q.Transaction))
	}
}
