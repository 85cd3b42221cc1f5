// Package config reads a process's configuration from the environment into a typed struct.
//
// Fields are described with struct tags:
//
//	env:"NAME"          the variable to read
//	default:"value"     used when the variable is unset or empty
//	prod:"value"        the default when APP_ENV=production (overrides default)
//	required:"true"     the variable must be set (after defaults)
//	secret:"true"       masked when logged; NAME_FILE may name a file holding the value
//	oneof:"a,b,c"       the value must be one of these
//	min:"n" max:"n"     bounds for integers
//
// Supported field types: string, bool, int, int32, int64, float64, time.Duration (Go syntax
// or a whole number of days such as "7d") and []string (comma separated). Nested structs are
// walked. A struct that implements Validate() error is validated after it is filled.
//
// Errors name the variable and what is wrong, never the value.
package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// EnvProduction is the APP_ENV value of production deployments.
const EnvProduction = "production"

// Lookup finds an environment variable; os.LookupEnv is the usual one.
type Lookup func(name string) (string, bool)

// ReadFile reads a file named by a *_FILE variable; os.ReadFile is the usual one.
type ReadFile func(name string) ([]byte, error)

// Source is where Load reads from.
type Source struct {
	Lookup   Lookup
	ReadFile ReadFile
}

// OS is the process environment and file system.
func OS() Source { return Source{Lookup: os.LookupEnv, ReadFile: os.ReadFile} }

// FromMap is a Source backed by a map, for tests; files are read from files.
func FromMap(vars map[string]string, files map[string]string) Source {
	return Source{
		Lookup: func(name string) (string, bool) { v, ok := vars[name]; return v, ok },
		ReadFile: func(name string) ([]byte, error) {
			v, ok := files[name]
			if !ok {
				return nil, os.ErrNotExist
			}
			return []byte(v), nil
		},
	}
}

// Error is a configuration problem with one variable.
type Error struct {
	Var    string
	Reason string
}

func (e *Error) Error() string { return e.Var + ": " + e.Reason }

// Load fills dst, a pointer to a struct, from src. The first problem found is returned as
// an *Error.
func Load(dst any, src Source) error {
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return errors.New("config: destination must be a pointer to a struct")
	}
	prod := false
	if v, ok := src.Lookup("APP_ENV"); ok && strings.TrimSpace(v) == EnvProduction {
		prod = true
	}
	if err := fill(rv.Elem(), src, prod); err != nil {
		return err
	}
	return validate(rv)
}

func validate(rv reflect.Value) error {
	if rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return nil
		}
		if err := validateStruct(rv.Elem()); err != nil {
			return err
		}
		if v, ok := rv.Interface().(interface{ Validate() error }); ok {
			return v.Validate()
		}
		return nil
	}
	return nil
}

func validateStruct(sv reflect.Value) error {
	for i := 0; i < sv.NumField(); i++ {
		f := sv.Field(i)
		if f.Kind() == reflect.Struct && sv.Type().Field(i).IsExported() && f.CanAddr() {
			if err := validate(f.Addr()); err != nil {
				return err
			}
		}
	}
	return nil
}

func fill(sv reflect.Value, src Source, prod bool) error {
	st := sv.Type()
	for i := 0; i < st.NumField(); i++ {
		sf := st.Field(i)
		if !sf.IsExported() {
			continue
		}
		fv := sv.Field(i)
		name := sf.Tag.Get("env")
		if name == "" {
			if fv.Kind() == reflect.Struct && sf.Type != reflect.TypeFor[time.Time]() {
				if err := fill(fv, src, prod); err != nil {
					return err
				}
			}
			continue
		}
		raw, set, err := read(sf, name, src)
		if err != nil {
			return err
		}
		if !set {
			raw = sf.Tag.Get("default")
			if p, ok := sf.Tag.Lookup("prod"); ok && prod {
				raw = p
			}
		}
		if raw == "" {
			if sf.Tag.Get("required") == "true" {
				return &Error{Var: name, Reason: "required but not set"}
			}
			continue
		}
		if err := assign(fv, sf, name, raw); err != nil {
			return err
		}
	}
	return nil
}

// read returns the variable's value and whether it was set, honouring NAME_FILE for secrets.
func read(sf reflect.StructField, name string, src Source) (string, bool, error) {
	if v, ok := src.Lookup(name); ok && strings.TrimSpace(v) != "" {
		return strings.TrimSpace(v), true, nil
	}
	if sf.Tag.Get("secret") != "true" {
		return "", false, nil
	}
	path, ok := src.Lookup(name + "_FILE")
	if !ok || strings.TrimSpace(path) == "" {
		return "", false, nil
	}
	b, err := src.ReadFile(strings.TrimSpace(path))
	if err != nil {
		return "", false, &Error{Var: name + "_FILE", Reason: "cannot read the file it names"}
	}
	v := strings.TrimRight(string(b), "\r\n")
	if v == "" {
		return "", false, &Error{Var: name + "_FILE", Reason: "names an empty file"}
	}
	return v, true, nil
}

func assign(fv reflect.Value, sf reflect.StructField, name, raw string) error {
	if oneof := sf.Tag.Get("oneof"); oneof != "" {
		allowed := strings.Split(oneof, ",")
		found := false
		for _, a := range allowed {
			if raw == a {
				found = true
				break
			}
		}
		if !found {
			return &Error{Var: name, Reason: "must be one of " + strings.Join(allowed, ", ")}
		}
	}
	switch {
	case fv.Type() == reflect.TypeFor[time.Duration]():
		d, err := ParseDuration(raw)
		if err != nil || d < 0 {
			return &Error{Var: name, Reason: "must be a positive duration such as 30s, 15m or 7d"}
		}
		fv.SetInt(int64(d))
	case fv.Kind() == reflect.String:
		fv.SetString(raw)
	case fv.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return &Error{Var: name, Reason: "must be true or false"}
		}
		fv.SetBool(b)
	case fv.Kind() == reflect.Int || fv.Kind() == reflect.Int32 || fv.Kind() == reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, fv.Type().Bits())
		if err != nil {
			return &Error{Var: name, Reason: "must be a whole number"}
		}
		if m := sf.Tag.Get("min"); m != "" {
			if lo, _ := strconv.ParseInt(m, 10, 64); n < lo {
				return &Error{Var: name, Reason: "must be at least " + m}
			}
		}
		if m := sf.Tag.Get("max"); m != "" {
			if hi, _ := strconv.ParseInt(m, 10, 64); n > hi {
				return &Error{Var: name, Reason: "must be at most " + m}
			}
		}
		fv.SetInt(n)
	case fv.Kind() == reflect.Float64:
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return &Error{Var: name, Reason: "must be a number"}
		}
		fv.SetFloat(f)
	case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.String:
		var out []string
		for _, p := range strings.Split(raw, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		fv.Set(reflect.ValueOf(out))
	default:
		return &Error{Var: name, Reason: fmt.Sprintf("unsupported field type %s", fv.Type())}
	}
	return nil
}

// ParseDuration accepts Go durations ("90s", "15m", "1h30m") and whole days ("7d").
func ParseDuration(s string) (time.Duration, error) {
	if strings.HasSuffix(s, "d") {
		n, err := strconv.Atoi(strings.TrimSuffix(s, "d"))
		if err != nil {
			return 0, fmt.Errorf("parse duration %q: %w", s, err)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("parse duration: %w", err)
	}
	return d, nil
}

// Masked returns the configuration as variable name → value for logging, with every secret
// replaced by "[set]" or "[unset]".
func Masked(cfg any) map[string]any {
	out := map[string]any{}
	rv := reflect.ValueOf(cfg)
	if rv.Kind() == reflect.Pointer {
		rv = rv.Elem()
	}
	if rv.Kind() == reflect.Struct {
		mask(rv, out)
	}
	return out
}

func mask(sv reflect.Value, out map[string]any) {
	st := sv.Type()
	for i := 0; i < st.NumField(); i++ {
		sf := st.Field(i)
		if !sf.IsExported() {
			continue
		}
		fv := sv.Field(i)
		name := sf.Tag.Get("env")
		if name == "" {
			if fv.Kind() == reflect.Struct {
				mask(fv, out)
			}
			continue
		}
		if sf.Tag.Get("secret") == "true" {
			if fv.IsZero() {
				out[name] = "[unset]"
			} else {
				out[name] = "[set]"
			}
			continue
		}
		if fv.Type() == reflect.TypeFor[time.Duration]() {
			out[name] = time.Duration(fv.Int()).String()
			continue
		}
		out[name] = fv.Interface()
	}
}
