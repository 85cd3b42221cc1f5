package store

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/migrations/pgtest"
	"github.com/heraldmail/herald/services/events-ingest/internal/events"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// The binary COPY stream of a batch is read by PostgreSQL as the events it was made of: every
// column, NULL ids, times before PostgreSQL's and Unix's epochs and with microseconds, text
// beyond ASCII, empty text, both booleans; and an empty batch is a valid stream of no rows.
func TestEncodeStaging(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.URL(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(ctx) })

	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		require.NoError(t, err)
		return v
	}
	evs := []events.Event{
		{
			ID: uuid.New(), Type: events.TypeClick,
			CampaignID: uuid.NullUUID{UUID: uuid.New(), Valid: true}, RecipientID: uuid.NullUUID{UUID: uuid.New(), Valid: true},
			OccurredAt: at("2026-11-26T06:30:01.123456Z"), UserAgent: "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) — Mail ✉",
			IP: "2001:db8::1", URL: "https://example.com/ü?a=1&b=2", IsMachine: true,
		},
		{
			ID: uuid.New(), Type: events.TypeBounce, OccurredAt: at("1999-12-31T23:59:59.999999Z"),
			BounceClass: "hard",
		},
		{
			ID: uuid.New(), Type: events.TypeSent, RecipientID: uuid.NullUUID{UUID: uuid.New(), Valid: true},
			OccurredAt: at("1969-07-20T20:17:40.000001-05:00"),
		},
	}

	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, createStaging)
		require.NoError(t, err)
		tag, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(encodeStaging(nil, nil)), copyStagingSQL)
		require.NoError(t, err)
		require.Zero(t, tag.RowsAffected())

		tag, err = tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(encodeStaging(nil, evs)), copyStagingSQL)
		require.NoError(t, err)
		require.EqualValues(t, len(evs), tag.RowsAffected())

		rows, err := tx.Query(ctx, `SELECT id, type, campaign_id, recipient_id, occurred_at, user_agent, ip, url,
			bounce_class, is_machine FROM `+stagingTable)
		require.NoError(t, err)
		var got []events.Event
		var e events.Event
		var typ string
		_, err = pgx.ForEachRow(rows, []any{&e.ID, &typ, &e.CampaignID, &e.RecipientID, &e.OccurredAt, &e.UserAgent,
			&e.IP, &e.URL, &e.BounceClass, &e.IsMachine}, func() error {
			e.Type = events.Type(typ)
			got = append(got, e)
			return nil
		})
		require.NoError(t, err)
		require.Len(t, got, len(evs))
		for i := range evs {
			require.True(t, evs[i].OccurredAt.Equal(got[i].OccurredAt), "%s read back as %s", evs[i].OccurredAt, got[i].OccurredAt)
			got[i].OccurredAt = evs[i].OccurredAt
			require.Equal(t, evs[i], got[i])
		}
		return nil
	})
	require.NoError(t, err)
}
