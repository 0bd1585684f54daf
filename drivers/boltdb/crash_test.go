package boltdb

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Environment of the child process TestRestoreSurvivesKill starts.
const (
	crashChildFile    = "KVNODE_BOLTDB_CRASH_FILE"
	crashChildStreams = "KVNODE_BOLTDB_CRASH_STREAMS"
)

// TestRestoreSurvivesKill kills a process at random points while it
// restores one snapshot after another into a file, and opens the file after
// each kill: it must open, hold exactly one of the states ever restored (or
// the first), with that state's applied index, and no leftover files.
// (SIGKILL keeps the page cache: this covers process crashes, not power
// loss, which the fsyncs in Restore are for.)
func TestRestoreSurvivesKill(t *testing.T) {
	if file := os.Getenv(crashChildFile); file != "" {
		restoreUntilKilled(t, file, filepath.SplitList(os.Getenv(crashChildStreams)))
		return
	}
	if testing.Short() {
		t.Skip("starts processes")
	}
	cfg := testConfig(t)
	e := openEngine(t, cfg)
	mustApply(t, e, 1, setOp(sec, item("who", "first", 0)))
	wantIndex := map[string]uint64{hash(t, e): 1}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	var streams []string
	for i, index := range []uint64{10, 20} {
		src := newEngine(t)
		fill(t, src, index, 200*(i+1))
		wantIndex[hash(t, src)] = index
		name := filepath.Join(t.TempDir(), fmt.Sprintf("stream-%d", index))
		if err := os.WriteFile(name, snapshotBytes(t, src), 0o600); err != nil {
			t.Fatal(err)
		}
		streams = append(streams, name)
	}

	seen := map[uint64]int{}
	for range 10 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRestoreSurvivesKill$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildFile+"="+cfg.File, crashChildStreams+"="+strings.Join(streams, string(os.PathListSeparator)))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || line != "restoring\n" {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("child did not start restoring: %q, %v; stderr: %s", line, err, stderr.String())
		}
		time.Sleep(rand.N(30 * time.Millisecond)) // the fault: a kill at a random point
		_ = cmd.Process.Kill()
		_ = cmd.Wait()

		e, err := Open(cfg, nil)
		if err != nil {
			t.Fatalf("Open after kill: %v", err)
		}
		h, index := hash(t, e), e.AppliedIndex()
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		if want, ok := wantIndex[h]; !ok || want != index {
			t.Fatalf("after kill: a state never restored, or applied index %d with it (want %d)", index, want)
		}
		seen[index]++
		if entries, _ := os.ReadDir(filepath.Dir(cfg.File)); len(entries) != 1 {
			t.Fatalf("Open after kill left files behind: %v", entries)
		}
	}
	t.Logf("states found after kills, by applied index: %v", seen)
}

// restoreUntilKilled is the child: it restores the streams in turn into
// file, for at most a minute (the parent kills it long before).
func restoreUntilKilled(t *testing.T, file string, streams []string) {
	e := openEngine(t, Config{File: file})
	fmt.Println("restoring")
	for start := time.Now(); time.Since(start) < time.Minute; {
		for _, s := range streams {
			f, err := os.Open(s)
			if err != nil {
				t.Fatal(err)
			}
			err = e.Restore(bufio.NewReader(f))
			_ = f.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}
