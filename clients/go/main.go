// Command wsh-client is a wsh client in Go with grpc-go: the send / await
// idle / read loop on a server directly and through a hub, a RaceIdle stream
// across the hub and its backend, and the ErrorInfo reason of a failed call.
//
//	wsh-client HUB_ADDR BACKEND_ADDR     (host:port each)
//
// Exits 0 when every check passed, 1 (with the reason) otherwise.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	wshv1 "wsh.dev/api/wsh/v1"
)

const rpcDeadline = 30 * time.Second

var prefix = fmt.Sprintf("go-%d", os.Getpid())

func dial(addr string) (wshv1.HubServiceClient, *grpc.ClientConn) {
	conn, err := grpc.Dial(addr, grpc.WithInsecure())
	check(err, "dial "+addr)
	return wshv1.NewHubServiceClient(conn), conn
}

// failure is what fail panics with; run recovers it, so that the sessions
// made so far are killed before the program exits.
type failure string

func fail(format string, args ...interface{}) {
	panic(failure(fmt.Sprintf(format, args...)))
}

func check(err error, what string) {
	if err != nil {
		fail("%s: %v", what, err)
	}
}

func ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), rpcDeadline)
}

// errorReason is the ErrorInfo reason a failed call carries, as an
// ErrorReason (ERROR_REASON_UNSPECIFIED for none, or one newer than this
// build): grpc-go decodes google.rpc.Status from grpc-status-details-bin.
func errorReason(err error) wshv1.ErrorReason {
	for _, detail := range status.Convert(err).Details() {
		if info, ok := detail.(*errdetails.ErrorInfo); ok {
			return wshv1.ErrorReason(wshv1.ErrorReason_value[info.Reason])
		}
	}
	return wshv1.ErrorReason_ERROR_REASON_UNSPECIFIED
}

// sendWaitRead creates a shell, types a command, waits until its output has
// settled and reads it.
func sendWaitRead(client wshv1.HubServiceClient, server, name, owner string) {
	c, cancel := ctx()
	defer cancel()
	created, err := client.CreateSession(c, &wshv1.CreateSessionRequest{Server: server, Name: name, Command: "sh"})
	check(err, "CreateSession")
	if created.Session.Server != owner {
		fail("session created on %q, not %q", created.Session.Server, owner)
	}
	sent, err := client.SendInput(c, &wshv1.SendInputRequest{
		Server: server, Name: name, Input: &wshv1.SendInputRequest_Text{Text: "echo wsh-$((6*7))\n"},
	})
	check(err, "SendInput")
	// The idiom: wait from the generation the input produced, so the wait
	// cannot end on the quiet before the shell has even read the line.
	waited, err := client.AwaitIdle(c, &wshv1.AwaitIdleRequest{
		Server: server, Name: name, TimeoutMs: 500, LastGeneration: proto.Uint64(sent.Generation),
	})
	check(err, "AwaitIdle")
	if waited.Idle.Generation <= sent.Generation {
		fail("idle at generation %d, before the output (input was %d)", waited.Idle.Generation, sent.Generation)
	}
	got, err := client.GetScreen(c, &wshv1.GetScreenRequest{Server: server, Name: name})
	check(err, "GetScreen")
	// The typed line shows `wsh-$((6*7))`; only the shell's output has wsh-42.
	if !strings.Contains(strings.Join(got.Screen.Lines, "\n"), "wsh-42") {
		fail("output not on the screen: %q", got.Screen.Lines)
	}
}

// raceIdle races every session tagged tag in the cluster until count of them
// have settled (READY: each shell waits at its prompt), and returns them as
// "server/session", sorted.
func raceIdle(hub wshv1.HubServiceClient, tag string, count int) []string {
	c, cancel := ctx()
	defer cancel()
	stream, err := hub.RaceIdle(c, &wshv1.RaceIdleRequest{
		Tags: []string{tag}, Mode: wshv1.IdleMode_IDLE_MODE_READY, TimeoutMs: 300, MaxWaitMs: 20000,
		MaxResults: uint32(count),
	})
	check(err, "RaceIdle")
	var settled []string
	for {
		response, err := stream.Recv()
		// With max_results the stream ends OK after the last result.
		if errors.Is(err, io.EOF) {
			break
		}
		check(err, "RaceIdle stream")
		settled = append(settled, response.Idle.Server+"/"+response.Idle.Session)
	}
	sort.Strings(settled)
	return settled
}

func expectNotFound(client wshv1.HubServiceClient, label string) {
	c, cancel := ctx()
	defer cancel()
	_, err := client.GetScreen(c, &wshv1.GetScreenRequest{Name: prefix + "-missing"})
	if err == nil {
		fail("%s: GetScreen of a missing session succeeded", label)
	}
	if code := status.Code(err); code != codes.NotFound {
		fail("%s: code %v, not NotFound: %v", label, code, err)
	}
	if reason := errorReason(err); reason != wshv1.ErrorReason_SESSION_NOT_FOUND {
		fail("%s: reason %v, not SESSION_NOT_FOUND", label, reason)
	}
}

func hostname(client wshv1.HubServiceClient) string {
	c, cancel := ctx()
	defer cancel()
	info, err := client.GetServerInfo(c, &wshv1.GetServerInfoRequest{})
	check(err, "GetServerInfo")
	return info.Hostname
}

type made struct {
	client       wshv1.HubServiceClient
	server, name string
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: wsh-client HUB_ADDR BACKEND_ADDR")
		os.Exit(2)
	}
	os.Exit(run(os.Args[1], os.Args[2]))
}

func run(hubAddr, backendAddr string) (code int) {
	var sessions []made
	var conns []*grpc.ClientConn
	defer func() {
		for _, s := range sessions {
			c, cancel := ctx()
			_, _ = s.client.KillSession(c, &wshv1.KillSessionRequest{Server: s.server, Name: s.name})
			cancel()
		}
		for _, conn := range conns {
			conn.Close()
		}
		if r := recover(); r != nil {
			f, ok := r.(failure)
			if !ok {
				panic(r)
			}
			fmt.Fprintln(os.Stderr, "FAILED: "+string(f))
			code = 1
		}
	}()
	hub, hubConn := dial(hubAddr)
	backend, backendConn := dial(backendAddr)
	conns = append(conns, hubConn, backendConn)
	hubName, backendName := hostname(hub), hostname(backend)
	step := func(label string, body func()) {
		started := time.Now()
		body()
		fmt.Printf("ok %s (%d ms)\n", label, time.Since(started).Milliseconds())
	}

	step("loop on the backend directly", func() {
		sessions = append(sessions, made{backend, "", prefix + "-direct"})
		sendWaitRead(backend, "", prefix+"-direct", backendName)
	})
	step("loop through the hub", func() {
		sessions = append(sessions, made{hub, backendName, prefix + "-via-hub"})
		sendWaitRead(hub, backendName, prefix+"-via-hub", backendName)
	})
	step("RaceIdle across hub and backend", func() {
		tag := prefix + "-race"
		var want []string
		for _, server := range []string{hubName, backendName} {
			name := prefix + "-race-" + server
			sessions = append(sessions, made{hub, server, name})
			c, cancel := ctx()
			_, err := hub.CreateSession(c, &wshv1.CreateSessionRequest{Server: server, Name: name, Command: "sh", Tags: []string{tag}})
			cancel()
			check(err, "CreateSession")
			want = append(want, server+"/"+name)
		}
		sort.Strings(want)
		if got := raceIdle(hub, tag, len(want)); strings.Join(got, " ") != strings.Join(want, " ") {
			fail("RaceIdle delivered %q, want %q", got, want)
		}
	})
	step("ErrorInfo reason of a failed call", func() {
		expectNotFound(backend, "backend")
		expectNotFound(hub, "hub")
	})
	fmt.Println("all checks passed")
	return 0
}
