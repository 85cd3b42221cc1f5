// Package envdoc checks that the configuration a reader sees is the configuration the code
// reads: it collects every environment variable the Go code of the repository reads and every
// variable documented in .env.example, so a test can compare the two.
//
// The Go side is read with go/parser, never executed. A variable counts as read when it is
//
//   - the env:"NAME" tag of a struct field (the tag libs/config loads), plus NAME_FILE when the
//     field is also tagged secret:"true";
//   - the argument of os.Getenv or os.LookupEnv, given as a string literal or a string constant;
//   - the argument of a call to a function parameter that receives os.Getenv or os.LookupEnv
//     at some call site (as in logging.Bootstrap(name, os.LookupEnv)), where the argument is a
//     literal, a constant, or a parameter of the enclosing function whose value at its call
//     sites is one.
//
// A read whose name cannot be worked out this way is reported, so that a variable never slips
// past the check because its name is computed.
package envdoc

import (
	"bufio"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Use is one place where the code reads a variable.
type Use struct {
	// Name is the variable.
	Name string
	// Pos is file:line relative to the scanned root.
	Pos string
}

// Reads is what Collect found.
type Reads struct {
	// Vars maps each variable to the places that read it.
	Vars map[string][]Use
	// Unresolved lists reads whose variable name could not be worked out, as file:line.
	Unresolved []string
}

// Names returns the variables, sorted.
func (r Reads) Names() []string {
	names := make([]string, 0, len(r.Vars))
	for n := range r.Vars {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// skipDir reports directories that hold no code of the project: VCS data, local state,
// build output, test fixtures and vendored code.
func skipDir(name string) bool {
	switch name {
	case "testdata", "vendor", "node_modules", "bin", "dist":
		return true
	}
	return strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")
}

// pkg is one Go package: the non-test files of one directory.
type pkg struct {
	path   string // import path
	files  []*fileInfo
	consts map[string]string // package-level string constants
	funcs  map[string]*ast.FuncDecl
}

type fileInfo struct {
	pkg     *pkg
	rel     string
	ast     *ast.File
	imports map[string]string // local name -> import path
}

// collector holds the parsed tree.
type collector struct {
	fset  *token.FileSet
	root  string
	pkgs  map[string]*pkg // by import path
	reads Reads
	seen  map[string]bool // dedupes Unresolved
}

// Collect parses every non-test .go file under root (skipping testdata, vendor and hidden
// directories) and returns the environment variables the code reads.
func Collect(root string) (Reads, error) {
	c := &collector{
		fset:  token.NewFileSet(),
		root:  root,
		pkgs:  map[string]*pkg{},
		reads: Reads{Vars: map[string][]Use{}},
		seen:  map[string]bool{},
	}
	if err := c.parse(); err != nil {
		return Reads{}, err
	}
	c.collectTags()
	c.collectCalls()
	for _, uses := range c.reads.Vars {
		slices.SortFunc(uses, func(a, b Use) int { return strings.Compare(a.Pos, b.Pos) })
	}
	slices.Sort(c.reads.Unresolved)
	return c.reads, nil
}

func (c *collector) parse() error {
	modules := map[string]string{} // directory -> module path, for directories holding go.mod
	return filepath.WalkDir(c.root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != c.root && skipDir(d.Name()) {
				return filepath.SkipDir
			}
			if mod, err := modulePath(filepath.Join(path, "go.mod")); err != nil {
				return err
			} else if mod != "" {
				modules[path] = mod
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(c.fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return fmt.Errorf("parse %s: %w", path, err)
		}
		dir := filepath.Dir(path)
		importPath := importPathOf(modules, dir) + "#" + f.Name.Name
		p := c.pkgs[importPath]
		if p == nil {
			p = &pkg{path: importPath, consts: map[string]string{}, funcs: map[string]*ast.FuncDecl{}}
			c.pkgs[importPath] = p
		}
		rel, _ := filepath.Rel(c.root, path)
		fi := &fileInfo{pkg: p, rel: rel, ast: f, imports: map[string]string{}}
		for _, imp := range f.Imports {
			ip, _ := strconv.Unquote(imp.Path.Value)
			name := ip[strings.LastIndex(ip, "/")+1:]
			if imp.Name != nil {
				name = imp.Name.Name
			}
			fi.imports[name] = ip
		}
		p.files = append(p.files, fi)
		indexDecls(p, f)
		return nil
	})
}

// modulePath returns the module path declared by the go.mod file at path, or "" when there
// is no such file.
func modulePath(path string) (string, error) {
	f, err := os.Open(path) // #nosec G304 -- a go.mod inside the scanned tree
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 2 && fields[0] == "module" {
			return strings.Trim(fields[1], `"`), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return "", fmt.Errorf("%s declares no module", path)
}

// importPathOf derives the import path of dir from the nearest enclosing module.
func importPathOf(modules map[string]string, dir string) string {
	for d := dir; ; d = filepath.Dir(d) {
		if mod, ok := modules[d]; ok {
			rel, _ := filepath.Rel(d, dir)
			if rel == "." {
				return mod
			}
			return mod + "/" + filepath.ToSlash(rel)
		}
		if parent := filepath.Dir(d); parent == d {
			return dir
		}
	}
}

// indexDecls records the package-level string constants and functions of f.
func indexDecls(p *pkg, f *ast.File) {
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			if d.Recv == nil {
				p.funcs[d.Name.Name] = d
			}
		case *ast.GenDecl:
			if d.Tok != token.CONST {
				continue
			}
			for _, spec := range d.Specs {
				vs, ok := spec.(*ast.ValueSpec)
				if !ok {
					continue
				}
				for i, name := range vs.Names {
					if i >= len(vs.Values) {
						break
					}
					if s, ok := stringLit(vs.Values[i]); ok {
						p.consts[name.Name] = s
					}
				}
			}
		}
	}
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

func (c *collector) add(name string, fi *fileInfo, pos token.Pos) {
	c.reads.Vars[name] = append(c.reads.Vars[name], Use{Name: name, Pos: c.position(fi, pos)})
}

func (c *collector) unresolved(fi *fileInfo, pos token.Pos, what string) {
	msg := c.position(fi, pos) + ": " + what
	if !c.seen[msg] {
		c.seen[msg] = true
		c.reads.Unresolved = append(c.reads.Unresolved, msg)
	}
}

func (c *collector) position(fi *fileInfo, pos token.Pos) string {
	return fi.rel + ":" + strconv.Itoa(c.fset.Position(pos).Line)
}

// collectTags records env tags of struct fields.
func (c *collector) collectTags() {
	for _, p := range c.pkgs {
		for _, fi := range p.files {
			ast.Inspect(fi.ast, func(n ast.Node) bool {
				st, ok := n.(*ast.StructType)
				if !ok {
					return true
				}
				for _, field := range st.Fields.List {
					if field.Tag == nil {
						continue
					}
					raw, err := strconv.Unquote(field.Tag.Value)
					if err != nil {
						continue
					}
					tag := reflect.StructTag(raw)
					name, ok := tag.Lookup("env")
					if !ok {
						continue
					}
					if name == "" || name == "-" {
						continue
					}
					c.add(name, fi, field.Pos())
					if tag.Get("secret") == "true" {
						c.add(name+"_FILE", fi, field.Pos())
					}
				}
				return true
			})
		}
	}
}

// funcRef names a top-level function: package key and function name.
type funcRef struct {
	pkg, name string
}

// callSite is one call of a top-level function.
type callSite struct {
	fi   *fileInfo
	fn   *ast.FuncDecl // enclosing function of the call, nil at package level
	call *ast.CallExpr
}

// collectCalls records os.Getenv/os.LookupEnv reads, direct or through parameters.
func (c *collector) collectCalls() {
	// Every call of a top-level function of the tree, by callee.
	calls := map[funcRef][]callSite{}
	c.eachCall(func(fi *fileInfo, fn *ast.FuncDecl, call *ast.CallExpr, _ map[string]bool) {
		if ref, ok := c.callee(fi, call.Fun); ok {
			calls[ref] = append(calls[ref], callSite{fi: fi, fn: fn, call: call})
		}
	})

	// lookupParams: parameter indexes of functions that receive an environment lookup
	// function (os.Getenv, os.LookupEnv, or such a parameter passed on). Grown to a fixpoint.
	lookupParams := map[funcRef]map[int]bool{}
	isLookup := func(fi *fileInfo, fn *ast.FuncDecl, shadowed map[string]bool, e ast.Expr) bool {
		if isOSLookup(fi, e) {
			return true
		}
		id, ok := e.(*ast.Ident)
		if !ok || fn == nil || shadowed[id.Name] {
			return false
		}
		idx, ok := paramIndex(fn, id.Name)
		return ok && lookupParams[funcRef{fi.pkg.path, fn.Name.Name}][idx]
	}
	for changed := true; changed; {
		changed = false
		for ref, sites := range calls {
			decl := c.funcDecl(ref)
			if decl == nil {
				continue
			}
			for _, s := range sites {
				for i, arg := range s.call.Args {
					if !isLookup(s.fi, s.fn, nil, arg) {
						continue
					}
					if _, ok := paramAt(decl, i); !ok {
						continue
					}
					if lookupParams[ref] == nil {
						lookupParams[ref] = map[int]bool{}
					}
					if !lookupParams[ref][i] {
						lookupParams[ref][i] = true
						changed = true
					}
				}
			}
		}
	}

	c.eachCall(func(fi *fileInfo, fn *ast.FuncDecl, call *ast.CallExpr, shadowed map[string]bool) {
		if !isLookup(fi, fn, shadowed, call.Fun) {
			return
		}
		if len(call.Args) == 0 {
			return
		}
		names, ok := c.resolve(fi, fn, shadowed, call.Args[0], calls, 0)
		if !ok {
			c.unresolved(fi, call.Pos(), "reads an environment variable whose name is not a constant")
			return
		}
		for _, n := range names {
			c.add(n, fi, call.Pos())
		}
	})
}

// eachCall calls visit for every call expression of the tree with its enclosing top-level
// function and the names that function literals on the way shadow.
func (c *collector) eachCall(visit func(fi *fileInfo, fn *ast.FuncDecl, call *ast.CallExpr, shadowed map[string]bool)) {
	for _, p := range c.pkgs {
		for _, fi := range p.files {
			for _, decl := range fi.ast.Decls {
				fn, _ := decl.(*ast.FuncDecl)
				walkCalls(decl, map[string]bool{}, func(call *ast.CallExpr, shadowed map[string]bool) {
					visit(fi, fn, call, shadowed)
				})
			}
		}
	}
}

// walkCalls visits the calls under n. Inside a function literal its parameters shadow those
// of the enclosing function.
func walkCalls(n ast.Node, shadowed map[string]bool, visit func(*ast.CallExpr, map[string]bool)) {
	ast.Inspect(n, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.FuncLit:
			inner := map[string]bool{}
			for k := range shadowed {
				inner[k] = true
			}
			for _, f := range x.Type.Params.List {
				for _, name := range f.Names {
					inner[name.Name] = true
				}
			}
			walkCalls(x.Body, inner, visit)
			return false
		case *ast.CallExpr:
			visit(x, shadowed)
		}
		return true
	})
}

// isOSLookup reports whether e is os.Getenv or os.LookupEnv.
func isOSLookup(fi *fileInfo, e ast.Expr) bool {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	if !ok || fi.imports[id.Name] != "os" {
		return false
	}
	return sel.Sel.Name == "Getenv" || sel.Sel.Name == "LookupEnv"
}

// callee resolves the function a call expression names: F (same package) or pkg.F.
func (c *collector) callee(fi *fileInfo, fun ast.Expr) (funcRef, bool) {
	switch f := fun.(type) {
	case *ast.Ident:
		if _, ok := fi.pkg.funcs[f.Name]; ok {
			return funcRef{fi.pkg.path, f.Name}, true
		}
	case *ast.SelectorExpr:
		id, ok := f.X.(*ast.Ident)
		if !ok {
			return funcRef{}, false
		}
		ip, ok := fi.imports[id.Name]
		if !ok {
			return funcRef{}, false
		}
		if p := c.pkgByImport(ip); p != nil {
			if _, ok := p.funcs[f.Sel.Name]; ok {
				return funcRef{p.path, f.Sel.Name}, true
			}
		}
	}
	return funcRef{}, false
}

// pkgByImport finds the package of an import path (a directory holds one non-main package).
func (c *collector) pkgByImport(importPath string) *pkg {
	for key, p := range c.pkgs {
		if strings.HasPrefix(key, importPath+"#") && !strings.HasSuffix(key, "#main") {
			return p
		}
	}
	return nil
}

func (c *collector) funcDecl(ref funcRef) *ast.FuncDecl {
	if p := c.pkgs[ref.pkg]; p != nil {
		return p.funcs[ref.name]
	}
	return nil
}

// maxDepth bounds how many calls up resolve follows a parameter.
const maxDepth = 8

// resolve works out the variable names e can hold: a string literal, a constant, or a
// parameter of fn whose arguments at every call site resolve.
func (c *collector) resolve(fi *fileInfo, fn *ast.FuncDecl, shadowed map[string]bool, e ast.Expr, calls map[funcRef][]callSite, depth int) ([]string, bool) {
	if s, ok := stringLit(e); ok {
		return []string{s}, true
	}
	switch x := e.(type) {
	case *ast.ParenExpr:
		return c.resolve(fi, fn, shadowed, x.X, calls, depth)
	case *ast.SelectorExpr:
		id, ok := x.X.(*ast.Ident)
		if !ok {
			return nil, false
		}
		ip, ok := fi.imports[id.Name]
		if !ok {
			return nil, false
		}
		if p := c.pkgByImport(ip); p != nil {
			if s, ok := p.consts[x.Sel.Name]; ok {
				return []string{s}, true
			}
		}
		return nil, false
	case *ast.Ident:
		if shadowed[x.Name] {
			return nil, false
		}
		if fn != nil {
			if idx, ok := paramIndex(fn, x.Name); ok {
				if depth >= maxDepth {
					return nil, false
				}
				sites := calls[funcRef{fi.pkg.path, fn.Name.Name}]
				if len(sites) == 0 {
					return nil, false
				}
				var out []string
				for _, s := range sites {
					if idx >= len(s.call.Args) {
						return nil, false
					}
					names, ok := c.resolve(s.fi, s.fn, nil, s.call.Args[idx], calls, depth+1)
					if !ok {
						return nil, false
					}
					out = append(out, names...)
				}
				return out, true
			}
		}
		if s, ok := fi.pkg.consts[x.Name]; ok {
			return []string{s}, true
		}
		if fn != nil {
			if s, ok := localConst(fn, x.Name); ok {
				return []string{s}, true
			}
		}
	}
	return nil, false
}

// paramIndex returns the position of the parameter called name in fn's signature.
func paramIndex(fn *ast.FuncDecl, name string) (int, bool) {
	i := 0
	for _, f := range fn.Type.Params.List {
		if len(f.Names) == 0 {
			i++
			continue
		}
		for _, n := range f.Names {
			if n.Name == name {
				return i, true
			}
			i++
		}
	}
	return 0, false
}

// paramAt reports whether fn has a parameter at position i (variadic tails excluded).
func paramAt(fn *ast.FuncDecl, i int) (*ast.Field, bool) {
	j := 0
	for _, f := range fn.Type.Params.List {
		n := max(len(f.Names), 1)
		if i < j+n {
			if _, variadic := f.Type.(*ast.Ellipsis); variadic {
				return nil, false
			}
			return f, true
		}
		j += n
	}
	return nil, false
}

// localConst finds a string constant declared inside fn.
func localConst(fn *ast.FuncDecl, name string) (string, bool) {
	var out string
	var found bool
	ast.Inspect(fn, func(n ast.Node) bool {
		gd, ok := n.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			return !found
		}
		for _, spec := range gd.Specs {
			vs, ok := spec.(*ast.ValueSpec)
			if !ok {
				continue
			}
			for i, id := range vs.Names {
				if id.Name == name && i < len(vs.Values) {
					out, found = stringLit(vs.Values[i])
				}
			}
		}
		return !found
	})
	return out, found
}
