package main

import (
	"flag"
	"fmt"
	"io"

	"kaiwa/server/store"
)

// key runs `kaiwa key rotate`: a new access-token signing key, with the server stopped.
func key(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "rotate" {
		return fmt.Errorf("%w: kaiwa key needs rotate", errUsage)
	}
	fs := flag.NewFlagSet("kaiwa key rotate", flag.ContinueOnError)
	dbPath := fs.String("db", "data/kaiwa.db", "bbolt database file")
	rest, err := parseFlags(fs, args[1:], stderr)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, rest[0])
	}
	st, err := store.Open(*dbPath)
	if err != nil {
		return err
	}
	defer st.Close()
	if _, err := st.RotateSigningKey(); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "signing key rotated: every access token is void; sessions stay signed in and refresh on their next request")
	return nil
}
