package compat

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/dtm-labs/client/dtmcli"
	"github.com/dtm-labs/client/workflow"
)

// The participant ("busi"), written the way dtm's examples write one with net/http:
//
//	/api/busi/{name}     records the call and answers as programmed (SUCCESS by default)
//	/api/barrier/{name}  TransOut / TransOutRevert / TransIn / TransInRevert moving money in
//	                     MariaDB through dtmcli.BarrierFromQuery + barrier.Call(tx, ...)
//	/api/msg/QueryPrepared?db=mysql|postgres   the check-back: bb.QueryPrepared(db)
//	/api/xa/{name}       TransOut / TransIn as MariaDB XA branches (dtmcli.XaLocalTransaction)
//	/api/wf/resume       dtx's workflow callback: workflow.ExecuteByQS
var busiURL string

// payload of every branch: move amount on account user.
type busiReq struct {
	User   string `json:"user"`
	Amount int    `json:"amount"`
}

// busiCall is one recorded call to a participant.
type busiCall struct {
	Name     string
	Op       string
	Gid      string
	BranchID string
	Method   string
	Body     string
	Note     string // what the handler did: "busi", "skipped" (barrier), "rollback" ...
	Header   string // the X-Compat header (HTTP) or x-compat metadata (gRPC): branch_headers
}

type outcome string

const (
	outSuccess outcome = "SUCCESS"
	outFailure outcome = "FAILURE" // 409
	outOngoing outcome = "ONGOING" // 425
	outError   outcome = "ERROR"   // 500
)

var busiState = struct {
	sync.Mutex
	calls []busiCall
	// programmed outcomes per gid+"/"+name, handed out one per call; the last one sticks.
	program map[string][]outcome
	// hooks per gid+"/"+name, run before a barrier handler opens its transaction.
	before map[string]func()
	// after per gid+"/"+name: called after the barrier transaction committed; may replace the result.
	after map[string]func(error) error
}{program: map[string][]outcome{}, before: map[string]func(){}, after: map[string]func(error) error{}}

func program(gid, name string, outs ...outcome) {
	busiState.Lock()
	defer busiState.Unlock()
	busiState.program[gid+"/"+name] = outs
}

func nextOutcome(gid, name string) outcome {
	busiState.Lock()
	defer busiState.Unlock()
	q := busiState.program[gid+"/"+name]
	if len(q) == 0 {
		return outSuccess
	}
	o := q[0]
	if len(q) > 1 {
		busiState.program[gid+"/"+name] = q[1:]
	}
	return o
}

func record(c busiCall) {
	busiState.Lock()
	defer busiState.Unlock()
	busiState.calls = append(busiState.calls, c)
}

// calls lists "name:op" of the calls for a gid, in arrival order.
func calls(gid string) []string {
	busiState.Lock()
	defer busiState.Unlock()
	out := []string{}
	for _, c := range busiState.calls {
		if c.Gid == gid {
			out = append(out, c.Name+":"+c.Op)
		}
	}
	return out
}

func callsFull(gid string) []busiCall {
	busiState.Lock()
	defer busiState.Unlock()
	out := []busiCall{}
	for _, c := range busiState.calls {
		if c.Gid == gid {
			out = append(out, c)
		}
	}
	return out
}

func expectCalls(t *testing.T, gid string, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	expectEqual(t, "participant calls of "+gid, calls(gid), want)
}

func outcomeErr(o outcome) error {
	switch o {
	case outFailure:
		return fmt.Errorf("programmed failure %w", dtmcli.ErrFailure)
	case outOngoing:
		return fmt.Errorf("programmed ongoing %w", dtmcli.ErrOngoing)
	case outError:
		return errors.New("programmed error")
	}
	return nil
}

// writeResult answers the way dtm's dtmutil.WrapHandler does: 200 JSON, 409 FAILURE, 425 ONGOING, 500.
func writeResult(w http.ResponseWriter, result interface{}) {
	if result == nil {
		result = dtmcli.MapSuccess
	}
	code, res := dtmcli.Result2HttpJSON(result)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(res)
}

func errResult(err error) interface{} {
	if err != nil {
		return err
	}
	return nil
}

func newCall(r *http.Request, name string, body []byte) busiCall {
	q := r.URL.Query()
	return busiCall{Name: name, Op: q.Get("op"), Gid: q.Get("gid"), BranchID: q.Get("branch_id"), Method: r.Method, Body: string(body), Header: r.Header.Get("X-Compat")}
}

func startBusi() error {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/busi/{name}", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c := newCall(r, r.PathValue("name"), body)
		o := nextOutcome(c.Gid, c.Name)
		c.Note = string(o)
		record(c)
		writeResult(w, errResult(outcomeErr(o)))
	})
	mux.HandleFunc("/api/barrier/{name}", barrierHandler)
	mux.HandleFunc("/api/msg/QueryPrepared", func(w http.ResponseWriter, r *http.Request) {
		c := newCall(r, "QueryPrepared", nil)
		bb, err := dtmcli.BarrierFromQuery(r.URL.Query())
		if err == nil {
			db := mysqlDB
			bb.DBType = dtmcli.DBTypeMysql
			if r.URL.Query().Get("db") == "postgres" {
				db, bb.DBType = pgDB, dtmcli.DBTypePostgres
			}
			err = bb.QueryPrepared(db)
		}
		c.Note = fmt.Sprint(err)
		record(c)
		writeResult(w, errResult(err))
	})
	mux.HandleFunc("/api/xa/{name}", xaHandler)
	// A Try that opens a nested TCC branch (dtm's docs: dtmcli.TccFromQuery + CallBranch).
	mux.HandleFunc("/api/tccnested/TransOutTry", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c := newCall(r, "NestedTry", body)
		record(c)
		tcc, err := dtmcli.TccFromQuery(r.URL.Query())
		if err == nil {
			var req busiReq
			_ = json.Unmarshal(body, &req)
			_, err = tcc.CallBranch(&req, busiUrl("TransInTry"), busiUrl("TransInConfirm"), busiUrl("TransInCancel"))
		}
		writeResult(w, errResult(err))
	})
	mux.HandleFunc("/api/wf/resume", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c := newCall(r, "WorkflowResume", body)
		err := workflow.ExecuteByQS(r.URL.Query(), body)
		c.Note = fmt.Sprint(err)
		record(c)
		writeResult(w, errResult(err))
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	busiURL = "http://" + ln.Addr().String()
	go func() { _ = (&http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}).Serve(ln) }()
	return nil
}

// barrierHandler: the sub-transaction barrier exactly as dtm's docs use it.
func barrierHandler(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	body, _ := io.ReadAll(r.Body)
	c := newCall(r, name, body)
	var req busiReq
	_ = json.Unmarshal(body, &req)
	key := c.Gid + "/" + name
	busiState.Lock()
	before, after := busiState.before[key], busiState.after[key]
	busiState.Unlock()
	if before != nil {
		before()
	}
	delta := map[string]int{
		"TransOut": -req.Amount, "TransOutRevert": req.Amount, "TransIn": req.Amount, "TransInRevert": -req.Amount,
		"TccTransOutTry": -req.Amount, "TccTransOutConfirm": 0, "TccTransOutCancel": req.Amount,
	}[name]
	ran := false
	bb, err := dtmcli.BarrierFromQuery(r.URL.Query())
	if err == nil {
		bb.DBType = dtmcli.DBTypeMysql // this participant's database, whatever dtmcli.SetCurrentDBType says
		var tx *sql.Tx
		tx, err = mysqlDB.Begin()
		if err == nil {
			err = bb.Call(tx, func(tx *sql.Tx) error {
				ran = true
				if o := nextOutcome(c.Gid, name); o != outSuccess {
					return outcomeErr(o)
				}
				_, err := tx.Exec("update compat_account set balance = balance + ? where id = ?", delta, req.User)
				return err
			})
		}
	}
	if after != nil {
		err = after(err)
	}
	c.Note = map[bool]string{true: "busi", false: "skipped"}[ran]
	if err != nil {
		c.Note += " " + err.Error()
	}
	record(c)
	writeResult(w, errResult(err))
}

// xaHandler: a MariaDB XA branch, exactly as dtm's docs write one.
func xaHandler(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	body, _ := io.ReadAll(r.Body)
	c := newCall(r, name, body)
	var req busiReq
	_ = json.Unmarshal(body, &req)
	delta := map[string]int{"TransOut": -req.Amount, "TransIn": req.Amount}[name]
	err := dtmcli.XaLocalTransaction(r.URL.Query(), mysqlConf, func(db *sql.DB, xa *dtmcli.Xa) error {
		if o := nextOutcome(c.Gid, name); o != outSuccess {
			return outcomeErr(o)
		}
		_, err := db.Exec("update compat_account set balance = balance + ? where id = ?", delta, req.User)
		return err
	})
	c.Note = fmt.Sprint(err)
	record(c)
	writeResult(w, errResult(err))
}

func busiUrl(name string) string    { return busiURL + "/api/busi/" + name }
func barrierUrl(name string) string { return busiURL + "/api/barrier/" + name }
func xaUrl(name string) string      { return busiURL + "/api/xa/" + name }
