//go:build failpoint

package failpoint

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// call sends one request to the endpoint and returns the status and body.
func call(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The endpoint sets and clears failpoints that the hooks then obey, over
// real HTTP on loopback.
func TestEndpointDrivesTheHooks(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	t.Setenv(EnvAddr, addr)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if err := Serve(ctx, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr + "/"
	t.Cleanup(func() { reg.update(func(m map[string]set) { clear(m) }) })

	if code, body := call(t, http.MethodPut, base+Clock, "offset(-3s)"); code != http.StatusNoContent {
		t.Fatalf("PUT clock: %d %s", code, body)
	}
	if off := time.Until(Now()); off > -2900*time.Millisecond || off < -3100*time.Millisecond {
		t.Fatalf("Now is %s from the wall clock, want -3s", off)
	}
	if code, body := call(t, http.MethodPut, base+FSMApply, "sleep(40ms)"); code != http.StatusNoContent {
		t.Fatalf("PUT fsm-apply: %d %s", code, body)
	}
	start := time.Now()
	Sleep(FSMApply)
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Fatalf("Sleep took %s, want at least 40ms", d)
	}
	if _, body := call(t, http.MethodGet, base, ""); !strings.Contains(body, "clock=offset(-3s)") || !strings.Contains(body, "fsm-apply=sleep(40ms)") {
		t.Fatalf("GET / = %q", body)
	}
	for _, n := range []string{Clock, FSMApply} {
		if code, body := call(t, http.MethodDelete, base+n, ""); code != http.StatusNoContent {
			t.Fatalf("DELETE %s: %d %s", n, code, body)
		}
	}
	if off := time.Until(Now()); off < -100*time.Millisecond {
		t.Fatalf("cleared clock still %s off", off)
	}
	start = time.Now()
	Sleep(FSMApply)
	if d := time.Since(start); d > 30*time.Millisecond {
		t.Fatalf("cleared Sleep took %s", d)
	}
}

func TestEndpointRefusesBadTerms(t *testing.T) {
	for _, tc := range []struct{ name, term string }{
		{"nosuch", "sleep(1ms)"},
		{FSMApply, "offset(1s)"},
		{Clock, "sleep(1s)"},
		{FSMApply, "sleep(-1s)"},
		{FSMApply, "sleep(2h)"},
		{Clock, "offset(1 s)"},
		{RaftStoreLogs, "sleep(10ms"},
	} {
		if _, err := parseTerm(tc.name, tc.term); err == nil {
			t.Errorf("parseTerm(%s, %q) accepted", tc.name, tc.term)
		}
	}
	s, err := parseTerm(RaftStoreLogs, " sleep(25ms) ")
	if err != nil || s != (set{kind: "sleep", d: 25 * time.Millisecond}) {
		t.Fatalf("parseTerm = %+v, %v", s, err)
	}
}
