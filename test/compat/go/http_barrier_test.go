package compat

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dtm-labs/client/dtmcli"
	"github.com/go-resty/resty/v2"
)

// A duplicate request: TransIn commits its business but its answer is lost (500), so dtx calls
// it again; dtm's barrier (BarrierFromQuery + Call) recognises the repeat and skips the business.
func TestBarrierDuplicateRequest(t *testing.T) {
	gid := newGid("bar-dup")
	out, in := gid+"-out", gid+"-in"
	placeAccounts(t, mysqlDB, map[string]int{out: 100, in: 0})
	var once sync.Once
	busiState.Lock()
	busiState.after[gid+"/TransIn"] = func(err error) error {
		lost := err
		once.Do(func() { lost = errors.New("the answer got lost") })
		return lost
	}
	busiState.Unlock()
	saga := dtmcli.NewSaga(dtmServer, gid).
		Add(barrierUrl("TransOut"), barrierUrl("TransOutRevert"), &busiReq{User: out, Amount: 30}).
		Add(barrierUrl("TransIn"), barrierUrl("TransInRevert"), &busiReq{User: in, Amount: 30})
	expectNoErr(t, "saga.Submit", saga.Submit())
	settle(t)
	expectStatus(t, gid, dtmcli.StatusSubmitted)
	cron(t, 10*time.Second) // the retry after the backoff
	waitStatus(t, gid, dtmcli.StatusSucceed)
	expectCalls(t, gid, "TransOut:action", "TransIn:action", "TransIn:action")
	c := callsFull(gid)
	if len(c) == 3 && (!strings.HasPrefix(c[1].Note, "busi") || c[2].Note != "skipped") {
		t.Errorf("TransIn calls: first %q, second %q; want the business once, then skipped", c[1].Note, c[2].Note)
	}
	expectBalance(t, mysqlDB, out, 70)
	expectBalance(t, mysqlDB, in, 30)
	expectEqual(t, "barrier rows", barrierRows(t, mysqlDB, gid), []string{"01/action/01/action", "02/action/01/action"})
}

// Out of order: TransOut's request reaches the participant but stalls past dtx's request
// timeout; the saga times out and dtx compensates first. The barrier turns the compensation into
// a null compensation and, when the stalled action finally runs, refuses it (no hanging action).
func TestBarrierCompensationBeforeAction(t *testing.T) {
	gid := newGid("bar-ooo")
	out, in := gid+"-out", gid+"-in"
	placeAccounts(t, mysqlDB, map[string]int{out: 100, in: 0})
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	busiState.Lock()
	busiState.before[gid+"/TransOut"] = func() {
		entered <- struct{}{}
		<-release
	}
	busiState.Unlock()
	saga := dtmcli.NewSaga(dtmServer, gid).
		Add(barrierUrl("TransOut"), barrierUrl("TransOutRevert"), &busiReq{User: out, Amount: 30}).
		Add(barrierUrl("TransIn"), barrierUrl("TransInRevert"), &busiReq{User: in, Amount: 30})
	saga.TimeoutToFail = 3
	saga.RequestTimeout = 1
	expectNoErr(t, "saga.Submit", saga.Submit())
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatalf("TransOut was never called")
	}
	settle(t) // dtx's call times out after 1 s
	expectStatus(t, gid, dtmcli.StatusSubmitted)
	cron(t, 4*time.Second)
	waitStatus(t, gid, dtmcli.StatusFailed)
	close(release)
	// Wait for the stalled action to finish and record itself.
	deadline := time.Now().Add(10 * time.Second)
	for len(calls(gid)) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	expectCalls(t, gid, "TransOutRevert:compensate", "TransOut:action")
	c := callsFull(gid)
	if len(c) == 2 && (c[0].Note != "skipped" || c[1].Note != "skipped") {
		t.Errorf("notes %q %q: want a null compensation and a refused (hanging) action", c[0].Note, c[1].Note)
	}
	expectBalance(t, mysqlDB, out, 100)
	expectBalance(t, mysqlDB, in, 0)
	expectEqual(t, "barrier rows", barrierRows(t, mysqlDB, gid), []string{"01/action/01/compensate", "01/compensate/01/compensate"})
}

// TCC out of order: the application gives up on a Try that is stalled on its way, aborts, and dtx
// cancels first. The barrier makes the Cancel a null compensation and refuses the Try when it
// finally arrives (no hanging reservation).
func TestBarrierTccCancelBeforeTry(t *testing.T) {
	gid := newGid("bar-tcc")
	out := gid + "-out"
	placeAccounts(t, mysqlDB, map[string]int{out: 100})
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	busiState.Lock()
	busiState.before[gid+"/TccTransOutTry"] = func() {
		entered <- struct{}{}
		<-release
	}
	busiState.Unlock()
	tryDone := make(chan error, 1)
	err := dtmcli.TccGlobalTransaction(dtmServer, gid, func(tcc *dtmcli.Tcc) (*resty.Response, error) {
		go func() {
			_, err := tcc.CallBranch(&busiReq{User: out, Amount: 30}, barrierUrl("TccTransOutTry"), barrierUrl("TccTransOutConfirm"), barrierUrl("TccTransOutCancel"))
			tryDone <- err
		}()
		select {
		case <-entered:
		case <-time.After(10 * time.Second):
		}
		return nil, errors.New("try timed out")
	})
	if err == nil || err.Error() != "try timed out" {
		t.Fatalf("TccGlobalTransaction = %v, want the application's own error", err)
	}
	waitStatus(t, gid, dtmcli.StatusFailed)
	close(release)
	select {
	case err := <-tryDone:
		expectNoErr(t, "the late Try (refused by the barrier, answered 200)", err)
	case <-time.After(10 * time.Second):
		t.Fatalf("the stalled Try never finished")
	}
	expectCalls(t, gid, "TccTransOutCancel:cancel", "TccTransOutTry:try")
	c := callsFull(gid)
	if len(c) == 2 && (c[0].Note != "skipped" || c[1].Note != "skipped") {
		t.Errorf("notes %q %q: want a null Cancel and a refused (hanging) Try", c[0].Note, c[1].Note)
	}
	expectBalance(t, mysqlDB, out, 100)
	expectEqual(t, "barrier rows", barrierRows(t, mysqlDB, gid), []string{"01/try/01/cancel", "01/cancel/01/cancel"})
}
