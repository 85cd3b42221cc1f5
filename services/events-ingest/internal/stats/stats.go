// Package stats reads the engagement statistics of a domain from the daily rollup
// events.email_events_daily, the one read path over both storage modes: on plain PostgreSQL
// and on TimescaleDB alike the worker keeps the rollup current from
// events.engagement_events, recounting the last days so that late events are counted (see
// services/worker/internal/eventstorage). Counts are as fresh as the rollup's last run (every
// 15 minutes).
//
// Opens and clicks are reported in all and by humans: the machine ones (privacy proxies, link
// scanners; events.engagement_events.is_machine) are counted in the totals only.
package stats

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/jackc/pgx/v5"
)

// MaxDays is the longest series DailySeries returns.
const MaxDays = 366

// ErrInvalid is wrapped by every refusal of a request's arguments.
var ErrInvalid = errors.New("invalid stats request")

// Counts are the numbers of events of each type.
type Counts struct {
	Total        int64
	Sent         int64
	Delivered    int64
	Opens        int64
	HumanOpens   int64
	Clicks       int64
	HumanClicks  int64
	Bounces      int64
	Complaints   int64
	Unsubscribes int64
}

// Day is the counts of one UTC day.
type Day struct {
	// Day is 00:00 UTC of the day.
	Day time.Time
	Counts
}

// Reader reads the rollup as events-ingest's role, inside transactions scoped to the tenant
// (row-level security), and names the domain in every query too, for the index.
type Reader struct {
	db tenancy.Beginner
}

// New returns a reader on db (a pool).
func New(db tenancy.Beginner) *Reader {
	return &Reader{db: db}
}

const countColumns = `coalesce(sum(total), 0), coalesce(sum(sent), 0), coalesce(sum(delivered), 0),
	coalesce(sum(opens), 0), coalesce(sum(opens - opens_machine), 0),
	coalesce(sum(clicks), 0), coalesce(sum(clicks - clicks_machine), 0),
	coalesce(sum(bounces), 0), coalesce(sum(complaints), 0), coalesce(sum(unsubscribes), 0)`

// dailySQL returns one row per day of [$2, $3], days without events included.
const dailySQL = `
SELECT d.day::timestamp AT TIME ZONE 'UTC', ` + countColumns + `
FROM generate_series($2::date, $3::date, interval '1 day') AS d (day)
LEFT JOIN events.email_events_daily AS r ON r.domain_id = $1 AND r.day = d.day::date
GROUP BY d.day
ORDER BY d.day`

const campaignSQL = `
SELECT ` + countColumns + `
FROM events.email_events_daily
WHERE domain_id = $1 AND campaign_id = $2`

// DailySeries returns the counts of the tenant's domain for every UTC day from the day of
// from to the day of to, both included, oldest first.
func (r *Reader) DailySeries(ctx context.Context, t tenancy.Tenant, from, to time.Time) ([]Day, error) {
	fromDay, toDay := utcDay(from), utcDay(to)
	switch {
	case from.IsZero() || to.IsZero():
		return nil, fmt.Errorf("daily series: from and to are required: %w", ErrInvalid)
	case toDay.Before(fromDay):
		return nil, fmt.Errorf("daily series: to (%s) is before from (%s): %w", toDay.Format(time.DateOnly), fromDay.Format(time.DateOnly), ErrInvalid)
	case toDay.Sub(fromDay) >= MaxDays*24*time.Hour:
		return nil, fmt.Errorf("daily series: at most %d days at once: %w", MaxDays, ErrInvalid)
	}
	var days []Day
	err := tenancy.InTx(ctx, r.db, t, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, dailySQL, t.DomainID, fromDay, toDay)
		if err != nil {
			return err
		}
		days, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Day, error) {
			var d Day
			err := row.Scan(append([]any{&d.Day}, d.fields()...)...)
			d.Day = d.Day.UTC()
			return d, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("daily series: %w", err)
	}
	return days, nil
}

// CampaignTotals returns the counts of one campaign of the tenant's domain over its whole
// life (as far back as the rollup goes); a campaign without events, or another tenant's,
// has zero counts.
func (r *Reader) CampaignTotals(ctx context.Context, t tenancy.Tenant, campaign uuid.UUID) (Counts, error) {
	if campaign == uuid.Nil {
		return Counts{}, fmt.Errorf("campaign totals: a campaign id is required: %w", ErrInvalid)
	}
	var c Counts
	err := tenancy.InTx(ctx, r.db, t, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, campaignSQL, t.DomainID, campaign).Scan(c.fields()...)
	})
	if err != nil {
		return Counts{}, fmt.Errorf("campaign totals: %w", err)
	}
	return c, nil
}

// fields are the scan targets of countColumns, in order.
func (c *Counts) fields() []any {
	return []any{&c.Total, &c.Sent, &c.Delivered, &c.Opens, &c.HumanOpens, &c.Clicks, &c.HumanClicks,
		&c.Bounces, &c.Complaints, &c.Unsubscribes}
}

func utcDay(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}
