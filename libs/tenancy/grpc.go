package tenancy

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Methods under these prefixes need no token: health probes come from the orchestrator.
var publicMethodPrefixes = []string{"/grpc.health.v1.Health/"}

func public(fullMethod string) bool {
	for _, p := range publicMethodPrefixes {
		if strings.HasPrefix(fullMethod, p) {
			return true
		}
	}
	return false
}

func bearer(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if t, ok := strings.CutPrefix(v, "Bearer "); ok {
			return strings.TrimSpace(t)
		}
	}
	return ""
}

func authenticate(ctx context.Context, v *Verifier) (context.Context, error) {
	tok := bearer(ctx)
	if tok == "" {
		return nil, status.Error(codes.Unauthenticated, "missing bearer token")
	}
	p, err := v.Verify(tok)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, "invalid bearer token")
	}
	return WithPrincipal(ctx, p), nil
}

// UnaryServerInterceptor verifies the bearer token of every call (but health probes) and puts
// the principal in the context.
func UnaryServerInterceptor(v *Verifier) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if public(info.FullMethod) {
			return h(ctx, req)
		}
		ctx, err := authenticate(ctx, v)
		if err != nil {
			return nil, err
		}
		return h(ctx, req)
	}
}

// StreamServerInterceptor is UnaryServerInterceptor for streams.
func StreamServerInterceptor(v *Verifier) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if public(info.FullMethod) {
			return h(srv, ss)
		}
		ctx, err := authenticate(ss.Context(), v)
		if err != nil {
			return err
		}
		return h(srv, &wrappedStream{ServerStream: ss, ctx: ctx})
	}
}

type wrappedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (w *wrappedStream) Context() context.Context { return w.ctx }

type outgoingTokenKey struct{}

// WithToken returns ctx whose outgoing calls carry token (a service token minted by an
// internal caller such as the worker).
func WithToken(ctx context.Context, token string) context.Context {
	return context.WithValue(ctx, outgoingTokenKey{}, token)
}

func outgoing(ctx context.Context) context.Context {
	if md, ok := metadata.FromOutgoingContext(ctx); ok && len(md.Get("authorization")) > 0 {
		return ctx
	}
	tok, _ := ctx.Value(outgoingTokenKey{}).(string)
	if tok == "" {
		if p, ok := PrincipalFrom(ctx); ok {
			tok = p.Token
		}
	}
	if tok == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
}

// UnaryClientInterceptor forwards the caller's token on outgoing calls: the one set by
// WithToken, else the verified principal's own.
func UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return invoker(outgoing(ctx), method, req, reply, cc, opts...)
	}
}

// StreamClientInterceptor is UnaryClientInterceptor for streams.
func StreamClientInterceptor() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		return streamer(outgoing(ctx), desc, cc, method, opts...)
	}
}
