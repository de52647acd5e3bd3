package tsh

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/keyport/keyport/internal/errs"
)

// prompter asks questions on stderr and reads answers from stdin: a password without
// echo when stdin is a terminal, otherwise (scripts, tests) one line per answer. One
// buffered reader serves every question so that answers fed together are not lost.
type prompter struct {
	in  io.Reader
	br  *bufio.Reader
	out io.Writer
}

func newPrompter(in io.Reader, out io.Writer) *prompter {
	if in == nil {
		in = strings.NewReader("")
	}
	return &prompter{in: in, br: bufio.NewReader(in), out: out}
}

// terminal returns stdin's descriptor when it is a terminal.
func (p *prompter) terminal() (int, bool) {
	f, ok := p.in.(*os.File)
	if !ok {
		return 0, false
	}
	fd := int(f.Fd())
	return fd, term.IsTerminal(fd)
}

// Line asks question and returns the answer without surrounding space.
func (p *prompter) Line(question, what string) (string, error) {
	fmt.Fprint(p.out, question)
	line, err := p.br.ReadString('\n')
	if errors.Is(err, io.EOF) && line == "" {
		fmt.Fprintln(p.out)
		return "", errs.BadParameterf("no %s given on standard input", what)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading %s: %w", what, err)
	}
	if _, tty := p.terminal(); !tty {
		fmt.Fprintln(p.out)
	}
	return strings.TrimSpace(line), nil
}

// Password asks for a secret, without echo on a terminal. Only a trailing newline is
// removed: spaces may be part of a password.
func (p *prompter) Password(question, what string) (string, error) {
	fd, tty := p.terminal()
	if !tty {
		fmt.Fprint(p.out, question)
		line, err := p.br.ReadString('\n')
		fmt.Fprintln(p.out)
		if errors.Is(err, io.EOF) && line == "" {
			return "", errs.BadParameterf("no %s given on standard input", what)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("reading %s: %w", what, err)
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	fmt.Fprint(p.out, question)
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(p.out)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", what, err)
	}
	return string(b), nil
}
