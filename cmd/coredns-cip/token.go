package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/coredns-cip/coredns-cip/internal/adminapi"
)

const tokenUsage = `Usage: coredns-cip token new NAME ROLE [--file PATH]
       coredns-cip token hash < TOKEN

Makes the tokens of the event API's tokens file (the cipvalidate option
"events ADDRESS tokens PATH"), one line each: NAME ROLE sha256:HEX.

Commands:
  new NAME ROLE   a new random token (256 bits) named NAME with ROLE: events
                  (post events and connections), read (GET everything, the
                  EDL) or operator (everything: unblock, allow, untag). It
                  prints the token, then the line for the tokens file, which
                  holds only the token's SHA-256. With --file PATH it adds the
                  line to PATH instead (created with mode 0600; nothing is
                  added if the file would not load, e.g. it names NAME
                  already) and prints the token alone. A reload of the server
                  reads the file again.
  hash            reads a token on standard input and prints its sha256:HEX,
                  to write in place of the token itself in the tokens file.

The token is shown once and kept nowhere: hand it to its client (a
--token-file, an Authorization header, a read token in the EDL's URL).

Exit status: 0 done, 2 error.

Flags:
`

// tokenCmd runs the token sub-command with args (those after "token").
func tokenCmd(_ context.Context, args []string, stdout, stderr io.Writer, _ func(string) string) int {
	return tokenRun(args, os.Stdin, stdout, stderr)
}

func tokenRun(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("token", tokenUsage, stderr)
	file := fs.String("file", "", "new: add the line to this tokens `file` and print only the token")
	var positional []string
	for rest := args; ; {
		if err := parseFlags(fs, rest); err != nil {
			return fail(stderr, err)
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	switch {
	case len(positional) == 3 && positional[0] == "new":
		return tokenNew(positional[1], positional[2], *file, stdout, stderr)
	case len(positional) == 1 && positional[0] == "hash" && *file == "":
		return tokenHash(stdin, stdout, stderr)
	case len(positional) == 0:
		fs.Usage()
		return exitError
	}
	return fail(stderr, fmt.Errorf("cannot read %q: want new NAME ROLE [--file PATH], or hash", strings.Join(positional, " ")))
}

func tokenNew(name, roleName, file string, stdout, stderr io.Writer) int {
	if err := adminapi.CheckTokenName(name); err != nil {
		return fail(stderr, err)
	}
	role, err := adminapi.ParseRole(roleName)
	if err != nil {
		return fail(stderr, err)
	}
	secret := adminapi.NewSecret()
	line := adminapi.TokenLine(name, role, secret)
	if file == "" {
		fmt.Fprintf(stdout, "%s\n%s\n", secret, line)
		return exitClean
	}
	if err := appendTokenLine(file, line); err != nil {
		return fail(stderr, err)
	}
	fmt.Fprintln(stdout, secret)
	return exitClean
}

// appendTokenLine adds line to the tokens file path, creating it, and
// takes it back if the file then does not load.
func appendTokenLine(path, line string) (err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	size := info.Size()
	if size > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, size-1); err != nil {
			return err
		}
		if last[0] != '\n' {
			line = "\n" + line // the file's last line had no newline
		}
	}
	if _, err := f.WriteString(line + "\n"); err != nil {
		_ = f.Truncate(size)
		return err
	}
	if _, err := adminapi.LoadTokens(path); err != nil {
		_ = f.Truncate(size)
		return fmt.Errorf("not added: %w", err)
	}
	return nil
}

func tokenHash(stdin io.Reader, stdout, stderr io.Writer) int {
	data, err := io.ReadAll(io.LimitReader(stdin, 64<<10))
	if err != nil {
		return fail(stderr, err)
	}
	secret := strings.TrimSpace(string(data))
	if err := adminapi.CheckSecret(secret); err != nil {
		return fail(stderr, err)
	}
	fmt.Fprintln(stdout, adminapi.HashSecret(secret))
	return exitClean
}
