package main

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"kaiwa/server"
	"kaiwa/server/store"
)

// TestBackupDurable runs kaiwa backup under strace and checks the order of its system calls:
// the file is synced before it is renamed into place, and its directory after, so a crash
// leaves either no backup or a whole one. Skipped where strace cannot trace.
func TestBackupDurable(t *testing.T) {
	t.Parallel()
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("no strace")
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "kaiwa.db")
	if code, _, stderr := runKaiwa(t, "correct horse\n", "user", "add", "-db", db, "root", "-admin"); code != 0 {
		t.Fatalf("user add: exit %d: %s", code, stderr)
	}
	st, err := store.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv, err := server.New(server.Config{}, st, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer srv.Close()
	defer ts.Close()

	outDir := filepath.Join(dir, "backups")
	if err := os.Mkdir(outDir, 0o700); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(outDir, "backup.db")
	trace := filepath.Join(dir, "trace")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := kaiwaCommand(ctx, nil, "backup", "-server", ts.URL, "-user", "root", "-o", out)
	cmd = exec.CommandContext(ctx, strace, append([]string{"-f", "-qq", "-o", trace, "-e", "trace=openat,fsync,fdatasync,rename,renameat,renameat2", cmd.Path}, cmd.Args[1:]...)...)
	cmd.Env = kaiwaCommand(ctx, nil).Env
	cmd.Stdin = strings.NewReader("correct horse\n")
	if outb, err := cmd.CombinedOutput(); err != nil {
		if strings.Contains(string(outb), "ptrace") || strings.Contains(string(outb), "Operation not permitted") {
			t.Skipf("strace cannot trace here: %s", outb)
		}
		t.Fatalf("backup under strace: %v\n%s", err, outb)
	}
	data, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	// find returns the index of the first line from start that matches re, and its submatches.
	find := func(start int, re *regexp.Regexp) (int, []string) {
		for i := start; i < len(lines); i++ {
			if m := re.FindStringSubmatch(lines[i]); m != nil {
				return i, m
			}
		}
		return -1, nil
	}
	q := regexp.QuoteMeta
	open, m := find(0, regexp.MustCompile(`openat\(.*"`+q(out+".partial")+`".*\) = (\d+)`))
	if open < 0 && strings.Contains(string(data), "<... openat resumed>") {
		t.Skip("strace split the partial file's openat across threads: this trace cannot tell its descriptor")
	}
	if open < 0 {
		t.Fatalf("no openat of the partial file in the trace:\n%s", data)
	}
	// With -f, strace splits a call that another thread interrupts: `fsync(8 <unfinished ...>`,
	// then `<... fsync resumed>) = 0`. The call's first line says when it began; the program
	// renames only after it returned.
	syncOf := func(fd string) *regexp.Regexp {
		return regexp.MustCompile(`f(data)?sync\(` + fd + `(\)\s*= 0| <unfinished \.\.\.>)`)
	}
	fileSync, _ := find(open, syncOf(m[1]))
	rename, _ := find(open, regexp.MustCompile(`rename(at2?)?\(.*"`+q(out+".partial")+`".*"`+q(out)+`"`))
	if rename < 0 {
		t.Fatalf("no rename of the partial file in the trace:\n%s", data)
	}
	if fileSync < 0 || fileSync > rename {
		t.Errorf("the backup file is not synced before its rename (sync at line %d, rename at %d):\n%s", fileSync, rename, data)
	}
	dirOpen, dm := find(rename, regexp.MustCompile(`openat\(.*"`+q(outDir)+`".*\) = (\d+)`))
	if dirOpen < 0 {
		t.Fatalf("the directory is not opened after the rename:\n%s", data)
	}
	if dirSync, _ := find(dirOpen, syncOf(dm[1])); dirSync < 0 {
		t.Errorf("the directory is not synced after the rename:\n%s", data)
	}
}
