package compat

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dtm-labs/client/dtmcli"
	"github.com/dtm-labs/client/workflow"
)

// workflowHTTPName is registered once per process (dtm's workflow registry is global).
var (
	workflowHTTPName   = "wf-http"
	workflowHTTPKilled atomic.Bool
	workflowHTTPRuns   atomic.Int32
)

func init() {
	// dtm's docs: a saga-style branch (action + OnRollback), a TCC-style branch (Try, then
	// OnCommit / OnRollback), then a branch that fails and rolls the workflow back.
	_ = workflow.Register(workflowHTTPName, func(wf *workflow.Workflow, data []byte) error {
		workflowHTTPRuns.Add(1)
		wf.NewBranch().OnRollback(func(bb *dtmcli.BranchBarrier) error {
			_, err := wf.NewRequest().SetBody(data).Post(busiUrl("TransOutRevert"))
			return err
		})
		if _, err := wf.NewRequest().SetBody(data).Post(busiUrl("TransOut")); err != nil {
			return err
		}
		if workflowHTTPKilled.CompareAndSwap(false, true) {
			// dtx dies here, after TransOut was recorded: the rest of this run cannot be recorded.
			killDtx()
		}
		wf.NewBranch().OnCommit(func(bb *dtmcli.BranchBarrier) error {
			_, err := wf.NewRequest().SetBody(data).Post(busiUrl("TransInConfirm"))
			return err
		}).OnRollback(func(bb *dtmcli.BranchBarrier) error {
			_, err := wf.NewRequest().SetBody(data).Post(busiUrl("TransInCancel"))
			return err
		})
		if _, err := wf.NewRequest().SetBody(data).Post(busiUrl("TransInTry")); err != nil {
			return err
		}
		_, err := wf.NewBranch().NewRequest().SetBody(data).Post(busiUrl("Fail"))
		return err
	})
}

var killDtx = func() {}

// A workflow over HTTP mixing a saga branch and a TCC branch. dtx is SIGKILLed in the middle of
// the first run (Execute returns the connection error), started again on the same store, and
// its cron calls the workflow back; the resumed run replays the recorded branch, runs the rest,
// hits the failing branch (409) and rolls back: TCC cancel, then the saga compensation.
func TestWorkflowHTTPResumeAfterKill(t *testing.T) {
	gid := newGid("wf-http")
	program(gid, "Fail", outFailure)
	workflow.InitHTTP(dtmServer, busiURL+"/api/wf/resume")
	workflowHTTPKilled.Store(false)
	killDtx = func() { harness(t, "kill") }
	defer func() { killDtx = func() {} }()
	data := []byte(`{"user":"` + gid + `","amount":30}`)

	err := workflow.Execute(workflowHTTPName, gid, data)
	if err == nil || errors.Is(err, dtmcli.ErrFailure) {
		t.Fatalf("workflow.Execute while dtx is down = %v, want a connection error (not FAILURE)", err)
	}
	harness(t, "start")
	expectStatus(t, gid, dtmcli.StatusPrepared)
	expectBranches(t, gid, "01 action succeed")
	expectCalls(t, gid, "TransOut:action", "TransInTry:action")

	cronUntilDue(t, gid) // dtx calls the workflow back
	waitStatus(t, gid, dtmcli.StatusFailed)
	expectCalls(t, gid,
		"TransOut:action", "TransInTry:action", // first run, dtx killed after TransOut was recorded
		"TransInTry:action", "Fail:action", // resumed run: TransOut replayed from progress
		"TransInCancel:rollback", "TransOutRevert:rollback",
		"WorkflowResume:"+workflowHTTPName)
	expectBranches(t, gid, "01 action succeed", "02 action succeed", "03 action failed", "02 rollback succeed", "01 rollback succeed")
	q := query(t, gid)
	if q.Transaction == nil || !strings.Contains(q.Transaction.RollbackReason, "FAILURE") || q.Transaction.Protocol != "http" {
		t.Errorf("workflow transaction: %s", mustJSON(q.Transaction))
	}
	for _, c := range callsFull(gid) {
		if c.Name == "TransInTry" && c.Body != string(data) {
			t.Errorf("resumed run got data %q, want %q", c.Body, data)
		}
	}
	// Executing the finished workflow again returns its outcome without running anything.
	before := len(calls(gid))
	err = workflow.Execute(workflowHTTPName, gid, data)
	expectErrIs(t, "workflow.Execute of a failed workflow", err, dtmcli.ErrFailure)
	expectEqual(t, "calls after re-execute", len(calls(gid)), before)
}
