// Package importapi serves the two REST routes of recipient imports that grpc-gateway cannot:
// the upload, whose request body is the CSV file itself, streamed to the recipient service
// over a client-streaming call as it arrives (never held whole in memory), and the download of
// the rejected rows, a CSV file streamed back as the service produces it. Both are registered
// on the API's mux after the generated routes, so they replace the generated handlers of the
// same routes and run behind the same authentication, authorization (the table's entry for
// CreateImport and DownloadImportRejections), downscoped token, request id and error shape.
package importapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	recipientv1 "github.com/heraldmail/herald/proto/gen/go/herald/recipient/v1"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Routes served here, as the contract writes them.
const (
	UploadRoute     = "/v1/workspaces/{workspace_id}/domains/{domain_id}/imports"
	RejectionsRoute = "/v1/workspaces/{workspace_id}/domains/{domain_id}/imports/{import_id}/rejections"
)

// MaxUploadBytes is the largest file the upload accepts (the recipient service's limit).
const MaxUploadBytes = 2 << 30

// pieceSize is the size of the pieces the upload reads and forwards.
const pieceSize = 256 << 10

// StreamRoutes are the routes of this package with their body limits, for the REST handler's
// streamed routes.
func StreamRoutes() map[string]int64 {
	return map[string]int64{
		http.MethodPost + " " + UploadRoute:    MaxUploadBytes,
		http.MethodGet + " " + RejectionsRoute: 1, // no body
	}
}

// Register adds the import routes to mux: the generated ones (get, cancel) and the streamed
// ones, which replace the generated handlers of their routes.
func Register(ctx context.Context, mux *runtime.ServeMux, conn *grpc.ClientConn, log *zap.Logger) error {
	if err := recipientv1.RegisterImportServiceHandler(ctx, mux, conn); err != nil {
		return fmt.Errorf("register import routes: %w", err)
	}
	h := &handler{mux: mux, client: recipientv1.NewImportServiceClient(conn), log: log}
	if err := mux.HandlePath(http.MethodPost, UploadRoute, h.upload); err != nil {
		return fmt.Errorf("register import upload: %w", err)
	}
	if err := mux.HandlePath(http.MethodGet, RejectionsRoute, h.rejections); err != nil {
		return fmt.Errorf("register import rejections: %w", err)
	}
	return nil
}

type handler struct {
	mux    *runtime.ServeMux
	client recipientv1.ImportServiceClient
	log    *zap.Logger
}

// outgoing is the request's context with the metadata grpc-gateway would forward (the
// downscoped token, the request id).
func (h *handler) outgoing(r *http.Request, method, route string) (context.Context, error) {
	ctx, err := runtime.AnnotateContext(r.Context(), h.mux, r, method, runtime.WithHTTPPathPattern(route))
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, "malformed request headers")
	}
	return ctx, nil
}

func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	_, out := runtime.MarshalerForRequest(h.mux, r)
	runtime.HTTPError(r.Context(), h.mux, out, w, r, err)
}

// upload streams the request body to UploadImport: the ids and the mapping ("map" query
// parameters) first, then the file in pieces.
func (h *handler) upload(w http.ResponseWriter, r *http.Request, params map[string]string) {
	for _, m := range r.URL.Query()["map"] {
		if !utf8.ValidString(m) {
			h.fail(w, r, status.Error(codes.InvalidArgument, "map: must be UTF-8 text"))
			return
		}
	}
	ctx, err := h.outgoing(r, recipientv1.ImportService_CreateImport_FullMethodName, UploadRoute)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	stream, err := h.client.UploadImport(ctx)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	first := &recipientv1.UploadImportRequest{
		WorkspaceId: params["workspace_id"],
		DomainId:    params["domain_id"],
		Map:         r.URL.Query()["map"],
	}
	if err := stream.Send(first); err != nil && !errors.Is(err, io.EOF) {
		h.fail(w, r, err)
		return
	}
	if err := h.sendBody(r.Body, stream); err != nil {
		h.fail(w, r, err)
		return
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		h.fail(w, r, err)
		return
	}
	_, out := runtime.MarshalerForRequest(h.mux, r)
	runtime.ForwardResponseMessage(r.Context(), h.mux, out, w, r, resp)
}

// sendBody forwards body in pieces. When the service ends the call early (io.EOF on Send, a
// header it refused), the service's answer is what CloseAndRecv returns; a body that cannot
// be read (too large, the client went away) cancels the call.
func (h *handler) sendBody(body io.Reader, stream grpc.ClientStreamingClient[recipientv1.UploadImportRequest, recipientv1.UploadImportResponse]) error {
	for {
		// A buffer per piece: a sent message must not change afterwards (stats handlers may
		// read it later).
		buf := make([]byte, pieceSize)
		n, rerr := io.ReadFull(body, buf)
		if n > 0 {
			if err := stream.Send(&recipientv1.UploadImportRequest{Chunk: buf[:n]}); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
		}
		switch {
		case rerr == nil:
		case errors.Is(rerr, io.EOF), errors.Is(rerr, io.ErrUnexpectedEOF):
			return nil
		default:
			return fmt.Errorf("read upload body: %w", rerr)
		}
	}
}

// rejections streams DownloadImportRejections as a CSV file. The first piece is read before
// anything is written, so an error (an import that does not exist) still gets the error shape.
func (h *handler) rejections(w http.ResponseWriter, r *http.Request, params map[string]string) {
	ctx, err := h.outgoing(r, recipientv1.ImportService_DownloadImportRejections_FullMethodName, RejectionsRoute)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := h.client.DownloadImportRejections(ctx, &recipientv1.DownloadImportRejectionsRequest{
		WorkspaceId: params["workspace_id"], DomainId: params["domain_id"], ImportId: params["import_id"],
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	msg, err := stream.Recv()
	if err != nil && !errors.Is(err, io.EOF) {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="rejections-`+params["import_id"]+`.csv"`)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	for err == nil {
		if _, werr := w.Write(msg.GetChunk()); werr != nil {
			return // the client went away
		}
		_ = rc.Flush()
		msg, err = stream.Recv()
	}
	if !errors.Is(err, io.EOF) {
		// The status line is gone; cut the response short so the client sees it incomplete.
		h.log.Warn("import rejections download cut short", zap.Error(err))
		panic(http.ErrAbortHandler)
	}
}
