package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
)

// nameWidth is the width of the service-name column; "events-ingest" is the longest name.
const nameWidth = 13

const colourReset = "\x1b[0m"

// ansiColour returns the i-th ANSI colour of the name column.
func ansiColour(i int) string {
	colours := [...]string{"\x1b[36m", "\x1b[32m", "\x1b[33m", "\x1b[35m", "\x1b[34m", "\x1b[96m", "\x1b[92m"}
	return colours[i%len(colours)]
}

// console writes whole lines to one output, each behind a fixed-width name column, so the
// output of several processes interleaves line by line and stays readable.
type console struct {
	mu     sync.Mutex
	out    io.Writer
	colour bool
	next   int
}

// newConsole writes to out, colouring the name column when colour is true.
func newConsole(out io.Writer, colour bool) *console {
	return &console{out: out, colour: colour}
}

// isTerminal reports whether f is a character device (a terminal rather than a file or pipe).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// toolPrefix returns the name column for devstack's own lines and its scripts': bold, so the
// colours stay for the services.
func (c *console) toolPrefix(name string) string {
	col := fmt.Sprintf("%-*s |", nameWidth, name)
	if !c.colour {
		return col + " "
	}
	return "\x1b[1m" + col + colourReset + " "
}

// prefix returns the name column for name, in the next colour.
func (c *console) prefix(name string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	col := fmt.Sprintf("%-*s |", nameWidth, name)
	if !c.colour {
		return col + " "
	}
	c.next++
	return ansiColour(c.next-1) + col + colourReset + " "
}

// writeLine writes one line behind prefix in a single write.
func (c *console) writeLine(prefix, line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, _ = io.WriteString(c.out, prefix+line+"\n")
}

// lineWriter is the io.Writer of one process's output: it splits what it gets into lines,
// writes each behind the process's name, and keeps the last lines for error reports.
type lineWriter struct {
	con    *console
	prefix string

	mu      sync.Mutex
	partial []byte
	tail    []string
	keep    int
}

// newLineWriter keeps the last keep lines.
func newLineWriter(con *console, prefix string, keep int) *lineWriter {
	return &lineWriter{con: con, prefix: prefix, keep: keep}
}

// Write implements io.Writer.
func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		w.emit(string(w.partial[:i]))
		w.partial = w.partial[i+1:]
	}
	return len(p), nil
}

// Flush writes a last line that did not end in a newline.
func (w *lineWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 {
		w.emit(string(w.partial))
		w.partial = nil
	}
}

func (w *lineWriter) emit(line string) {
	line = strings.TrimRight(line, "\r")
	w.con.writeLine(w.prefix, line)
	w.tail = append(w.tail, line)
	if len(w.tail) > w.keep {
		w.tail = w.tail[len(w.tail)-w.keep:]
	}
}

// Tail returns the last lines written.
func (w *lineWriter) Tail() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.tail...)
}
