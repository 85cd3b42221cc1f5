package identityapi

import (
	"context"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/flags"
	identityv1 "github.com/heraldmail/herald/proto/gen/go/herald/identity/v1"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/heraldmail/herald/services/gateway/internal/flagadmin"
	"github.com/heraldmail/herald/services/gateway/internal/identity"
)

// ListFlags implements identityv1.IdentityServiceServer.
func (s *Server) ListFlags(ctx context.Context, req *identityv1.ListFlagsRequest) (*identityv1.ListFlagsResponse, error) {
	a, err := access(ctx)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	var ws uuid.UUID
	if req.GetWorkspaceId() != "" {
		if ws, err = uuid.Parse(req.GetWorkspaceId()); err != nil || ws == uuid.Nil {
			return nil, s.status(ctx, &identity.NotFoundError{Resource: "workspace"})
		}
	}
	views, err := s.flags.List(ctx, a, ws)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	out := &identityv1.ListFlagsResponse{Flags: make([]*identityv1.Flag, 0, len(views))}
	for _, v := range views {
		d := v.Definition
		out.Flags = append(out.Flags, &identityv1.Flag{
			Name: d.Flag.Name(), Description: d.Description, DefaultEnabled: d.Default,
			MaxScope: scopeProto(d.Scope), Owner: d.Owner,
			AddTime: timestamppb.New(d.Added), ExpectedRemovalTime: timestamppb.New(d.ExpectedRemoval),
			Global: valueProto(v.Global), Company: valueProto(v.Company), Workspace: valueProto(v.Workspace),
			Enabled: v.Enabled,
		})
	}
	return out, nil
}

// SetFlag implements identityv1.IdentityServiceServer.
func (s *Server) SetFlag(ctx context.Context, req *identityv1.SetFlagRequest) (*identityv1.SetFlagResponse, error) {
	a, err := access(ctx)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	ws, err := flagWorkspace(req.GetWorkspaceId())
	if err != nil {
		return nil, s.status(ctx, err)
	}
	c, err := s.flags.Set(ctx, a, req.GetFlag(), scopeFromProto(req.GetScope()), ws, req.GetEnabled())
	if err != nil {
		return nil, s.status(ctx, err)
	}
	return &identityv1.SetFlagResponse{Change: changeProto(c)}, nil
}

// ClearFlag implements identityv1.IdentityServiceServer.
func (s *Server) ClearFlag(ctx context.Context, req *identityv1.ClearFlagRequest) (*identityv1.ClearFlagResponse, error) {
	a, err := access(ctx)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	ws, err := flagWorkspace(req.GetWorkspaceId())
	if err != nil {
		return nil, s.status(ctx, err)
	}
	c, err := s.flags.Clear(ctx, a, req.GetFlag(), scopeFromProto(req.GetScope()), ws)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	return &identityv1.ClearFlagResponse{Change: changeProto(c)}, nil
}

// ListFlagAudit implements identityv1.IdentityServiceServer.
func (s *Server) ListFlagAudit(ctx context.Context, req *identityv1.ListFlagAuditRequest) (*identityv1.ListFlagAuditResponse, error) {
	a, err := access(ctx)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	cs, err := s.flags.ListAudit(ctx, a, req.GetFlag())
	if err != nil {
		return nil, s.status(ctx, err)
	}
	out := &identityv1.ListFlagAuditResponse{Changes: make([]*identityv1.FlagChange, 0, len(cs))}
	for _, c := range cs {
		out.Changes = append(out.Changes, changeProto(c))
	}
	return out, nil
}

// flagWorkspace parses the optional workspace of a flag change; an id that is not a UUID
// names no workspace of the caller's.
func flagWorkspace(s string) (uuid.UUID, error) {
	if s == "" {
		return uuid.Nil, nil
	}
	id, err := uuid.Parse(s)
	if err != nil || id == uuid.Nil {
		return uuid.Nil, &identity.NotFoundError{Resource: "workspace"}
	}
	return id, nil
}

func changeProto(c flagadmin.Change) *identityv1.FlagChange {
	out := &identityv1.FlagChange{
		Id: c.ID.String(), Flag: c.Flag, Scope: scopeProto(c.Level),
		OldValue: valueProto(c.Old), NewValue: valueProto(c.New),
		Actor: c.Actor, CreateTime: timestamppb.New(c.CreatedAt),
	}
	if c.WorkspaceID != uuid.Nil {
		out.WorkspaceId = c.WorkspaceID.String()
	}
	if c.ActorUserID != uuid.Nil {
		out.ActorUserId = c.ActorUserID.String()
	}
	return out
}

func valueProto(v *bool) *identityv1.FlagValue {
	if v == nil {
		return nil
	}
	return &identityv1.FlagValue{Enabled: *v}
}

func scopeProto(l flags.Level) identityv1.FlagScope {
	switch l {
	case flags.LevelGlobal:
		return identityv1.FlagScope_FLAG_SCOPE_GLOBAL
	case flags.LevelCompany:
		return identityv1.FlagScope_FLAG_SCOPE_COMPANY
	case flags.LevelWorkspace:
		return identityv1.FlagScope_FLAG_SCOPE_WORKSPACE
	default:
		return identityv1.FlagScope_FLAG_SCOPE_UNSPECIFIED
	}
}

func scopeFromProto(s identityv1.FlagScope) flags.Level {
	switch s {
	case identityv1.FlagScope_FLAG_SCOPE_GLOBAL:
		return flags.LevelGlobal
	case identityv1.FlagScope_FLAG_SCOPE_COMPANY:
		return flags.LevelCompany
	case identityv1.FlagScope_FLAG_SCOPE_WORKSPACE:
		return flags.LevelWorkspace
	default:
		return 0
	}
}
