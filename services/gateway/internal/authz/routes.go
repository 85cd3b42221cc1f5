package authz

import (
	"fmt"
	"strings"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/heraldmail/herald/services/gateway/internal/identity"
)

// Route is one HTTP binding of an RPC, as the contract's google.api.http option declares it.
type Route struct {
	// Method is the HTTP method.
	Method string
	// Path is the path template, e.g. /v1/workspaces/{workspace_id}/domains.
	Path string
	// FullMethod is the RPC, e.g. /herald.identity.v1.IdentityService/GetMe.
	FullMethod string
}

// RPC is one method of a service in Files.
type RPC struct {
	// FullMethod is /<package>.<Service>/<Method>.
	FullMethod string
	// Service is the full name of the service.
	Service string
	// Routes are its HTTP bindings; none for an RPC the gateway does not serve.
	Routes []Route
}

// RPCs lists every method of every service of Files, in declaration order.
func RPCs() []RPC {
	var out []RPC
	for _, f := range Files() {
		svcs := f.Services()
		for i := range svcs.Len() {
			svc := svcs.Get(i)
			methods := svc.Methods()
			for j := range methods.Len() {
				m := methods.Get(j)
				full := "/" + string(svc.FullName()) + "/" + string(m.Name())
				out = append(out, RPC{FullMethod: full, Service: string(svc.FullName()), Routes: routesOf(m, full)})
			}
		}
	}
	return out
}

// routesOf reads the HTTP bindings of m.
func routesOf(m protoreflect.MethodDescriptor, full string) []Route {
	rule, ok := proto.GetExtension(m.Options(), annotations.E_Http).(*annotations.HttpRule)
	if !ok || rule == nil {
		return nil
	}
	var out []Route
	for _, r := range append([]*annotations.HttpRule{rule}, rule.GetAdditionalBindings()...) {
		if method, path := binding(r); path != "" {
			out = append(out, Route{Method: method, Path: path, FullMethod: full})
		}
	}
	return out
}

func binding(r *annotations.HttpRule) (method, path string) {
	switch p := r.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		return "GET", p.Get
	case *annotations.HttpRule_Put:
		return "PUT", p.Put
	case *annotations.HttpRule_Post:
		return "POST", p.Post
	case *annotations.HttpRule_Delete:
		return "DELETE", p.Delete
	case *annotations.HttpRule_Patch:
		return "PATCH", p.Patch
	case *annotations.HttpRule_Custom:
		return p.Custom.GetKind(), p.Custom.GetPath()
	default:
		return "", ""
	}
}

// normalizePattern turns a grpc-gateway pattern ("/v1/w/{workspace_id=*}") into the template
// form of the contract ("/v1/w/{workspace_id}").
func normalizePattern(p string) string { return strings.ReplaceAll(p, "=*}", "}") }

// routeKey identifies a route by method and template.
func routeKey(method, path string) string { return method + " " + path }

// index maps every route of Files to its RPC, and lists the routes that need no credentials.
type index struct {
	routes map[string]string
	public map[string]bool
}

// buildIndex indexes the routes of Files; every RPC must have an entry in methods.
func buildIndex(methods map[string]identity.Permission) (index, error) {
	ix := index{routes: map[string]string{}, public: map[string]bool{}}
	for _, rpc := range RPCs() {
		perm, ok := methods[rpc.FullMethod]
		if !ok {
			return index{}, fmt.Errorf("rpc %s has no authorization rule", rpc.FullMethod)
		}
		for _, r := range rpc.Routes {
			k := routeKey(r.Method, r.Path)
			if prev, dup := ix.routes[k]; dup {
				return index{}, fmt.Errorf("route %s is bound to %s and %s", k, prev, rpc.FullMethod)
			}
			ix.routes[k] = rpc.FullMethod
			if perm == identity.PermPublic {
				if strings.Contains(r.Path, "{") {
					return index{}, fmt.Errorf("public route %s has path variables", k)
				}
				ix.public[k] = true
			}
		}
	}
	return ix, nil
}
