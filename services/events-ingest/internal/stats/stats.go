// Package stats reads the engagement statistics of a domain from the daily rollup
// events.email_events_daily and the unique counts of its campaigns
// (events.campaign_engagement_uniques), the one read path over both storage modes: on plain PostgreSQL
// and on TimescaleDB alike the worker keeps the rollup current from
// events.engagement_events, recounting the last days so that late events are counted (see
// services/worker/internal/eventstorage). Counts are as fresh as the rollup's last run (every
// 15 minutes). It also reads a recipient's event timeline, from the events themselves.
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
	db          tenancy.Beginner
	partitioned Partitioned
}

// Partitioned reports whether the events of a tenant are written to the time-partitioned
// table (the store's Partitioned, which asks the flag events_partitioned_storage).
type Partitioned func(ctx context.Context, t tenancy.Tenant) bool

// New returns a reader on db (a pool). partitioned tells which table a recipient's timeline
// is read from, as the store decides where it writes; nil means the legacy one.
func New(db tenancy.Beginner, partitioned Partitioned) *Reader {
	return &Reader{db: db, partitioned: partitioned}
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

// campaignSQL sums the campaign's days and reads its unique counts, one row whatever the
// number of its events: the rollup has one row per day with events, the uniques one per
// campaign. refreshed is the latest rollup run that counted any of it.
const campaignSQL = `
WITH days AS (
	SELECT ` + countColumns + `, max(refreshed_at) AS refreshed
	FROM events.email_events_daily
	WHERE domain_id = $1 AND campaign_id = $2
)
SELECT days.*, coalesce(u.unique_opens, 0), coalesce(u.unique_human_opens, 0),
	coalesce(u.unique_clicks, 0), coalesce(u.unique_human_clicks, 0), u.refreshed_at
FROM days
LEFT JOIN events.campaign_engagement_uniques AS u ON u.domain_id = $1 AND u.campaign_id = $2`

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

// Campaign is the statistics of one campaign.
type Campaign struct {
	Counts
	// UniqueOpens and UniqueClicks are the numbers of recipients who opened (clicked) at
	// least once; the Human ones count only recipients with an open (click) not marked as
	// machine traffic.
	UniqueOpens, UniqueHumanOpens, UniqueClicks, UniqueHumanClicks int64
	// RefreshedAt is when the rollup last counted the campaign's events; zero when it has
	// none yet.
	RefreshedAt time.Time
}

// Rates are the campaign's ratios, each between 0 and 1 (0 when its denominator is 0).
type Rates struct {
	// Delivery is delivered / sent.
	Delivery float64
	// Open and HumanOpen are unique (human) openers / delivered; Click and HumanClick unique
	// (human) clickers / delivered; ClickToOpen unique clickers / unique openers.
	Open, HumanOpen, Click, HumanClick, ClickToOpen float64
	// Bounce is bounces / sent; Complaint and Unsubscribe are per delivered.
	Bounce, Complaint, Unsubscribe float64
}

// Rates computes the campaign's rates. Where no delivery was recorded (a provider that
// reports none), the per-delivered rates are per sent instead.
func (c Campaign) Rates() Rates {
	delivered := c.Delivered
	if delivered == 0 {
		delivered = c.Sent
	}
	return Rates{
		Delivery:    ratio(c.Delivered, c.Sent),
		Open:        ratio(c.UniqueOpens, delivered),
		HumanOpen:   ratio(c.UniqueHumanOpens, delivered),
		Click:       ratio(c.UniqueClicks, delivered),
		HumanClick:  ratio(c.UniqueHumanClicks, delivered),
		ClickToOpen: ratio(c.UniqueClicks, c.UniqueOpens),
		Bounce:      ratio(c.Bounces, c.Sent),
		Complaint:   ratio(c.Complaints, delivered),
		Unsubscribe: ratio(c.Unsubscribes, delivered),
	}
}

// ratio is n / d, at most 1 (a late delivery report can trail its opens), and 0 when d is 0.
func ratio(n, d int64) float64 {
	if d <= 0 || n <= 0 {
		return 0
	}
	return min(float64(n)/float64(d), 1)
}

// CampaignStats returns the statistics of one campaign of the tenant's domain over its whole
// life (as far back as the rollup goes); a campaign without events, or another tenant's, has
// zero counts: whether the campaign exists is for the caller to check.
func (r *Reader) CampaignStats(ctx context.Context, t tenancy.Tenant, campaign uuid.UUID) (Campaign, error) {
	if campaign == uuid.Nil {
		return Campaign{}, fmt.Errorf("campaign stats: a campaign id is required: %w", ErrInvalid)
	}
	var (
		c             Campaign
		days, uniques *time.Time
	)
	err := tenancy.InTx(ctx, r.db, t, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, campaignSQL, t.DomainID, campaign).Scan(append(c.fields(), &days,
			&c.UniqueOpens, &c.UniqueHumanOpens, &c.UniqueClicks, &c.UniqueHumanClicks, &uniques)...)
	})
	if err != nil {
		return Campaign{}, fmt.Errorf("campaign stats: %w", err)
	}
	for _, at := range []*time.Time{days, uniques} {
		if at != nil && at.After(c.RefreshedAt) {
			c.RefreshedAt = at.UTC()
		}
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
