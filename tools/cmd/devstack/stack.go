package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// runScript runs a script of scripts/ with bash, its output going to out line by line.
func runScript(ctx context.Context, root string, out io.Writer, script string, args ...string) error {
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(root, "scripts", script)}, args...)...)
	cmd.Dir = root
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("scripts/%s %s: %w", script, strings.Join(args, " "), err)
	}
	return nil
}

// stackEnv runs `scripts/stack.sh env` and returns the variables it exports.
func stackEnv(ctx context.Context, root string) (map[string]string, error) {
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts", "stack.sh"), "env")
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("scripts/stack.sh env: %w", err)
	}
	return parseExports(string(out))
}

// parseExports reads lines of the form `export NAME='value'` (or "value", or bare value), as
// scripts/stack.sh env prints them.
func parseExports(text string) (map[string]string, error) {
	vars := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		rest, ok := strings.CutPrefix(line, "export ")
		if !ok {
			return nil, fmt.Errorf("stack env line %d: not an export line", n)
		}
		name, value, ok := strings.Cut(strings.TrimSpace(rest), "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("stack env line %d: no NAME=value", n)
		}
		v, err := unquote(value)
		if err != nil {
			return nil, fmt.Errorf("stack env line %d (%s): %w", n, name, err)
		}
		vars[name] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read stack env: %w", err)
	}
	return vars, nil
}

// unquote undoes shell quoting of a single word: 'single', "double" (with \" and \\) or bare.
func unquote(s string) (string, error) {
	switch {
	case len(s) >= 2 && s[0] == '\'' && s[len(s)-1] == '\'':
		// A ' inside single quotes is written '\'' by the shell.
		return strings.ReplaceAll(s[1:len(s)-1], `'\''`, `'`), nil
	case len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"':
		r := strings.NewReplacer(`\"`, `"`, `\\`, `\`, `\$`, `$`, "\\`", "`")
		return r.Replace(s[1 : len(s)-1]), nil
	case strings.ContainsAny(s, `'"`):
		return "", errors.New("unbalanced quotes")
	default:
		return s, nil
	}
}

// jwtSecret returns the development signing secret kept in path, creating it (64 random hex
// characters, mode 0600) when missing or too short. The secret never leaves the file and the
// children's environment.
func jwtSecret(path string) (secret string, created bool, err error) {
	b, err := os.ReadFile(path) // #nosec G304 -- .dev/jwt-secret of this checkout
	switch {
	case err == nil:
		if s := strings.TrimSpace(string(b)); len(s) >= 32 {
			// Keep it private even when something loosened the mode.
			if err := os.Chmod(path, 0o600); err != nil {
				return "", false, fmt.Errorf("restrict %s: %w", path, err)
			}
			return s, false, nil
		}
	case !errors.Is(err, fs.ErrNotExist):
		return "", false, fmt.Errorf("read %s: %w", path, err)
	}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw) // crypto/rand.Read never fails (it aborts the process instead).
	secret = hex.EncodeToString(raw)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", false, fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	tmp := path + ".tmp"
	_ = os.Remove(tmp) // WriteFile keeps the mode of an existing file
	if err := os.WriteFile(tmp, []byte(secret+"\n"), 0o600); err != nil {
		return "", false, fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", false, fmt.Errorf("write %s: %w", path, err)
	}
	return secret, true, nil
}
