// Package identityapi serves herald.identity.v1.IdentityService in the gateway's process: it
// turns requests into calls of the identity business package and is the only place where the
// identity errors become gRPC status codes (see Status), for its own handlers and for the
// gateway's authorization middleware alike.
//
// Handlers of operations that need credentials read the authorized access the authorization
// middleware put in the context (identity.AccessFrom); they never decide who may call them.
package identityapi

import (
	"context"
	"errors"
	"strconv"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/flags"
	identityv1 "github.com/heraldmail/herald/proto/gen/go/herald/identity/v1"
	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/heraldmail/herald/services/gateway/internal/clientip"
	"github.com/heraldmail/herald/services/gateway/internal/flagadmin"
	"github.com/heraldmail/herald/services/gateway/internal/identity"
)

// ErrorDomain is the domain of the google.rpc.ErrorInfo details Herald attaches.
const ErrorDomain = "herald"

// ReasonPlanLimitExceeded is the ErrorInfo reason of an operation beyond the plan's limits;
// the metadata names the limit ("seats" or "domains") and the plan's maximum ("max").
const ReasonPlanLimitExceeded = "PLAN_LIMIT_EXCEEDED"

// Server implements identityv1.IdentityServiceServer.
type Server struct {
	identityv1.UnimplementedIdentityServiceServer
	svc   *identity.Service
	flags *flagadmin.Admin
	log   *zap.Logger
}

// New returns a Server on svc and the feature flag administration flags; log receives the
// internal errors clients only see as "internal error".
func New(svc *identity.Service, flags *flagadmin.Admin, log *zap.Logger) *Server {
	return &Server{svc: svc, flags: flags, log: log}
}

// Status is the one mapping from identity errors to gRPC statuses. Messages say what to fix
// and never carry SQL or internal details; internal errors are logged to log instead.
func Status(ctx context.Context, log *zap.Logger, err error) error {
	var (
		verr *identity.ValidationError
		nf   *identity.NotFoundError
		ple  *identity.PlanLimitError
		rle  *identity.RateLimitedError
	)
	switch {
	case errors.As(err, &verr):
		st := status.New(codes.InvalidArgument, verr.Error())
		return withDetails(st, &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: verr.Field, Description: verr.Reason},
		}})
	case errors.As(err, &nf):
		// Another company's resource is reported the same way as a missing one.
		return status.Error(codes.NotFound, nf.Error())
	case errors.Is(err, identity.ErrNotFound):
		return status.Error(codes.NotFound, "not found")
	case errors.Is(err, identity.ErrInvalidCredentials):
		return status.Error(codes.Unauthenticated, identity.ErrInvalidCredentials.Error())
	case errors.Is(err, identity.ErrTokenReused):
		return status.Error(codes.Unauthenticated, "the refresh token was already used or revoked; log in again")
	case errors.Is(err, identity.ErrUnauthenticated):
		return status.Error(codes.Unauthenticated, "missing, invalid or expired credentials")
	case errors.Is(err, identity.ErrPermissionDenied):
		return status.Error(codes.PermissionDenied, "your role in this workspace does not allow this operation")
	case errors.Is(err, identity.ErrSessionRequired):
		return status.Error(codes.PermissionDenied, identity.ErrSessionRequired.Error())
	case errors.Is(err, identity.ErrEmailTaken):
		return status.Error(codes.AlreadyExists, identity.ErrEmailTaken.Error())
	case errors.Is(err, identity.ErrAlreadyMember):
		return status.Error(codes.AlreadyExists, identity.ErrAlreadyMember.Error())
	case errors.Is(err, identity.ErrDomainTaken):
		return status.Error(codes.AlreadyExists, identity.ErrDomainTaken.Error())
	case errors.Is(err, identity.ErrInvitationInvalid):
		return status.Error(codes.NotFound, identity.ErrInvitationInvalid.Error())
	case errors.As(err, &ple):
		st := status.New(codes.FailedPrecondition, ple.Error())
		return withDetails(st, &errdetails.ErrorInfo{
			Reason: ReasonPlanLimitExceeded, Domain: ErrorDomain,
			Metadata: map[string]string{"limit": ple.Limit, "max": strconv.Itoa(ple.Max)},
		})
	case errors.As(err, &rle):
		st := status.New(codes.ResourceExhausted, rle.Error())
		return withDetails(st, &errdetails.RetryInfo{RetryDelay: durationpb.New(rle.RetryAfter)})
	case errors.Is(err, flags.ErrManagedInUnleash):
		return status.Error(codes.FailedPrecondition, flags.ErrManagedInUnleash.Error())
	case errors.Is(err, flagadmin.ErrUnavailable):
		return status.Error(codes.Unavailable, flagadmin.ErrUnavailable.Error())
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return status.Error(codes.Canceled, "request cancelled")
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		return status.Error(codes.DeadlineExceeded, "request timed out")
	default:
		log.Error("identity request failed", zap.Error(err))
		return status.Error(codes.Internal, "internal error")
	}
}

// withDetails attaches a detail to st; should that fail, st goes without it.
func withDetails(st *status.Status, detail protoadapt.MessageV1) error {
	if with, err := st.WithDetails(detail); err == nil {
		return with.Err()
	}
	return st.Err()
}

func (s *Server) status(ctx context.Context, err error) error { return Status(ctx, s.log, err) }

// access returns the authorized access of a request that needs credentials.
func access(ctx context.Context) (identity.Access, error) {
	a, ok := identity.AccessFrom(ctx)
	if !ok {
		return identity.Access{}, identity.ErrUnauthenticated
	}
	return a, nil
}

// parseID parses a UUID field of a request.
func parseID(field, s string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil || id == uuid.Nil {
		return uuid.Nil, &identity.ValidationError{Field: field, Reason: "must be a UUID such as 3f8e1b2a-5c4d-4e6f-8a9b-0c1d2e3f4a5b"}
	}
	return id, nil
}

// SignUp implements identityv1.IdentityServiceServer.
func (s *Server) SignUp(ctx context.Context, req *identityv1.SignUpRequest) (*identityv1.SignUpResponse, error) {
	res, err := s.svc.SignUp(ctx, identity.SignUpInput{
		CompanyName: req.GetCompanyName(), WorkspaceName: req.GetWorkspaceName(),
		Email: req.GetEmail(), Password: req.GetPassword(), Name: req.GetName(),
	})
	if err != nil {
		return nil, s.status(ctx, err)
	}
	return &identityv1.SignUpResponse{
		Tokens: tokensProto(res.Tokens), User: userProto(res.User),
		Company: companyProto(res.Company), Workspace: workspaceProto(res.Workspace),
	}, nil
}

// LogIn implements identityv1.IdentityServiceServer.
func (s *Server) LogIn(ctx context.Context, req *identityv1.LogInRequest) (*identityv1.LogInResponse, error) {
	toks, err := s.svc.LogIn(ctx, req.GetEmail(), req.GetPassword(), clientip.From(ctx))
	if err != nil {
		return nil, s.status(ctx, err)
	}
	return &identityv1.LogInResponse{Tokens: tokensProto(toks)}, nil
}

// Refresh implements identityv1.IdentityServiceServer.
func (s *Server) Refresh(ctx context.Context, req *identityv1.RefreshRequest) (*identityv1.RefreshResponse, error) {
	toks, err := s.svc.Refresh(ctx, req.GetRefreshToken())
	if err != nil {
		return nil, s.status(ctx, err)
	}
	return &identityv1.RefreshResponse{Tokens: tokensProto(toks)}, nil
}

// LogOut implements identityv1.IdentityServiceServer.
func (s *Server) LogOut(ctx context.Context, req *identityv1.LogOutRequest) (*identityv1.LogOutResponse, error) {
	if err := s.svc.LogOut(ctx, req.GetRefreshToken()); err != nil {
		return nil, s.status(ctx, err)
	}
	return &identityv1.LogOutResponse{}, nil
}

// AcceptInvitation implements identityv1.IdentityServiceServer.
func (s *Server) AcceptInvitation(ctx context.Context, req *identityv1.AcceptInvitationRequest) (*identityv1.AcceptInvitationResponse, error) {
	toks, err := s.svc.AcceptInvitation(ctx, req.GetInvitationToken(), req.GetPassword(), req.GetName())
	if err != nil {
		return nil, s.status(ctx, err)
	}
	return &identityv1.AcceptInvitationResponse{Tokens: tokensProto(toks)}, nil
}

// GetMe implements identityv1.IdentityServiceServer.
func (s *Server) GetMe(ctx context.Context, _ *identityv1.GetMeRequest) (*identityv1.GetMeResponse, error) {
	a, err := access(ctx)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	me, err := s.svc.Me(ctx, a)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	out := &identityv1.GetMeResponse{
		User: userProto(me.User), Company: companyProto(me.Company), PlatformOperator: me.PlatformOperator,
		Memberships: make([]*identityv1.Membership, 0, len(me.Memberships)),
	}
	for _, m := range me.Memberships {
		pm := &identityv1.Membership{Role: roleProto(m.Role)}
		if m.WorkspaceID != uuid.Nil {
			pm.WorkspaceId = m.WorkspaceID.String()
		}
		out.Memberships = append(out.Memberships, pm)
	}
	return out, nil
}

// GetCompany implements identityv1.IdentityServiceServer.
func (s *Server) GetCompany(ctx context.Context, _ *identityv1.GetCompanyRequest) (*identityv1.GetCompanyResponse, error) {
	a, err := access(ctx)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	c, err := s.svc.Company(ctx, a)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	return &identityv1.GetCompanyResponse{Company: companyProto(c)}, nil
}

// UpdateCompany implements identityv1.IdentityServiceServer.
func (s *Server) UpdateCompany(ctx context.Context, req *identityv1.UpdateCompanyRequest) (*identityv1.UpdateCompanyResponse, error) {
	a, err := access(ctx)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	c, err := s.svc.UpdateCompany(ctx, a, req.GetName())
	if err != nil {
		return nil, s.status(ctx, err)
	}
	return &identityv1.UpdateCompanyResponse{Company: companyProto(c)}, nil
}

// CreateWorkspace implements identityv1.IdentityServiceServer.
func (s *Server) CreateWorkspace(ctx context.Context, req *identityv1.CreateWorkspaceRequest) (*identityv1.CreateWorkspaceResponse, error) {
	a, err := access(ctx)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	w, err := s.svc.CreateWorkspace(ctx, a, req.GetName())
	if err != nil {
		return nil, s.status(ctx, err)
	}
	return &identityv1.CreateWorkspaceResponse{Workspace: workspaceProto(w)}, nil
}

// ListWorkspaces implements identityv1.IdentityServiceServer.
func (s *Server) ListWorkspaces(ctx context.Context, _ *identityv1.ListWorkspacesRequest) (*identityv1.ListWorkspacesResponse, error) {
	a, err := access(ctx)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	ws, err := s.svc.ListWorkspaces(ctx, a)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	out := &identityv1.ListWorkspacesResponse{Workspaces: make([]*identityv1.Workspace, 0, len(ws))}
	for _, w := range ws {
		out.Workspaces = append(out.Workspaces, workspaceProto(w))
	}
	return out, nil
}

// GetWorkspace implements identityv1.IdentityServiceServer.
func (s *Server) GetWorkspace(ctx context.Context, _ *identityv1.GetWorkspaceRequest) (*identityv1.GetWorkspaceResponse, error) {
	a, err := access(ctx)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	w, err := s.svc.Workspace(ctx, a)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	return &identityv1.GetWorkspaceResponse{Workspace: workspaceProto(w)}, nil
}

// UpdateWorkspace implements identityv1.IdentityServiceServer.
func (s *Server) UpdateWorkspace(ctx context.Context, req *identityv1.UpdateWorkspaceRequest) (*identityv1.UpdateWorkspaceResponse, error) {
	a, err := access(ctx)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	w, err := s.svc.UpdateWorkspace(ctx, a, req.GetName())
	if err != nil {
		return nil, s.status(ctx, err)
	}
	return &identityv1.UpdateWorkspaceResponse{Workspace: workspaceProto(w)}, nil
}

// CreateDomain implements identityv1.IdentityServiceServer.
func (s *Server) CreateDomain(ctx context.Context, req *identityv1.CreateDomainRequest) (*identityv1.CreateDomainResponse, error) {
	a, err := access(ctx)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	d, err := s.svc.CreateDomain(ctx, a, req.GetName())
	if err != nil {
		return nil, s.status(ctx, err)
	}
	return &identityv1.CreateDomainResponse{Domain: domainProto(d)}, nil
}

// ListDomains implements identityv1.IdentityServiceServer.
func (s *Server) ListDomains(ctx context.Context, _ *identityv1.ListDomainsRequest) (*identityv1.ListDomainsResponse, error) {
	a, err := access(ctx)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	ds, err := s.svc.ListDomains(ctx, a)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	out := &identityv1.ListDomainsResponse{Domains: make([]*identityv1.Domain, 0, len(ds))}
	for _, d := range ds {
		out.Domains = append(out.Domains, domainProto(d))
	}
	return out, nil
}

// GetDomain implements identityv1.IdentityServiceServer.
func (s *Server) GetDomain(ctx context.Context, _ *identityv1.GetDomainRequest) (*identityv1.GetDomainResponse, error) {
	a, err := access(ctx)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	d, err := s.svc.Domain(ctx, a)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	return &identityv1.GetDomainResponse{Domain: domainProto(d)}, nil
}

// DeleteDomain implements identityv1.IdentityServiceServer.
func (s *Server) DeleteDomain(ctx context.Context, _ *identityv1.DeleteDomainRequest) (*identityv1.DeleteDomainResponse, error) {
	a, err := access(ctx)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	if err := s.svc.DeleteDomain(ctx, a); err != nil {
		return nil, s.status(ctx, err)
	}
	return &identityv1.DeleteDomainResponse{}, nil
}

// InviteMember implements identityv1.IdentityServiceServer.
func (s *Server) InviteMember(ctx context.Context, req *identityv1.InviteMemberRequest) (*identityv1.InviteMemberResponse, error) {
	a, err := access(ctx)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	m, tok, err := s.svc.InviteMember(ctx, a, req.GetEmail(), roleFromProto(req.GetRole()))
	if err != nil {
		return nil, s.status(ctx, err)
	}
	return &identityv1.InviteMemberResponse{Member: memberProto(m), InvitationToken: tok}, nil
}

// ListMembers implements identityv1.IdentityServiceServer.
func (s *Server) ListMembers(ctx context.Context, _ *identityv1.ListMembersRequest) (*identityv1.ListMembersResponse, error) {
	a, err := access(ctx)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	ms, err := s.svc.ListMembers(ctx, a)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	out := &identityv1.ListMembersResponse{Members: make([]*identityv1.Member, 0, len(ms))}
	for _, m := range ms {
		out.Members = append(out.Members, memberProto(m))
	}
	return out, nil
}

// UpdateMember implements identityv1.IdentityServiceServer.
func (s *Server) UpdateMember(ctx context.Context, req *identityv1.UpdateMemberRequest) (*identityv1.UpdateMemberResponse, error) {
	a, err := access(ctx)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	user, err := parseID("user_id", req.GetUserId())
	if err != nil {
		return nil, s.status(ctx, err)
	}
	m, err := s.svc.UpdateMember(ctx, a, user, roleFromProto(req.GetRole()))
	if err != nil {
		return nil, s.status(ctx, err)
	}
	return &identityv1.UpdateMemberResponse{Member: memberProto(m)}, nil
}

// RemoveMember implements identityv1.IdentityServiceServer.
func (s *Server) RemoveMember(ctx context.Context, req *identityv1.RemoveMemberRequest) (*identityv1.RemoveMemberResponse, error) {
	a, err := access(ctx)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	user, err := parseID("user_id", req.GetUserId())
	if err != nil {
		return nil, s.status(ctx, err)
	}
	if err := s.svc.RemoveMember(ctx, a, user); err != nil {
		return nil, s.status(ctx, err)
	}
	return &identityv1.RemoveMemberResponse{}, nil
}

// CreateApiKey implements identityv1.IdentityServiceServer.
func (s *Server) CreateApiKey(ctx context.Context, req *identityv1.CreateApiKeyRequest) (*identityv1.CreateApiKeyResponse, error) { //nolint:revive // the name is generated
	a, err := access(ctx)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	k, secret, err := s.svc.CreateAPIKey(ctx, a, req.GetName(), roleFromProto(req.GetRole()))
	if err != nil {
		return nil, s.status(ctx, err)
	}
	return &identityv1.CreateApiKeyResponse{ApiKey: apiKeyProto(k), Secret: secret}, nil
}

// ListApiKeys implements identityv1.IdentityServiceServer.
func (s *Server) ListApiKeys(ctx context.Context, _ *identityv1.ListApiKeysRequest) (*identityv1.ListApiKeysResponse, error) { //nolint:revive // the name is generated
	a, err := access(ctx)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	ks, err := s.svc.ListAPIKeys(ctx, a)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	out := &identityv1.ListApiKeysResponse{ApiKeys: make([]*identityv1.ApiKey, 0, len(ks))}
	for _, k := range ks {
		out.ApiKeys = append(out.ApiKeys, apiKeyProto(k))
	}
	return out, nil
}

// RevokeApiKey implements identityv1.IdentityServiceServer.
func (s *Server) RevokeApiKey(ctx context.Context, req *identityv1.RevokeApiKeyRequest) (*identityv1.RevokeApiKeyResponse, error) { //nolint:revive // the name is generated
	a, err := access(ctx)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	id, err := parseID("api_key_id", req.GetApiKeyId())
	if err != nil {
		return nil, s.status(ctx, err)
	}
	if err := s.svc.RevokeAPIKey(ctx, a, id); err != nil {
		return nil, s.status(ctx, err)
	}
	return &identityv1.RevokeApiKeyResponse{}, nil
}

func tokensProto(t identity.Tokens) *identityv1.Tokens {
	return &identityv1.Tokens{
		AccessToken: t.AccessToken, AccessTokenExpireTime: timestamppb.New(t.AccessExpires),
		RefreshToken: t.RefreshToken, RefreshTokenExpireTime: timestamppb.New(t.RefreshExpires),
		TokenType: "Bearer",
	}
}

func userProto(u identity.User) *identityv1.User {
	return &identityv1.User{Id: u.ID.String(), Email: u.Email, Name: u.Name, CreateTime: timestamppb.New(u.CreatedAt)}
}

func companyProto(c identity.Company) *identityv1.Company {
	return &identityv1.Company{
		Id: c.ID.String(), Name: c.Name, Plan: c.Plan,
		MaxSeats: int32(c.MaxSeats), MaxDomains: int32(c.MaxDomains), MonthlySendLimit: c.MonthlySendLimit, //nolint:gosec // plan limits are small
		SeatsUsed: int32(c.SeatsUsed), DomainsUsed: int32(c.DomainsUsed), //nolint:gosec // counts are bounded by the limits
		CreateTime: timestamppb.New(c.CreatedAt),
	}
}

func workspaceProto(w identity.Workspace) *identityv1.Workspace {
	return &identityv1.Workspace{Id: w.ID.String(), Name: w.Name, CreateTime: timestamppb.New(w.CreatedAt)}
}

func domainProto(d identity.Domain) *identityv1.Domain {
	return &identityv1.Domain{Id: d.ID.String(), WorkspaceId: d.WorkspaceID.String(), Name: d.Name, CreateTime: timestamppb.New(d.CreatedAt)}
}

func memberProto(m identity.Member) *identityv1.Member {
	return &identityv1.Member{User: userProto(m.User), Role: roleProto(m.Role), Pending: m.User.Pending()}
}

func apiKeyProto(k identity.APIKey) *identityv1.ApiKey {
	out := &identityv1.ApiKey{
		Id: k.ID.String(), WorkspaceId: k.WorkspaceID.String(), Name: k.Name, Prefix: k.Prefix,
		Role: roleProto(k.Role), CreateTime: timestamppb.New(k.CreatedAt),
	}
	if !k.LastUsedAt.IsZero() {
		out.LastUseTime = timestamppb.New(k.LastUsedAt)
	}
	if !k.RevokedAt.IsZero() {
		out.RevokeTime = timestamppb.New(k.RevokedAt)
	}
	return out
}

func roleProto(r identity.Role) identityv1.Role {
	switch r {
	case identity.RoleOwner:
		return identityv1.Role_ROLE_OWNER
	case identity.RoleAdmin:
		return identityv1.Role_ROLE_ADMIN
	case identity.RoleEditor:
		return identityv1.Role_ROLE_EDITOR
	case identity.RoleViewer:
		return identityv1.Role_ROLE_VIEWER
	default:
		return identityv1.Role_ROLE_UNSPECIFIED
	}
}

func roleFromProto(r identityv1.Role) identity.Role {
	switch r {
	case identityv1.Role_ROLE_OWNER:
		return identity.RoleOwner
	case identityv1.Role_ROLE_ADMIN:
		return identity.RoleAdmin
	case identityv1.Role_ROLE_EDITOR:
		return identity.RoleEditor
	case identityv1.Role_ROLE_VIEWER:
		return identity.RoleViewer
	default:
		return ""
	}
}
