package grpcapi

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"io"
	"strconv"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/tenancy"
	recipientv1 "github.com/heraldmail/herald/proto/gen/go/herald/recipient/v1"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/heraldmail/herald/services/recipient/internal/fields"
	"github.com/heraldmail/herald/services/recipient/internal/imports"
)

// ImportServer implements recipientv1.ImportServiceServer.
type ImportServer struct {
	recipientv1.UnimplementedImportServiceServer
	svc *imports.Service
	log *zap.Logger
}

// NewImportServer returns an ImportServer on svc.
func NewImportServer(svc *imports.Service, log *zap.Logger) *ImportServer {
	return &ImportServer{svc: svc, log: log}
}

// fileChunk is the size of the pieces the server streams.
const fileChunk = 256 << 10

// CreateImport implements recipientv1.ImportServiceServer: the whole file in one message.
func (s *ImportServer) CreateImport(ctx context.Context, req *recipientv1.CreateImportRequest) (*recipientv1.CreateImportResponse, error) {
	t, err := scope(ctx, req.GetWorkspaceId(), req.GetDomainId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	im, err := s.svc.Upload(ctx, t, req.GetMap(), &oneChunk{data: req.GetChunk()})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &recipientv1.CreateImportResponse{Import: importToProto(im)}, nil
}

type oneChunk struct {
	data []byte
	done bool
}

func (o *oneChunk) Next() ([]byte, error) {
	if o.done {
		return nil, io.EOF
	}
	o.done = true
	return o.data, nil
}

// UploadImport implements recipientv1.ImportServiceServer.
func (s *ImportServer) UploadImport(stream grpc.ClientStreamingServer[recipientv1.UploadImportRequest, recipientv1.UploadImportResponse]) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if errors.Is(err, io.EOF) {
		return status.Error(codes.InvalidArgument, "the stream carried no request")
	}
	if err != nil {
		return err
	}
	t, err := scope(ctx, first.GetWorkspaceId(), first.GetDomainId())
	if err != nil {
		return s.toStatus(ctx, err)
	}
	src := &streamSource{stream: stream, pending: first.GetChunk()}
	im, err := s.svc.Upload(ctx, t, first.GetMap(), src)
	if err != nil {
		return s.toStatus(ctx, err)
	}
	return stream.SendAndClose(&recipientv1.UploadImportResponse{Import: importToProto(im)})
}

type streamSource struct {
	stream  grpc.ClientStreamingServer[recipientv1.UploadImportRequest, recipientv1.UploadImportResponse]
	pending []byte
}

func (s *streamSource) Next() ([]byte, error) {
	if p := s.pending; p != nil {
		s.pending = nil
		return p, nil
	}
	m, err := s.stream.Recv()
	if err != nil {
		return nil, err
	}
	return m.GetChunk(), nil
}

// GetImport implements recipientv1.ImportServiceServer.
func (s *ImportServer) GetImport(ctx context.Context, req *recipientv1.GetImportRequest) (*recipientv1.GetImportResponse, error) {
	t, id, err := importScope(ctx, req.GetWorkspaceId(), req.GetDomainId(), req.GetImportId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	im, err := s.svc.Get(ctx, t, id)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &recipientv1.GetImportResponse{Import: importToProto(im)}, nil
}

// CancelImport implements recipientv1.ImportServiceServer.
func (s *ImportServer) CancelImport(ctx context.Context, req *recipientv1.CancelImportRequest) (*recipientv1.CancelImportResponse, error) {
	t, id, err := importScope(ctx, req.GetWorkspaceId(), req.GetDomainId(), req.GetImportId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	im, err := s.svc.Cancel(ctx, t, id)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &recipientv1.CancelImportResponse{Import: importToProto(im)}, nil
}

// DownloadImportRejections implements recipientv1.ImportServiceServer: a CSV file with the
// columns line, reason and row.
func (s *ImportServer) DownloadImportRejections(req *recipientv1.DownloadImportRejectionsRequest, stream grpc.ServerStreamingServer[recipientv1.DownloadImportRejectionsResponse]) error {
	ctx := stream.Context()
	t, id, err := importScope(ctx, req.GetWorkspaceId(), req.GetDomainId(), req.GetImportId())
	if err != nil {
		return s.toStatus(ctx, err)
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write([]string{"line", "reason", "row"})
	flush := func(force bool) error {
		w.Flush()
		if buf.Len() == 0 || (!force && buf.Len() < fileChunk) {
			return nil
		}
		err := stream.Send(&recipientv1.DownloadImportRejectionsResponse{Chunk: bytes.Clone(buf.Bytes())})
		buf.Reset()
		return err
	}
	err = s.svc.Rejections(ctx, t, id, func(rs []imports.Rejection) error {
		for _, r := range rs {
			_ = w.Write([]string{strconv.FormatInt(r.Line, 10), r.Reason, r.Raw})
		}
		return flush(false)
	})
	if err != nil {
		return s.toStatus(ctx, err)
	}
	return flush(true)
}

// BeginImportRun implements recipientv1.ImportServiceServer (internal).
func (s *ImportServer) BeginImportRun(ctx context.Context, req *recipientv1.BeginImportRunRequest) (*recipientv1.BeginImportRunResponse, error) {
	t, id, err := internalScope(ctx, req.GetWorkspaceId(), req.GetDomainId(), req.GetImportId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	im, err := s.svc.BeginRun(ctx, t, id)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	out := &recipientv1.BeginImportRunResponse{
		State:       stateToProto(im.State),
		ColumnCount: int32(im.ColumnCount), //nolint:gosec // at most imports.MaxColumns
		TotalBytes:  im.TotalBytes,
		Offset:      im.Position.Offset,
		Line:        im.Position.Line,
		Sequence:    im.Position.Sequence,
		Import:      importToProto(im),
	}
	for _, c := range im.Columns {
		out.Columns = append(out.Columns, &recipientv1.ImportColumn{Index: int32(c.Index), Target: c.Target}) //nolint:gosec // at most imports.MaxColumns
	}
	return out, nil
}

// ReadImportFile implements recipientv1.ImportServiceServer (internal).
func (s *ImportServer) ReadImportFile(req *recipientv1.ReadImportFileRequest, stream grpc.ServerStreamingServer[recipientv1.ReadImportFileResponse]) error {
	ctx := stream.Context()
	t, id, err := internalScope(ctx, req.GetWorkspaceId(), req.GetDomainId(), req.GetImportId())
	if err != nil {
		return s.toStatus(ctx, err)
	}
	err = s.svc.ReadFile(ctx, t, id, req.GetOffset(), func(p []byte) error {
		for len(p) > 0 {
			n := min(len(p), fileChunk)
			if err := stream.Send(&recipientv1.ReadImportFileResponse{Chunk: p[:n]}); err != nil {
				return err
			}
			p = p[n:]
		}
		return nil
	})
	if err != nil {
		return s.toStatus(ctx, err)
	}
	return nil
}

// ApplyImportBatch implements recipientv1.ImportServiceServer (internal).
func (s *ImportServer) ApplyImportBatch(ctx context.Context, req *recipientv1.ApplyImportBatchRequest) (*recipientv1.ApplyImportBatchResponse, error) {
	t, id, err := internalScope(ctx, req.GetWorkspaceId(), req.GetDomainId(), req.GetImportId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	b := imports.Batch{
		Sequence:  req.GetSequence(),
		EndOffset: req.GetEndOffset(),
		EndLine:   req.GetEndLine(),
		Last:      req.GetLast(),
		Error:     req.GetError(),
	}
	for _, r := range req.GetRows() {
		b.Rows = append(b.Rows, imports.Row{Line: r.GetLine(), Fields: r.GetFields()})
	}
	for _, r := range req.GetRejections() {
		b.Rejections = append(b.Rejections, imports.Rejection{Line: r.GetLine(), Raw: r.GetRaw(), Reason: r.GetReason()})
	}
	im, err := s.svc.Apply(ctx, t, id, b)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &recipientv1.ApplyImportBatchResponse{Import: importToProto(im)}, nil
}

func importScope(ctx context.Context, workspaceID, domainID, importID string) (tenancy.Tenant, uuid.UUID, error) {
	t, err := scope(ctx, workspaceID, domainID)
	if err != nil {
		return tenancy.Tenant{}, uuid.Nil, err
	}
	id, err := parseID("import_id", importID)
	if err != nil {
		return tenancy.Tenant{}, uuid.Nil, err
	}
	return t, id, nil
}

// errInternalOnly is an internal method called with a user's token.
var errInternalOnly = errors.New("internal method")

// internalScope is importScope for the methods only internal callers (service tokens) may use.
func internalScope(ctx context.Context, workspaceID, domainID, importID string) (tenancy.Tenant, uuid.UUID, error) {
	if p, ok := tenancy.PrincipalFrom(ctx); ok && p.Kind != tenancy.KindService {
		return tenancy.Tenant{}, uuid.Nil, errInternalOnly
	}
	return importScope(ctx, workspaceID, domainID, importID)
}

// toStatus maps the errors of the import methods, then falls back to the recipient mapping.
func (s *ImportServer) toStatus(ctx context.Context, err error) error {
	var verr *imports.ValidationError
	var ferr fields.Errors
	switch {
	case errors.As(err, &verr):
		return status.Error(codes.InvalidArgument, verr.Error())
	case errors.As(err, &ferr):
		return status.Error(codes.InvalidArgument, ferr.Error())
	case errors.Is(err, imports.ErrNotFound), errors.Is(err, tenancy.ErrOutOfScope):
		return status.Error(codes.NotFound, imports.ErrNotFound.Error())
	case errors.Is(err, imports.ErrOutOfOrder):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, errInternalOnly):
		return status.Error(codes.PermissionDenied, "this method is for internal callers only")
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
		return err // the stream's own error (the client went away, a deadline)
	}
	return (&Server{log: s.log}).toStatus(ctx, err)
}

func importToProto(im imports.Import) *recipientv1.Import {
	return &recipientv1.Import{
		Id:          im.ID.String(),
		WorkspaceId: im.Tenant.WorkspaceID.String(),
		DomainId:    im.Tenant.DomainID.String(),
		State:       stateToProto(im.State),
		Map:         im.Map,
		TotalBytes:  im.TotalBytes,
		BytesDone:   im.BytesDone(),
		Percent:     im.Percent(),
		RowsDone:    im.RowsDone,
		Inserted:    im.Inserted,
		Updated:     im.Updated,
		Rejected:    im.Rejected,
		Duplicates:  im.Duplicates,
		Error:       im.Error,
		CreateTime:  timestamppb.New(im.CreatedAt),
		UpdateTime:  timestamppb.New(im.UpdatedAt),
	}
}

func stateToProto(s imports.State) recipientv1.ImportState {
	switch s {
	case imports.StatePending:
		return recipientv1.ImportState_IMPORT_STATE_PENDING
	case imports.StateRunning:
		return recipientv1.ImportState_IMPORT_STATE_RUNNING
	case imports.StateSucceeded:
		return recipientv1.ImportState_IMPORT_STATE_SUCCEEDED
	case imports.StateFailed:
		return recipientv1.ImportState_IMPORT_STATE_FAILED
	case imports.StateCancelled:
		return recipientv1.ImportState_IMPORT_STATE_CANCELLED
	}
	return recipientv1.ImportState_IMPORT_STATE_UNSPECIFIED
}
