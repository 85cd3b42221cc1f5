package lint

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// codeRef is one place in Go code that mentions a flag.
type codeRef struct {
	file string
	line int
}

func (r codeRef) String() string {
	return fmt.Sprintf("%s:%d", r.file, r.line)
}

// findReferences searches every Go file under roots for each flag, as a
// whole name: not as part of a longer name (new_import does not match
// new_import_v2), but anywhere in the file (a string, an identifier or a
// comment), since any mention means that someone still has to look at it
// before the code it guards is gone.
func findReferences(roots, flags []string) (map[string][]codeRef, error) {
	patterns := make(map[string]*regexp.Regexp, len(flags))
	for _, flag := range flags {
		patterns[flag] = regexp.MustCompile(`(?:^|[^A-Za-z0-9_-])` + regexp.QuoteMeta(flag) + `(?:[^A-Za-z0-9_-]|$)`)
	}
	refs := make(map[string][]codeRef)
	for _, root := range roots {
		fsys := os.DirFS(root)
		err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if name != "." && skipCodeDir(name, d.Name()) {
					return fs.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(name, ".go") || !d.Type().IsRegular() {
				return nil
			}
			body, err := fs.ReadFile(fsys, name)
			if err != nil {
				return err
			}
			text := string(body)
			for flag, re := range patterns {
				for _, loc := range re.FindAllStringIndex(text, -1) {
					// loc[0] is the character before the name (or the name's
					// first, at the start of the file): a newline there is
					// before the name too.
					line := 1 + strings.Count(text[:loc[0]+1], "\n")
					refs[flag] = append(refs[flag], codeRef{file: filepath.Join(root, filepath.FromSlash(name)), line: line})
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("search %s for flag references: %w", root, err)
		}
	}
	return refs, nil
}

// skipCodeDir reports whether a directory of a code root holds no code that
// can use a flag: the migrations module (the linter and its fixtures), and
// hidden, vendored and node directories.
func skipCodeDir(rel, base string) bool {
	return rel == "migrations" || strings.HasPrefix(base, ".") || base == "vendor" || base == "node_modules"
}
