// Command kaiwa is the Kaiwa chat server and its tools.
//
//	kaiwa [serve] [flags]          serve the chat (the default)
//	kaiwa user add NAME [-admin]   create a user; password from stdin
//	kaiwa user passwd NAME         set a password; signs the user out everywhere
//	kaiwa backup -server URL -user NAME -o FILE
//	kaiwa key rotate               new signing key: voids every access token, keeps sessions
//	kaiwa import -nats URL -db FILE   copy a single-process database into an empty cluster
//	kaiwa version
//
// Every flag has an environment twin: -access-ttl ↔ KAIWA_ACCESS_TTL. A flag wins over its twin.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// errUsage marks an error in how the command was called: exit status 2.
var errUsage = errors.New("usage")

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(args, stderr)
	case "user":
		err = user(args, stdin, stdout, stderr)
	case "backup":
		err = backup(args, stdin, stdout, stderr)
	case "key":
		err = key(args, stdout, stderr)
	case "bench":
		err = benchCmd(args, stdout, stderr)
	case "import":
		err = importCmd(args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "kaiwa", version)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
	default:
		err = fmt.Errorf("%w: unknown command %q", errUsage, cmd)
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "kaiwa: %v\n\n%s", err, usage)
		return 2
	default:
		fmt.Fprintf(stderr, "kaiwa: %v\n", err)
		return 1
	}
}

const usage = `Usage:
  kaiwa [serve] [flags]              serve the chat (default)
  kaiwa user add NAME [-admin]       create a user; password read from stdin
  kaiwa user passwd NAME             set a user's password; signs them out everywhere
  kaiwa backup -server URL -user NAME -o FILE
                                     save a consistent copy of a running server's database
  kaiwa key rotate                   replace the access-token signing key (server stopped):
                                     every access token is void, sessions refresh silently
  kaiwa import -nats URL -db FILE    copy a single-process database (server stopped) into an
                                     empty cluster; "kaiwa import -h" says what empty means
  kaiwa bench [-scenario LIST] [-nats] [-peer PATH] [-json] [-o FILE]
                                     run the benchmarks against a server it starts
                                     (-nats: fanout and durable on a 3-node cluster)
  kaiwa version                      print the version

Run "kaiwa serve -h" for the server's flags. Every flag has an environment twin:
-access-ttl is KAIWA_ACCESS_TTL. A flag wins over its twin.
`
