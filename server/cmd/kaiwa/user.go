package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"kaiwa/server/auth"
	"kaiwa/server/store"
	"kaiwa/shared/client"
)

func user(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: user needs add or passwd", errUsage)
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("kaiwa user "+sub, flag.ContinueOnError)
	dbPath := fs.String("db", "data/kaiwa.db", "bbolt database file")
	natsURLs := fs.String("nats", "", "cluster mode: comma-separated NATS URLs of the cluster (a node's -nats-embed address); the change goes through the cluster, and -db is not used")
	var admin *bool
	switch sub {
	case "add":
		admin = fs.Bool("admin", false, "make the user an administrator")
	case "passwd":
	default:
		return fmt.Errorf("%w: unknown user command %q", errUsage, sub)
	}
	rest, err := parseFlags(fs, args, stderr)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return fmt.Errorf("%w: kaiwa user %s takes one NAME", errUsage, sub)
	}
	name := rest[0]
	password, err := readPassword(stdin, stderr, "Password for "+name+": ")
	if err != nil {
		return err
	}
	var st store.Engine
	if *natsURLs != "" {
		e, closeEngine, err := openClusterTool(splitList(*natsURLs))
		if err != nil {
			return err
		}
		defer closeEngine()
		st = e
	} else {
		s, err := store.Open(*dbPath)
		if err != nil {
			return err
		}
		defer s.Close()
		st = s
	}
	a, err := auth.New(st, auth.Config{})
	if err != nil {
		return err
	}
	ctx := context.Background()
	if sub == "add" {
		u, err := a.CreateUser(ctx, name, password, *admin)
		if err != nil {
			return describe(err)
		}
		fmt.Fprintf(stdout, "created user %s (id %s, admin %t)\n", u.Name, u.ID, u.Admin)
		return nil
	}
	if err := a.SetPassword(ctx, name, password); err != nil {
		return describe(err)
	}
	fmt.Fprintf(stdout, "password changed for %s; all of their sessions are signed out\n", strings.ToLower(name))
	return nil
}

// describe turns the sentinel errors of auth and store into sentences for the terminal.
func describe(err error) error {
	switch {
	case errors.Is(err, auth.ErrInvalidUsername):
		return errors.New("a username has 3 to 32 of a-z, 0-9, _ . and -")
	case errors.Is(err, auth.ErrInvalidPassword):
		return errors.New("a password has 8 to 1024 bytes")
	case errors.Is(err, auth.ErrUsernameTaken):
		return errors.New("that username is taken")
	case errors.Is(err, store.ErrNotFound):
		return errors.New("no such user")
	}
	return err
}

// readPassword reads one line from stdin, prompting on stderr when stdin is a terminal.
func readPassword(stdin io.Reader, stderr io.Writer, prompt string) (string, error) {
	if f, ok := stdin.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprint(stderr, prompt)
		}
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", errors.New("no password on standard input")
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func backup(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kaiwa backup", flag.ContinueOnError)
	serverURL := fs.String("server", "http://localhost:8080", "URL of the running server")
	name := fs.String("user", "", "an administrator's username")
	out := fs.String("o", "", "file to write")
	rest, err := parseFlags(fs, args, stderr)
	if err != nil {
		return err
	}
	if len(rest) > 0 || *name == "" || *out == "" {
		return fmt.Errorf("%w: kaiwa backup needs -user NAME and -o FILE", errUsage)
	}
	password, err := readPassword(stdin, stderr, "Password for "+*name+": ")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	api := client.NewAPI(*serverURL, nil)
	tb, err := api.Login(ctx, *name, password)
	if err != nil {
		return err
	}
	defer api.Logout(ctx)
	tmp := *out + ".partial"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	n, err := api.Backup(ctx, tb.AccessToken, f)
	if err == nil {
		err = f.Sync() // the contents reach the disk before the name points at them
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, *out)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	// The rename itself lasts only once the directory is synced. Some systems cannot sync a
	// directory; the backup is whole either way, so that is a warning.
	if err := syncDir(filepath.Dir(*out)); err != nil {
		fmt.Fprintf(stderr, "kaiwa: backup: sync %s: %v\n", filepath.Dir(*out), err)
	}
	fmt.Fprintf(stdout, "saved %d bytes to %s\n", n, *out)
	return nil
}

// syncDir flushes a directory's entries (a rename into it) to the disk.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
