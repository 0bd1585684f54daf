// Package sysmem finds how much memory this process may use: its cgroup's
// memory limit when there is one (cgroup v2 memory.max, or v1
// memory.limit_in_bytes), else the machine's physical memory. kvnode
// resolves a max_memory given as a percentage against it.
package sysmem

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ErrUnknown is returned where neither a cgroup limit nor the physical
// memory can be read (not Linux, no /proc).
var ErrUnknown = errors.New("cannot tell how much memory this process may use")

// Source says where a limit came from, for logs and errors.
type Source string

// Sources of Limit.
const (
	CgroupV2 Source = "cgroup v2 memory.max"
	CgroupV1 Source = "cgroup v1 memory.limit_in_bytes"
	Physical Source = "physical memory (/proc/meminfo MemTotal)"
)

// noLimit is what cgroup v1 reports for "unlimited" (the largest multiple
// of the page size below 2^63), and beyond any real machine.
const noLimit = 1 << 62

// Limit returns the memory this process may use and where that figure
// comes from, reading the files under root ("/" on a real system).
func Limit(root string) (int64, Source, error) {
	physical, perr := memTotal(filepath.Join(root, "proc/meminfo"))
	if n, src, ok := cgroupLimit(root); ok && (perr != nil || n < physical) {
		return n, src, nil //nolint:nilerr // a cgroup limit stands on its own; meminfo, when readable, only caps it
	}
	if perr != nil {
		return 0, "", fmt.Errorf("%w: %w", ErrUnknown, perr)
	}
	return physical, Physical, nil
}

// cgroupLimit reads the memory limit of the process's cgroup, at the path
// /proc/self/cgroup names under the hierarchy's mount, or at the mount's
// root (a container sees its own cgroup there).
func cgroupLimit(root string) (int64, Source, bool) {
	data, err := os.ReadFile(filepath.Join(root, "proc/self/cgroup"))
	if err != nil {
		return 0, "", false
	}
	for line := range strings.Lines(string(data)) {
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			for _, dir := range []string{parts[2], "/"} {
				if n, ok := readLimit(filepath.Join(root, "sys/fs/cgroup", dir, "memory.max")); ok {
					return n, CgroupV2, true
				}
			}
		case slices.Contains(strings.Split(parts[1], ","), "memory"):
			for _, dir := range []string{parts[2], "/"} {
				if n, ok := readLimit(filepath.Join(root, "sys/fs/cgroup/memory", dir, "memory.limit_in_bytes")); ok {
					return n, CgroupV1, true
				}
			}
		}
	}
	return 0, "", false
}

// readLimit reads one limit file; ok is false for a missing file, "max" or
// an unlimited value.
func readLimit(path string) (int64, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	s := strings.TrimSpace(string(data))
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n >= noLimit {
		return 0, false
	}
	return n, true
}

// memTotal reads MemTotal from a meminfo file.
func memTotal(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err // wrapped by Limit
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("MemTotal %q: %w", rest, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("%s: no MemTotal line", path)
}
