package compat

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dtm-labs/client/dtmcli"
	"github.com/dtm-labs/client/dtmgrpc"
	"github.com/dtm-labs/client/dtmgrpc/dtmgimp"
	"github.com/dtm-labs/client/workflow"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The gRPC participant: service busi.Busi, declared by hand (no protoc needed). Every method takes
// a google.protobuf.StringValue (the branch payload) and returns google.protobuf.Empty; it records
// the call (gid, branch and op from dtm's dtm-* metadata) and answers as programmed, mapping
// FAILURE to Aborted and ONGOING to FailedPrecondition as dtmgrpc.DtmError2GrpcError does.
// QueryPrepared is the msg check-back with dtm's barrier (dtmgrpc.BarrierFromGrpc).
var grpcBusiAddr string

var grpcBusiMethods = []string{
	"TransOut", "TransOutRevert", "TransIn", "TransInRevert",
	"TransOutTry", "TransOutConfirm", "TransOutCancel", "TransInTry", "TransInConfirm", "TransInCancel",
	"Fail", "QueryPrepared", "XaTransOut", "XaTransIn",
}

func grpcBusiHandler(name string) func(interface{}, context.Context, func(interface{}) error, grpc.UnaryServerInterceptor) (interface{}, error) {
	return func(srv interface{}, ctx context.Context, dec func(interface{}) error, _ grpc.UnaryServerInterceptor) (interface{}, error) {
		in := &wrapperspb.StringValue{}
		if err := dec(in); err != nil {
			return nil, err
		}
		tb := dtmgimp.TransBaseFromGrpc(ctx)
		c := busiCall{Name: name, Op: tb.Op, Gid: tb.Gid, BranchID: tb.BranchID, Method: "grpc", Body: in.Value, Header: dtmgimp.GetMetaFromContext(ctx, "x-compat")}
		var err error
		if strings.HasPrefix(name, "Xa") {
			var req busiReq
			_ = json.Unmarshal([]byte(in.Value), &req)
			delta := map[string]int{"XaTransOut": -req.Amount, "XaTransIn": req.Amount}[name]
			err = dtmgrpc.XaLocalTransaction(ctx, mysqlConf, func(db *sql.DB, xa *dtmgrpc.XaGrpc) error {
				if o := nextOutcome(c.Gid, name); o != outSuccess {
					return outcomeErr(o)
				}
				_, err := db.Exec("update compat_account set balance = balance + ? where id = ?", delta, req.User)
				return err
			})
			c.Note = fmt.Sprint(err)
		} else if name == "QueryPrepared" {
			var bb *dtmcli.BranchBarrier
			if bb, err = dtmgrpc.BarrierFromGrpc(ctx); err == nil {
				bb.DBType = dtmcli.DBTypeMysql
				err = bb.QueryPrepared(mysqlDB)
			}
			c.Note = fmt.Sprint(err)
		} else {
			o := nextOutcome(c.Gid, name)
			c.Note = string(o)
			err = outcomeErr(o)
		}
		record(c)
		if err != nil {
			return nil, dtmgrpc.DtmError2GrpcError(err)
		}
		return &emptypb.Empty{}, nil
	}
}

type grpcBusiServer interface{}

func grpcBusiDesc() *grpc.ServiceDesc {
	desc := &grpc.ServiceDesc{ServiceName: "busi.Busi", HandlerType: (*grpcBusiServer)(nil), Metadata: "busi.proto"}
	for _, m := range grpcBusiMethods {
		desc.Methods = append(desc.Methods, grpc.MethodDesc{MethodName: m, Handler: grpcBusiHandler(m)})
	}
	return desc
}

func startGrpcBusi() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s := grpc.NewServer()
	s.RegisterService(grpcBusiDesc(), struct{}{})
	grpcBusiAddr = ln.Addr().String()
	go func() { _ = s.Serve(ln) }()
	return nil
}

func grpcBusi(method string) string { return grpcBusiAddr + "/busi.Busi/" + method }

func needGrpc(t *testing.T) {
	t.Helper()
	if grpcAddr == "" {
		t.Fatalf("dtx gRPC not available: DTX_GRPC_ADDR is unset (the harness runs TestGrpc* only when dtx logs a grpcPort)")
	}
}

func payload(gid string) *wrapperspb.StringValue {
	return &wrapperspb.StringValue{Value: `{"user":"` + gid + `","amount":30}`}
}

func expectGrpcFailure(t *testing.T, what string, err error) {
	t.Helper()
	expectErrIs(t, what, dtmgrpc.GrpcError2DtmError(err), dtmcli.ErrFailure)
}

func TestGrpcSagaSuccess(t *testing.T) {
	needGrpc(t)
	gid := newGid("gsaga-ok")
	saga := dtmgrpc.NewSagaGrpc(grpcAddr, gid).
		Add(grpcBusi("TransOut"), grpcBusi("TransOutRevert"), payload(gid)).
		Add(grpcBusi("TransIn"), grpcBusi("TransInRevert"), payload(gid))
	saga.WaitResult = true
	expectNoErr(t, "SagaGrpc.Submit", saga.Submit())
	expectStatus(t, gid, dtmcli.StatusSucceed)
	expectBranches(t, gid, "01 compensate prepared", "01 action succeed", "02 compensate prepared", "02 action succeed")
	expectCalls(t, gid, "TransOut:action", "TransIn:action")
	if c := callsFull(gid); len(c) > 0 && c[0].Body != payload(gid).Value {
		t.Errorf("payload received %q, want %q", c[0].Body, payload(gid).Value)
	}
	if q := query(t, gid); q.Transaction == nil || q.Transaction.Protocol != "grpc" {
		t.Errorf("protocol: %s", mustJSON(q.Transaction))
	}
}

func TestGrpcSagaConcurrentFailure(t *testing.T) {
	needGrpc(t)
	gid := newGid("gsaga-fail")
	program(gid, "TransIn", outFailure)
	saga := dtmgrpc.NewSagaGrpc(grpcAddr, gid).
		Add(grpcBusi("TransOut"), grpcBusi("TransOutRevert"), payload(gid)).
		Add(grpcBusi("TransIn"), grpcBusi("TransInRevert"), payload(gid)).
		AddBranchOrder(1, []int{0}).
		EnableConcurrent()
	saga.WaitResult = true
	expectGrpcFailure(t, "SagaGrpc.Submit", saga.Submit())
	expectStatus(t, gid, dtmcli.StatusFailed)
	expectCalls(t, gid, "TransOut:action", "TransIn:action", "TransInRevert:compensate", "TransOutRevert:compensate")
}

func TestGrpcMsgPrepareSubmit(t *testing.T) {
	needGrpc(t)
	gid := newGid("gmsg-ps")
	msg := dtmgrpc.NewMsgGrpc(grpcAddr, gid).
		Add(grpcBusi("TransOut"), payload(gid)).
		Add(grpcBusi("TransIn"), payload(gid))
	expectNoErr(t, "MsgGrpc.Prepare", msg.Prepare(grpcBusi("QueryPrepared")))
	expectStatus(t, gid, dtmcli.StatusPrepared)
	expectNoErr(t, "MsgGrpc.Submit", msg.Submit())
	waitStatus(t, gid, dtmcli.StatusSucceed)
	expectCalls(t, gid, "TransOut:action", "TransIn:action")
}

// DoAndSubmitDB over gRPC, then a crashed sender checked back over gRPC.
func TestGrpcMsgDoAndSubmitAndCheckBack(t *testing.T) {
	needGrpc(t)
	gid := newGid("gmsg-do")
	msg := dtmgrpc.NewMsgGrpc(grpcAddr, gid).Add(grpcBusi("TransIn"), payload(gid))
	expectNoErr(t, "MsgGrpc.DoAndSubmitDB", msg.DoAndSubmitDB(grpcBusi("QueryPrepared"), mysqlDB, func(tx *sql.Tx) error { return nil }))
	waitStatus(t, gid, dtmcli.StatusSucceed)
	expectCalls(t, gid, "TransIn:action")

	gid2 := newGid("gmsg-crash")
	msg2 := dtmgrpc.NewMsgGrpc(grpcAddr, gid2).Add(grpcBusi("TransIn"), payload(gid2))
	msg2.TimeoutToFail = 5
	expectNoErr(t, "MsgGrpc.Prepare", msg2.Prepare(grpcBusi("QueryPrepared")))
	bb, _ := dtmcli.BarrierFrom("msg", gid2, "00", "msg")
	expectNoErr(t, "local transaction", bb.CallWithDB(mysqlDB, func(tx *sql.Tx) error { return nil }))
	cron(t, 6*time.Second)
	waitStatus(t, gid2, dtmcli.StatusSucceed)
	expectCalls(t, gid2, "QueryPrepared:msg", "TransIn:action")
}

func grpcTcc(t *testing.T, gid string) error {
	return dtmgrpc.TccGlobalTransaction(grpcAddr, gid, func(tcc *dtmgrpc.TccGrpc) error {
		if err := tcc.CallBranch(payload(gid), grpcBusi("TransOutTry"), grpcBusi("TransOutConfirm"), grpcBusi("TransOutCancel"), &emptypb.Empty{}); err != nil {
			return err
		}
		return tcc.CallBranch(payload(gid), grpcBusi("TransInTry"), grpcBusi("TransInConfirm"), grpcBusi("TransInCancel"), &emptypb.Empty{})
	})
}

func TestGrpcTccSuccess(t *testing.T) {
	needGrpc(t)
	gid := newGid("gtcc-ok")
	expectNoErr(t, "dtmgrpc.TccGlobalTransaction", grpcTcc(t, gid))
	waitStatus(t, gid, dtmcli.StatusSucceed)
	expectCalls(t, gid, "TransOutTry:try", "TransInTry:try", "TransInConfirm:confirm", "TransOutConfirm:confirm")
}

func TestGrpcTccTryFailure(t *testing.T) {
	needGrpc(t)
	gid := newGid("gtcc-fail")
	program(gid, "TransInTry", outFailure)
	expectGrpcFailure(t, "dtmgrpc.TccGlobalTransaction", grpcTcc(t, gid))
	waitStatus(t, gid, dtmcli.StatusFailed)
	expectCalls(t, gid, "TransOutTry:try", "TransInTry:try", "TransInCancel:cancel", "TransOutCancel:cancel")
}

var (
	workflowGrpcName   = "wf-grpc"
	workflowGrpcKilled atomic.Bool
	workflowGrpcConn   *grpc.ClientConn
)

func init() {
	_ = workflow.Register(workflowGrpcName, func(wf *workflow.Workflow, data []byte) error {
		req := &wrapperspb.StringValue{Value: string(data)}
		call := func(ctx context.Context, m string) error {
			return workflowGrpcConn.Invoke(ctx, "/busi.Busi/"+m, req, &emptypb.Empty{})
		}
		// saga branch
		wf.NewBranch().OnRollback(func(bb *dtmcli.BranchBarrier) error { return call(wf.Context, "TransOutRevert") })
		if err := call(wf.Context, "TransOut"); err != nil {
			return err
		}
		if workflowGrpcKilled.CompareAndSwap(false, true) {
			killDtx()
		}
		// TCC branch
		wf.NewBranch().OnCommit(func(bb *dtmcli.BranchBarrier) error { return call(wf.Context, "TransInConfirm") }).
			OnRollback(func(bb *dtmcli.BranchBarrier) error { return call(wf.Context, "TransInCancel") })
		if err := call(wf.Context, "TransInTry"); err != nil {
			return err
		}
		return call(wf.NewBranchCtx(), "Fail")
	})
}

// The workflow of TestWorkflowHTTPResumeAfterKill over gRPC: dtm's workflow talks to dtx over
// gRPC, branches are gRPC calls through workflow.Interceptor, dtx resumes it through
// workflow.Workflow/Execute.
func TestGrpcWorkflowResumeAfterKill(t *testing.T) {
	needGrpc(t)
	gid := newGid("wf-grpc")
	program(gid, "Fail", outFailure)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	expectNoErr(t, "listen", err)
	resumed := make(chan string, 4)
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req interface{}, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (interface{}, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		r, err := h(ctx, req)
		if g := md.Get("dtm-gid"); len(g) > 0 && info.FullMethod == "/workflow.Workflow/Execute" {
			record(busiCall{Name: "WorkflowResume", Op: strings.Join(md.Get("dtm-op"), ","), Gid: g[0], Method: "grpc", Note: fmt.Sprint(err)})
			resumed <- g[0]
		}
		return r, err
	}))
	workflow.InitGrpc(grpcAddr, ln.Addr().String(), srv)
	defer workflow.InitHTTP(dtmServer, busiURL+"/api/wf/resume")
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()
	workflowGrpcConn, err = grpc.Dial(grpcBusiAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithUnaryInterceptor(workflow.Interceptor))
	expectNoErr(t, "dial participant", err)
	defer workflowGrpcConn.Close()

	workflowGrpcKilled.Store(false)
	killDtx = func() { harness(t, "kill") }
	defer func() { killDtx = func() {} }()
	data := []byte(`{"user":"` + gid + `","amount":30}`)

	_, err = workflow.ExecuteCtx(context.Background(), workflowGrpcName, gid, data)
	if err == nil || errors.Is(dtmgrpc.GrpcError2DtmError(err), dtmcli.ErrFailure) {
		t.Fatalf("workflow.ExecuteCtx while dtx is down = %v, want a connection error (not FAILURE)", err)
	}
	harness(t, "start")
	// dtm's client caches one gRPC connection to dtx; grpc-go keeps it in reconnect backoff for
	// a while after dtx went away (a client-side matter, the same with dtm). Wait until it is
	// ready again before dtx calls the workflow back, which talks to dtx over that connection.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	_, err = dtmgimp.MustGetDtmClient(grpcAddr).NewGid(ctx, &emptypb.Empty{}, grpc.WaitForReady(true))
	cancel()
	expectNoErr(t, "reconnecting to the restarted dtx", err)
	expectStatus(t, gid, dtmcli.StatusPrepared)
	expectBranches(t, gid, "01 action succeed")

	cronUntilDue(t, gid)
	waitStatus(t, gid, dtmcli.StatusFailed)
	expectCalls(t, gid,
		"TransOut:action", "TransInTry:action",
		"TransInTry:action", "Fail:action",
		"TransInCancel:rollback", "TransOutRevert:rollback",
		"WorkflowResume:"+workflowGrpcName)
	expectBranches(t, gid, "01 action succeed", "02 action succeed", "03 action failed", "02 rollback succeed", "01 rollback succeed")
	if q := query(t, gid); q.Transaction == nil || q.Transaction.Protocol != "grpc" {
		t.Errorf("workflow transaction: %s", mustJSON(q.Transaction))
	}
}

func grpcXa(gid string) error {
	return dtmgrpc.XaGlobalTransaction(grpcAddr, gid, func(xa *dtmgrpc.XaGrpc) error {
		out := &wrapperspb.StringValue{Value: `{"user":"` + gid + `-out","amount":30}`}
		in := &wrapperspb.StringValue{Value: `{"user":"` + gid + `-in","amount":30}`}
		if err := xa.CallBranch(out, grpcBusi("XaTransOut"), &emptypb.Empty{}); err != nil {
			return err
		}
		return xa.CallBranch(in, grpcBusi("XaTransIn"), &emptypb.Empty{})
	})
}

// dtmgrpc XA with MariaDB (dtmgrpc.XaLocalTransaction): commit, then a rollback.
func TestGrpcXa(t *testing.T) {
	needGrpc(t)
	gid := newGid("gxa-ok")
	placeAccounts(t, mysqlDB, map[string]int{gid + "-out": 100, gid + "-in": 0})
	expectNoErr(t, "dtmgrpc.XaGlobalTransaction", grpcXa(gid))
	waitStatus(t, gid, dtmcli.StatusSucceed)
	expectCalls(t, gid, "XaTransOut:action", "XaTransIn:action", "XaTransOut:commit", "XaTransIn:commit")
	expectBalance(t, mysqlDB, gid+"-out", 70)
	expectBalance(t, mysqlDB, gid+"-in", 30)

	gid2 := newGid("gxa-rb")
	placeAccounts(t, mysqlDB, map[string]int{gid2 + "-out": 100, gid2 + "-in": 0})
	program(gid2, "XaTransIn", outFailure)
	expectGrpcFailure(t, "dtmgrpc.XaGlobalTransaction", grpcXa(gid2))
	waitStatus(t, gid2, dtmcli.StatusFailed)
	expectCalls(t, gid2, "XaTransOut:action", "XaTransIn:action", "XaTransOut:rollback")
	expectBalance(t, mysqlDB, gid2+"-out", 100)
	expectBalance(t, mysqlDB, gid2+"-in", 0)
	expectEqual(t, "prepared XA transactions left", xaRecovered(t, gid2), []string{})
}

// WithBranchHeaders on a gRPC saga: dtx passes them as metadata on every branch call.
func TestGrpcBranchHeaders(t *testing.T) {
	needGrpc(t)
	gid := newGid("gsaga-hdr")
	saga := dtmgrpc.NewSagaGrpc(grpcAddr, gid, dtmgrpc.WithBranchHeaders(map[string]string{"x-compat": "grpc-" + gid})).
		Add(grpcBusi("TransOut"), grpcBusi("TransOutRevert"), payload(gid))
	saga.WaitResult = true
	expectNoErr(t, "SagaGrpc.Submit", saga.Submit())
	expectCalls(t, gid, "TransOut:action")
	for _, c := range callsFull(gid) {
		if c.Header != "grpc-"+gid {
			t.Errorf("%s:%s got x-compat %q", c.Name, c.Op, c.Header)
		}
	}
}

// dtmgrpc.MustGenGid asks dtx's gRPC NewGid.
func TestGrpcMustGenGid(t *testing.T) {
	needGrpc(t)
	if a, b := dtmgrpc.MustGenGid(grpcAddr), dtmgrpc.MustGenGid(grpcAddr); a == "" || a == b {
		t.Fatalf("MustGenGid: %q then %q", a, b)
	}
}

// A msg whose branch answers ONGOING, submitted with WaitResult over gRPC. dtm processes once,
// finds the msg still submitted and answers FAILURE (gRPC Aborted) although it will be delivered;
// dtx answers ONGOING (FailedPrecondition, deviation D11, docs/deviations.md), which
// dtmgrpc.GrpcError2DtmError turns into dtmcli.ErrOngoing. The msg is delivered later.
func TestGrpcMsgWaitResultOngoing(t *testing.T) {
	needGrpc(t)
	gid := newGid("gmsg-wr-ongoing")
	program(gid, "TransIn", outOngoing, outSuccess)
	msg := dtmgrpc.NewMsgGrpc(grpcAddr, gid).Add(grpcBusi("TransIn"), payload(gid))
	msg.WaitResult = true
	err := msg.Submit()
	if code := status.Code(err); code != codes.FailedPrecondition {
		t.Errorf("MsgGrpc.Submit = %v (code %s), want FailedPrecondition (ONGOING, D11)", err, code)
	}
	expectErrIs(t, "MsgGrpc.Submit", dtmgrpc.GrpcError2DtmError(err), dtmcli.ErrOngoing)
	expectStatus(t, gid, dtmcli.StatusSubmitted)
	cron(t, 5*time.Second)
	waitStatus(t, gid, dtmcli.StatusSucceed)
	expectCalls(t, gid, "TransIn:action", "TransIn:action")
}
