package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/heraldmail/herald/libs/flags"
	"github.com/heraldmail/herald/migrations/lint"
)

// flagsImport is the import path of the flags package.
const flagsImport = "github.com/heraldmail/herald/libs/flags"

// flagsDir is the flags package's directory under the repository root; it owns the registry
// and the key layout, so it is not scanned for references.
const flagsDir = "libs/flags"

// expiryWarning is how long before its expected removal a flag is warned about.
const expiryWarning = 14 * 24 * time.Hour

// keyLiteral is a Redis key of a flag written out in a string: "ff:<flag>...".
var keyLiteral = regexp.MustCompile(`^ff:([a-z][a-z0-9_]*)(:|$)`)

// result is what check found.
type result struct {
	problems []string
	warnings []string
	files    int
}

// check checks the registry defs against the Go code under root on the day of now.
func check(root string, defs []flags.Definition, now time.Time) (result, error) {
	var res result
	if _, err := flags.NewRegistry(defs...); err != nil {
		res.problems = append(res.problems, fmt.Sprintf("registry: %s", err))
		return res, nil
	}
	api, declared, err := flagsPackage(filepath.Join(root, filepath.FromSlash(flagsDir)))
	if err != nil {
		return res, err
	}

	registered := map[string]flags.Definition{}
	today := flags.Date(now.UTC().Date())
	for _, d := range defs {
		registered[d.Flag.Name()] = d
		switch {
		case today.After(d.ExpectedRemoval):
			res.problems = append(res.problems, fmt.Sprintf("%s: past its expected removal on %s (owner %s): remove the flag and the code path it retires, or move the date with a reason",
				d.Flag, d.ExpectedRemoval.Format(time.DateOnly), d.Owner))
		case d.ExpectedRemoval.Sub(today) <= expiryWarning:
			res.warnings = append(res.warnings, fmt.Sprintf("%s: expected removal on %s (owner %s)", d.Flag, d.ExpectedRemoval.Format(time.DateOnly), d.Owner))
		}
	}
	// The identifiers declared in the registry file and the definitions must agree.
	idents := map[string]string{} // Go identifier -> flag name
	for ident, name := range declared {
		if _, ok := registered[name]; !ok {
			res.problems = append(res.problems, fmt.Sprintf("%s/%s: flags.%s (%q) is declared but has no definition in Registered()", flagsDir, "registry.go", ident, name))
			continue
		}
		idents[ident] = name
	}
	names := map[string]bool{}
	for _, name := range idents {
		names[name] = true
	}
	for name := range registered {
		if !names[name] {
			res.problems = append(res.problems, fmt.Sprintf("%s: registered but not declared as a package-level Flag in %s", name, flagsDir))
		}
	}

	refs := map[string]int{}
	walkErr := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") ||
				name == "testdata" || name == "vendor" || name == "node_modules" || rel == flagsDir) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		res.files++
		return scanFile(path, rel, api, idents, registered, refs, &res)
	})
	if walkErr != nil {
		return res, fmt.Errorf("scan %s: %w", root, walkErr)
	}
	for _, d := range defs {
		if refs[d.Flag.Name()] == 0 {
			res.problems = append(res.problems, fmt.Sprintf("%s: referenced nowhere outside %s (tests do not count): gate code with it or remove it", d.Flag, flagsDir))
		}
	}
	slices.Sort(res.problems)
	return res, nil
}

// scanFile records the flag references of one file and reports the unregistered ones.
func scanFile(path, rel string, api map[string]bool, idents map[string]string, registered map[string]flags.Definition, refs map[string]int, res *result) error {
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
	if err != nil {
		return fmt.Errorf("parse: %w", err)
	}
	alias := ""
	for _, imp := range file.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == flagsImport {
			alias = "flags"
			if imp.Name != nil {
				alias = imp.Name.Name
			}
		}
	}
	report := func(pos token.Pos, format string, args ...any) {
		res.problems = append(res.problems, fmt.Sprintf("%s:%d: ", rel, fset.Position(pos).Line)+fmt.Sprintf(format, args...))
	}
	ast.Inspect(file, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			x, ok := n.X.(*ast.Ident)
			if !ok || alias == "" || x.Name != alias {
				return true
			}
			sel := n.Sel.Name
			switch {
			case idents[sel] != "":
				refs[idents[sel]]++
			case sel == "NewFlag":
				report(n.Pos(), "flags.NewFlag outside the registry: declare the flag in %s/registry.go", flagsDir)
			case !api[sel]:
				report(n.Pos(), "flags.%s is not a registered flag", sel)
			}
		case *ast.BasicLit:
			if n.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(n.Value)
			if err != nil {
				return true
			}
			m := keyLiteral.FindStringSubmatch(s)
			if m == nil {
				return true
			}
			if _, ok := registered[m[1]]; ok {
				refs[m[1]]++
			} else {
				report(n.Pos(), "%q names the flag %s, which is not registered", s, m[1])
			}
		}
		return true
	})
	return nil
}

// flagsPackage parses the flags package in dir and returns its exported names and the flags
// it declares (Go identifier -> flag name, from `Ident = NewFlag("name")`).
func flagsPackage(dir string) (map[string]bool, map[string]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("read the flags package: %w", err)
	}
	api := map[string]bool{}
	declared := map[string]string{}
	fset := token.NewFileSet()
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, nil, fmt.Errorf("parse the flags package: %w", err)
		}
		for _, decl := range file.Decls {
			switch decl := decl.(type) {
			case *ast.FuncDecl:
				if decl.Recv == nil {
					api[decl.Name.Name] = true
				}
			case *ast.GenDecl:
				for _, spec := range decl.Specs {
					switch spec := spec.(type) {
					case *ast.TypeSpec:
						api[spec.Name.Name] = true
					case *ast.ValueSpec:
						for i, name := range spec.Names {
							api[name.Name] = true
							if i < len(spec.Values) {
								if flagName, ok := newFlagCall(spec.Values[i]); ok && name.IsExported() {
									declared[name.Name] = flagName
								}
							}
						}
					}
				}
			}
		}
	}
	return api, declared, nil
}

// newFlagCall returns name for the expression NewFlag("name").
func newFlagCall(e ast.Expr) (string, bool) {
	call, ok := e.(*ast.CallExpr)
	if !ok || len(call.Args) != 1 {
		return "", false
	}
	if fn, ok := call.Fun.(*ast.Ident); !ok || fn.Name != "NewFlag" {
		return "", false
	}
	lit, ok := call.Args[0].(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	name, err := strconv.Unquote(lit.Value)
	return name, err == nil
}

// findRoot returns the first directory from dir upwards that holds go.work.
func findRoot(dir string) (string, error) {
	root, err := lint.RepoRoot(dir)
	if err != nil {
		return "", fmt.Errorf("%w: pass -root", err)
	}
	return root, nil
}
