package stats

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/jackc/pgx/v5"
)

// Timeline page sizes.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

// ValidPageSize reports whether Timeline takes n as a page size: 1 to MaxPageSize, or 0 for
// DefaultPageSize.
func ValidPageSize(n int) bool {
	return n >= 0 && n <= MaxPageSize
}

// Event is one event of a recipient's timeline.
type Event struct {
	ID          uuid.UUID
	Type        string
	CampaignID  uuid.NullUUID
	OccurredAt  time.Time
	Machine     bool
	UserAgent   string
	IP          string
	URL         string
	BounceClass string
}

// Page is one page of a timeline; Next is empty on the last.
type Page struct {
	Events []Event
	Next   string
}

// cursor is the position after the last event of a page, bound to its recipient.
type cursor struct {
	At        time.Time `json:"t"`
	ID        uuid.UUID `json:"i"`
	Recipient uuid.UUID `json:"r"`
}

func (c cursor) token() string {
	b, _ := json.Marshal(c) // a struct of a time and two UUIDs always marshals
	return base64.RawURLEncoding.EncodeToString(b)
}

func parseCursor(token string, recipient uuid.UUID) (*cursor, error) {
	if token == "" {
		return nil, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	var c cursor
	if err == nil {
		err = json.Unmarshal(raw, &c)
	}
	if err != nil || c.At.IsZero() || c.ID == uuid.Nil {
		return nil, fmt.Errorf("the page token is not one this API returned: %w", ErrInvalid)
	}
	if c.Recipient != recipient {
		return nil, fmt.Errorf("the page token belongs to another recipient's timeline: %w", ErrInvalid)
	}
	return &c, nil
}

// timelineSQL reads a recipient's events newest first, after the cursor ($3, $4) when set.
// On the partitioned table the index (domain_id, recipient_id, created_at) serves it; the
// legacy table, written only until the flag events_partitioned_storage is on, is read by
// (domain_id, occurred_at).
func timelineSQL(table, timeColumn, machine string) string {
	return `SELECT id, type, campaign_id, ` + timeColumn + `, ` + machine + `, user_agent, ip, url, bounce_class
FROM ` + table + `
WHERE domain_id = $1 AND recipient_id = $2
	AND ($3::timestamptz IS NULL OR (` + timeColumn + `, id) < ($3::timestamptz, $4::uuid))
ORDER BY ` + timeColumn + ` DESC, id DESC
LIMIT $5`
}

var (
	timelinePartitioned = timelineSQL("events.engagement_events", "created_at", "is_machine")
	timelineLegacy      = timelineSQL("events.email_events", "occurred_at", "false")
)

// Timeline returns a page of the events of one recipient of the tenant's domain, newest
// first: pageSize of them (DefaultPageSize when 0, at most MaxPageSize) after the position
// of pageToken (a Page.Next; empty for the first page). A recipient without events, or
// another tenant's, has an empty timeline: whether the recipient exists is for the caller to
// check.
func (r *Reader) Timeline(ctx context.Context, t tenancy.Tenant, recipient uuid.UUID, pageSize int, pageToken string) (Page, error) {
	switch {
	case recipient == uuid.Nil:
		return Page{}, fmt.Errorf("timeline: a recipient id is required: %w", ErrInvalid)
	case !ValidPageSize(pageSize):
		return Page{}, fmt.Errorf("timeline: page size must be between 1 and %d: %w", MaxPageSize, ErrInvalid)
	case pageSize == 0:
		pageSize = DefaultPageSize
	}
	after, err := parseCursor(pageToken, recipient)
	if err != nil {
		return Page{}, fmt.Errorf("timeline: %w", err)
	}
	query := timelineLegacy
	if r.partitioned != nil && r.partitioned(ctx, t) {
		query = timelinePartitioned
	}
	var at *time.Time
	var id *uuid.UUID
	if after != nil {
		at, id = &after.At, &after.ID
	}
	var page Page
	err = tenancy.InTx(ctx, r.db, t, func(tx pgx.Tx) error {
		// One more than asked tells whether there is a next page.
		rows, err := tx.Query(ctx, query, t.DomainID, recipient, at, id, pageSize+1)
		if err != nil {
			return err
		}
		page.Events, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Event, error) {
			var e Event
			err := row.Scan(&e.ID, &e.Type, &e.CampaignID, &e.OccurredAt, &e.Machine, &e.UserAgent, &e.IP, &e.URL, &e.BounceClass)
			e.OccurredAt = e.OccurredAt.UTC()
			return e, err
		})
		return err
	})
	if err != nil {
		return Page{}, fmt.Errorf("timeline: %w", err)
	}
	if len(page.Events) > pageSize {
		page.Events = page.Events[:pageSize]
		last := page.Events[pageSize-1]
		page.Next = cursor{At: last.OccurredAt, ID: last.ID, Recipient: recipient}.token()
	}
	return page, nil
}
