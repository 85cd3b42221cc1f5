package grpcapi

import (
	"context"
	"time"

	recipientv1 "github.com/heraldmail/herald/proto/gen/go/herald/recipient/v1"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/heraldmail/herald/services/recipient/internal/fields"
	"github.com/heraldmail/herald/services/recipient/internal/recipient"
)

// CreateFieldDefinition implements recipientv1.RecipientServiceServer.
func (s *Server) CreateFieldDefinition(ctx context.Context, req *recipientv1.CreateFieldDefinitionRequest) (*recipientv1.CreateFieldDefinitionResponse, error) {
	ws, err := scopeWorkspace(ctx, req.GetWorkspaceId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	in := fields.NewDefinition{
		Key:      req.GetKey(),
		Label:    req.GetLabel(),
		Type:     typeFromProto(req.GetType()),
		Required: req.GetRequired(),
		Options:  req.GetOptions(),
	}
	if req.GetDefaultValue() != nil {
		in.Default = req.GetDefaultValue().AsInterface()
	}
	d, err := s.fields.Create(ctx, ws, in)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	pd, err := fieldToProto(d)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &recipientv1.CreateFieldDefinitionResponse{Field: pd}, nil
}

// ListFieldDefinitions implements recipientv1.RecipientServiceServer.
func (s *Server) ListFieldDefinitions(ctx context.Context, req *recipientv1.ListFieldDefinitionsRequest) (*recipientv1.ListFieldDefinitionsResponse, error) {
	ws, err := scopeWorkspace(ctx, req.GetWorkspaceId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	ds, err := s.fields.List(ctx, ws)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	out := &recipientv1.ListFieldDefinitionsResponse{Fields: make([]*recipientv1.FieldDefinition, 0, len(ds))}
	for _, d := range ds {
		pd, err := fieldToProto(d)
		if err != nil {
			return nil, s.toStatus(ctx, err)
		}
		out.Fields = append(out.Fields, pd)
	}
	return out, nil
}

// GetFieldDefinition implements recipientv1.RecipientServiceServer.
func (s *Server) GetFieldDefinition(ctx context.Context, req *recipientv1.GetFieldDefinitionRequest) (*recipientv1.GetFieldDefinitionResponse, error) {
	ws, err := scopeWorkspace(ctx, req.GetWorkspaceId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	d, err := s.fields.Get(ctx, ws, req.GetFieldKey())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	pd, err := fieldToProto(d)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &recipientv1.GetFieldDefinitionResponse{Field: pd}, nil
}

// UpdateFieldDefinition implements recipientv1.RecipientServiceServer.
func (s *Server) UpdateFieldDefinition(ctx context.Context, req *recipientv1.UpdateFieldDefinitionRequest) (*recipientv1.UpdateFieldDefinitionResponse, error) {
	ws, err := scopeWorkspace(ctx, req.GetWorkspaceId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	paths := req.GetUpdateMask().GetPaths()
	if len(paths) == 0 {
		return nil, s.toStatus(ctx, &fields.ValidationError{Field: "update_mask", Reason: "must name at least one of label, type, required, default_value, options"})
	}
	var u fields.Update
	for _, p := range paths {
		switch p {
		case "label":
			label := req.GetLabel()
			u.Label = &label
		case "type":
			typ := typeFromProto(req.GetType())
			u.Type = &typ
		case "required":
			required := req.GetRequired()
			u.Required = &required
		case "default_value", "defaultValue":
			u.SetDefault = true
			if v := req.GetDefaultValue(); v != nil {
				u.Default = v.AsInterface()
			}
		case "options":
			u.Options = append([]string{}, req.GetOptions()...)
		default:
			return nil, s.toStatus(ctx, &fields.ValidationError{Field: "update_mask", Reason: "names " + p + "; only label, type, required, default_value and options can be named"})
		}
	}
	d, err := s.fields.Update(ctx, ws, req.GetFieldKey(), u)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	pd, err := fieldToProto(d)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &recipientv1.UpdateFieldDefinitionResponse{Field: pd}, nil
}

// RetireFieldDefinition implements recipientv1.RecipientServiceServer.
func (s *Server) RetireFieldDefinition(ctx context.Context, req *recipientv1.RetireFieldDefinitionRequest) (*recipientv1.RetireFieldDefinitionResponse, error) {
	ws, err := scopeWorkspace(ctx, req.GetWorkspaceId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	d, err := s.fields.Retire(ctx, ws, req.GetFieldKey())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	pd, err := fieldToProto(d)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &recipientv1.RetireFieldDefinitionResponse{Field: pd}, nil
}

func fieldToProto(d fields.Definition) (*recipientv1.FieldDefinition, error) {
	pd := &recipientv1.FieldDefinition{
		WorkspaceId: d.Workspace.WorkspaceID.String(),
		Key:         d.Key,
		Label:       d.Label,
		Type:        typeToProto(d.Type),
		Required:    d.Required,
		Options:     d.Options,
		CreateTime:  timestamppb.New(d.CreatedAt),
		UpdateTime:  timestamppb.New(d.UpdatedAt),
	}
	if d.Default != nil {
		v, err := structpb.NewValue(d.Default)
		if err != nil {
			return nil, err
		}
		pd.DefaultValue = v
	}
	if d.Retired() {
		pd.RetireTime = timestamppb.New(d.RetiredAt)
	}
	return pd, nil
}

var fieldTypes = map[recipientv1.FieldType]fields.Type{
	recipientv1.FieldType_FIELD_TYPE_TEXT:    fields.TypeText,
	recipientv1.FieldType_FIELD_TYPE_NUMBER:  fields.TypeNumber,
	recipientv1.FieldType_FIELD_TYPE_BOOLEAN: fields.TypeBoolean,
	recipientv1.FieldType_FIELD_TYPE_DATE:    fields.TypeDate,
	recipientv1.FieldType_FIELD_TYPE_ENUM:    fields.TypeEnum,
}

// typeFromProto returns "" (not a valid type) for FIELD_TYPE_UNSPECIFIED and unknown values.
func typeFromProto(t recipientv1.FieldType) fields.Type { return fieldTypes[t] }

func typeToProto(t fields.Type) recipientv1.FieldType {
	for p, ft := range fieldTypes {
		if ft == t {
			return p
		}
	}
	return recipientv1.FieldType_FIELD_TYPE_UNSPECIFIED
}

// optionalTime reads an optional timestamp of a request: the zero time when absent.
func optionalTime(field string, ts *timestamppb.Timestamp) (time.Time, error) {
	if ts == nil {
		return time.Time{}, nil
	}
	if err := ts.CheckValid(); err != nil {
		return time.Time{}, &recipient.ValidationError{Field: field, Reason: "must be a valid RFC 3339 time"}
	}
	return ts.AsTime(), nil
}
