package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"kaiwa/server/store"
	"kaiwa/shared/client"
	"kaiwa/shared/proto"
)

// TestDamagedDatabaseRefused starts kaiwa on copies of a real database with one page overwritten:
// it must exit non-zero at once and say how to restore, unless told not to check.
func TestDamagedDatabaseRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := filepath.Join(dir, "kaiwa.db")
	st, err := store.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	reqs := make([]store.AppendRequest, 3000)
	for i := range reqs {
		reqs[i] = store.AppendRequest{Room: store.DefaultRoom, UserID: "u1", From: "alice", ClientID: fmt.Sprint("c", i), Text: strings.Repeat("m", 60)}
	}
	if _, err := st.AppendBatch(reqs); err != nil {
		t.Fatal(err)
	}
	st.Close()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	// damage returns a copy of the database with the page holding marker overwritten.
	damage := func(t *testing.T, marker string) string {
		at := bytes.Index(data, []byte(marker))
		if at < 0 {
			t.Fatalf("%q is not in the file", marker)
		}
		const pageSize = 4096
		page := at / pageSize
		copied := bytes.Clone(data)
		copy(copied[page*pageSize:(page+1)*pageSize], bytes.Repeat([]byte{0x5a}, pageSize))
		path := filepath.Join(t.TempDir(), "kaiwa.db")
		if err := os.WriteFile(path, copied, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	tests := []struct {
		name   string
		marker string // the page to damage: the one holding this
		args   []string
		serves bool
	}{
		{"full check, damage in the middle of history", `"id":"c1500"`, nil, false},
		{"full check from the env twin", `"id":"c1500"`, []string{"KAIWA_CHECK=full"}, false},
		{"quick check, damage at the newest message", `"id":"c2999"`, []string{"-check", "quick"}, false},
		{"no check serves", `"id":"c1500"`, []string{"-check", "off"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := damage(t, tc.marker)
			var env, args []string
			for _, a := range tc.args {
				if strings.HasPrefix(a, "KAIWA_") {
					env = append(env, a)
				} else {
					args = append(args, a)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			cmd := kaiwaCommand(ctx, env, append([]string{"serve", "-addr", "127.0.0.1:0", "-db", db}, args...)...)
			var stderr lockedBuffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			if tc.serves {
				deadline := time.Now().Add(10 * time.Second)
				for !strings.Contains(stderr.String(), "msg=serving") && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
				}
				if !strings.Contains(stderr.String(), "msg=serving") {
					t.Fatalf("-check off did not serve: %s", stderr.String())
				}
				cmd.Process.Signal(syscall.SIGTERM)
				<-exited
				return
			}
			err := <-exited
			if ctx.Err() != nil {
				t.Fatalf("still running after 15 s: %s", stderr.String())
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Errorf("exit: %v, want status 1", err)
			}
			out := stderr.String()
			for _, want := range []string{"damaged", db, "kaiwa backup", "stop every kaiwa process", "copy the backup to"} {
				if !strings.Contains(out, want) {
					t.Errorf("stderr lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, "goroutine ") {
				t.Errorf("a crash, not a message:\n%s", out)
			}
		})
	}
}

// TestBackupUnderLoadAndRestore takes a backup with `kaiwa backup` while senders write, checks
// the copy holds every message acked before the backup began, then restores: the server is
// stopped and started on the copy, and answers with that history.
func TestBackupUnderLoadAndRestore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "kaiwa.db")
	if code, _, stderr := runKaiwa(t, "correct horse\n", "user", "add", "-db", db, "root", "-admin"); code != 0 {
		t.Fatalf("user add: %s", stderr)
	}
	p := startKaiwa(t, db)
	const senders = 4
	log := newAckLog()
	tokens := make([]string, senders)
	for i := range tokens {
		tb, err := client.NewAPI(p.base, nil).Register(context.Background(), fmt.Sprint("writer", i), "correct horse")
		if err != nil {
			t.Fatal(err)
		}
		tokens[i] = tb.AccessToken
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i, tok := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := sendLoop(ctx, p.base, fmt.Sprint("writer", i), tok, store.DefaultRoom, "m", nil, log); err != nil {
				t.Errorf("sender %d: %v", i, err)
			}
		}()
	}
	log.waitFor(t, 4*senders)
	before := log.snapshot()
	out := filepath.Join(dir, "backup.db")
	code, stdout, stderr := runKaiwa(t, "correct horse\n", "backup", "-server", p.base, "-user", "root", "-o", out)
	if code != 0 {
		t.Fatalf("backup: exit %d: %s", code, stderr)
	}
	log.waitFor(t, len(log.snapshot())+senders) // writes go on after the backup
	cancel()
	wg.Wait()
	t.Logf("%s; %d messages acked before it began", strings.TrimSpace(stdout), len(before))
	verifyHistory(t, out, store.DefaultRoom, before)

	// Restore: stop the server, start on the copy.
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.exited
	if p.err != nil {
		t.Fatalf("exit after SIGTERM: %v", p.err)
	}
	restored := startKaiwa(t, out)
	if code, body := getStatus(t, restored.base+"/healthz"); code != http.StatusOK || body != "ok" {
		t.Fatalf("healthz on the restored copy: %d %q", code, body)
	}
	// A token issued before the backup still works: the key and the sessions are in the copy.
	req, _ := http.NewRequest("GET", restored.base+"/api/rooms/general/messages?after=0&limit=200", nil)
	req.Header.Set("Authorization", "Bearer "+tokens[0])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page proto.MessagePage
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("history from the restored server: %d, %v", resp.StatusCode, err)
	}
	if len(page.Messages) == 0 || page.Messages[0].Seq != 1 {
		t.Fatalf("restored history starts %+v", page.Messages[:min(1, len(page.Messages))])
	}
	if seq, ok := before[ackKey(page.Messages[0].From, page.Messages[0].ID)]; ok && seq != 1 {
		t.Errorf("message 1 on the restored server was acked as %d", seq)
	}
}
