package sysmem

import (
	"os"
	"path/filepath"
	"testing"
)

func write(t *testing.T, root, path, data string) {
	t.Helper()
	p := filepath.Join(root, path)
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

const meminfo = "MemTotal:       24683784 kB\nMemFree:  1 kB\n"

func TestLimit(t *testing.T) {
	physical := int64(24683784) << 10
	cases := map[string]struct {
		files map[string]string
		want  int64
		src   Source
	}{
		"v2 limit": {map[string]string{
			"proc/self/cgroup":                 "0::/kv\n",
			"sys/fs/cgroup/kv/memory.max":      "1073741824\n",
			"proc/meminfo":                     meminfo,
			"sys/fs/cgroup/memory.max":         "max\n",
			"sys/fs/cgroup/other/memory.max":   "1\n",
			"sys/fs/cgroup/kv/memory.high":     "1\n",
			"sys/fs/cgroup/kv/memory.current":  "5\n",
			"sys/fs/cgroup/kv/memory.swap.max": "0\n",
		}, 1 << 30, CgroupV2},
		"v2 unlimited": {map[string]string{
			"proc/self/cgroup":            "0::/kv\n",
			"sys/fs/cgroup/kv/memory.max": "max\n",
			"proc/meminfo":                meminfo,
		}, physical, Physical},
		"v2 in a container namespace": {map[string]string{
			"proc/self/cgroup":         "0::/\n",
			"sys/fs/cgroup/memory.max": "536870912\n",
			"proc/meminfo":             meminfo,
		}, 512 << 20, CgroupV2},
		"v1 limit": {map[string]string{
			"proc/self/cgroup": "9:name=systemd:/\n4:memory:/box/1\n0::/\n",
			"sys/fs/cgroup/memory/box/1/memory.limit_in_bytes": "268435456\n",
			"proc/meminfo": meminfo,
		}, 256 << 20, CgroupV1},
		"v1 unlimited, the mount's root": {map[string]string{
			"proc/self/cgroup":                           "4:memory:/gone\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
			"proc/meminfo":                               meminfo,
		}, physical, Physical},
		"limit above the machine": {map[string]string{
			"proc/self/cgroup":         "0::/\n",
			"sys/fs/cgroup/memory.max": "107374182400000\n",
			"proc/meminfo":             meminfo,
		}, physical, Physical},
		"no cgroup": {map[string]string{"proc/meminfo": meminfo}, physical, Physical},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			for p, d := range c.files {
				write(t, root, p, d)
			}
			got, src, err := Limit(root)
			if err != nil || got != c.want || src != c.src {
				t.Fatalf("Limit = %d, %q, %v; want %d, %q", got, src, err, c.want, c.src)
			}
		})
	}
	if _, _, err := Limit(t.TempDir()); err == nil {
		t.Fatal("Limit of an empty root succeeded")
	}
}

func TestLimit_ThisMachine(t *testing.T) {
	n, src, err := Limit("/")
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	if n <= 0 || src == "" {
		t.Fatalf("Limit = %d, %q", n, src)
	}
}
