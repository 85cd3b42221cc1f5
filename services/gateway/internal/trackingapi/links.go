package trackingapi

import (
	"errors"
	"mime"
	"net/http"
	"strconv"

	"github.com/heraldmail/herald/libs/tracking"
	eventsv1 "github.com/heraldmail/herald/proto/gen/go/herald/events/v1"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/heraldmail/herald/services/gateway/internal/clientip"
	"github.com/heraldmail/herald/services/gateway/internal/rest"
)

// Kinds of tracking request, the kind label of the metrics.
const (
	kindOpen        = "open"
	kindClick       = "click"
	kindUnsubscribe = "unsubscribe"
	kindWebhook     = "webhook"
)

// Pixel is the open pixel: a transparent 1x1 GIF.
var Pixel = []byte{
	'G', 'I', 'F', '8', '9', 'a', 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00,
	0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
	0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00,
	0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00,
	0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
}

// open answers the pixel and records an open.
func (h *Handler) open(w http.ResponseWriter, r *http.Request) {
	t, ok := h.verify(w, r, kindOpen, tracking.PurposeOpen)
	if !ok {
		return
	}
	h.recordHit(r, t, kindOpen, eventsv1.EventType_EVENT_TYPE_OPEN)
	hd := w.Header()
	noStore(hd)
	hd.Set("Content-Type", "image/gif")
	hd.Set("Content-Length", strconv.Itoa(len(Pixel)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(Pixel)
	}
}

// click records a click and redirects to exactly the URL the token carries: only http and
// https URLs are ever signed (tracking.CheckURL), so this is never an open redirect.
func (h *Handler) click(w http.ResponseWriter, r *http.Request) {
	t, ok := h.verify(w, r, kindClick, tracking.PurposeClick)
	if !ok {
		return
	}
	h.recordHit(r, t, kindClick, eventsv1.EventType_EVENT_TYPE_CLICK)
	hd := w.Header()
	noStore(hd)
	// Set as is: http.Redirect would rewrite a URL it considers unclean.
	hd.Set("Location", t.URL)
	w.WriteHeader(http.StatusFound)
}

// Pages of the unsubscribe link: static, so nothing of the request is ever echoed.
const (
	confirmPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="robots" content="noindex"><title>Unsubscribe</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}button{font-size:1rem;padding:.5rem 1rem}</style>
</head><body>
<h1>Unsubscribe</h1>
<p>Do you want to stop receiving these emails?</p>
<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click"><button type="submit">Unsubscribe</button></form>
</body></html>
`
	donePage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="robots" content="noindex"><title>Unsubscribed</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}</style>
</head><body>
<h1>You are unsubscribed</h1>
<p>You will not receive these emails any more.</p>
</body></html>
`
	// pageCSP lets the pages do nothing but show themselves and post their form to this
	// origin.
	pageCSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

// maxUnsubscribeBody bounds the body of an unsubscribe POST: "List-Unsubscribe=One-Click",
// perhaps as multipart/form-data (RFC 8058 allows both encodings).
const maxUnsubscribeBody = 4 << 10

func writePage(w http.ResponseWriter, page string) {
	hd := w.Header()
	noStore(hd)
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Content-Security-Policy", pageCSP)
	hd.Set("X-Frame-Options", "DENY")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(page))
}

// unsubscribePage answers a GET of the unsubscribe link with a page whose button POSTs: a
// GET never unsubscribes, since link scanners and prefetchers follow every link.
func (h *Handler) unsubscribePage(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.verify(w, r, kindUnsubscribe, tracking.PurposeUnsubscribe); !ok {
		return
	}
	h.hits.WithLabelValues(kindUnsubscribe, resultNotRecorded).Inc()
	writePage(w, confirmPage)
}

// unsubscribe is the RFC 8058 one-click POST (from the mail client, or the page's button):
// its body must carry List-Unsubscribe=One-Click. It answers 200 once the event is stored,
// and 5xx when it could not be, so the mail client retries; the event id is the same for
// every POST of one message, so retries and repeats are recorded once.
func (h *Handler) unsubscribe(w http.ResponseWriter, r *http.Request) {
	t, ok := h.verify(w, r, kindUnsubscribe, tracking.PurposeUnsubscribe)
	if !ok {
		return
	}
	if !h.oneClick(w, r) {
		return
	}
	id, at := tracking.Event(t, h.o.Now())
	ev := &eventsv1.Event{
		Id:          id.String(),
		Type:        eventsv1.EventType_EVENT_TYPE_UNSUBSCRIBE,
		CampaignId:  t.CampaignID.String(),
		RecipientId: t.RecipientID.String(),
		OccurTime:   timestamppb.New(at),
		UserAgent:   clean(r.UserAgent(), maxUserAgentLen),
		Ip:          clean(clientip.From(r.Context()), maxIPLen),
	}
	res, err := h.record(r.Context(), t.Message, []*eventsv1.Event{ev})
	h.count(kindUnsubscribe, res, err)
	if err != nil {
		h.o.Log.Error("record unsubscribe", zap.String("request_id", rest.RequestID(r.Context())), zap.Error(err))
		w.Header().Set(rest.HeaderRetryAfter, "30")
		rest.WriteError(w, r, http.StatusServiceUnavailable, "unavailable",
			"the unsubscribe could not be recorded right now; retry in a moment", nil)
		return
	}
	writePage(w, donePage)
}

// oneClick checks that the body of an unsubscribe POST is RFC 8058's, answering 4xx when not.
func (h *Handler) oneClick(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxUnsubscribeBody)
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case err == nil && mt == "multipart/form-data":
		err = r.ParseMultipartForm(maxUnsubscribeBody) //nolint:gosec // G120: the body is capped by http.MaxBytesReader above
	case err == nil && mt == "application/x-www-form-urlencoded":
		err = r.ParseForm()
	default:
		rest.WriteError(w, r, http.StatusUnsupportedMediaType, "unsupported_media_type",
			"the body must be application/x-www-form-urlencoded or multipart/form-data with List-Unsubscribe=One-Click", nil)
		return false
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		rest.WriteError(w, r, http.StatusRequestEntityTooLarge, rest.CodeRequestTooLarge,
			"the request body is larger than "+strconv.Itoa(maxUnsubscribeBody)+" bytes", nil)
		return false
	}
	if err != nil || r.PostForm.Get("List-Unsubscribe") != "One-Click" {
		rest.WriteError(w, r, http.StatusBadRequest, "invalid_argument",
			"the body must be List-Unsubscribe=One-Click (RFC 8058)", nil)
		return false
	}
	return true
}
