package store

import (
	"encoding/binary"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/services/events-ingest/internal/events"
)

// copyStagingSQL copies a batch into the staging table in PostgreSQL's binary COPY format.
var copyStagingSQL = `COPY ` + stagingTable + ` (` + strings.Join(stagingColumns[:], ", ") + `) FROM STDIN (FORMAT binary)`

// stagingFields is the number of fields of a row.
const stagingFields = uint16(len(stagingColumns))

// copySignature starts a binary COPY stream; the flags and the header extension's length
// (both zero) follow it.
const copySignature = "PGCOPY\n\xff\r\n\x00"

// postgresEpochMicros is 2000-01-01 00:00:00 UTC, PostgreSQL's epoch, in microseconds since
// the Unix epoch: a binary timestamptz counts microseconds from it.
const postgresEpochMicros = 946_684_800_000_000

// copyBuffers keeps the buffers of past batches: a batch of thousands of events is a buffer of
// hundreds of kilobytes.
var copyBuffers = sync.Pool{New: func() any { return new([]byte) }}

// encodeStaging appends evs to buf as a binary COPY stream in the columns of
// stagingColumns, whole (header, rows, trailer). Written here rather than by pgx's CopyFrom,
// which encodes every value through an interface and a plan looked up per value: for the
// rows of a batch, their fixed types make that a few appends per column.
func encodeStaging(buf []byte, evs []events.Event) []byte {
	buf = append(buf, copySignature...)
	buf = binary.BigEndian.AppendUint32(buf, 0) // flags
	buf = binary.BigEndian.AppendUint32(buf, 0) // header extension length
	for i := range evs {
		e := &evs[i]
		buf = binary.BigEndian.AppendUint16(buf, stagingFields)
		buf = appendUUID(buf, e.ID, true)
		buf = appendText(buf, string(e.Type))
		buf = appendUUID(buf, e.CampaignID.UUID, e.CampaignID.Valid)
		buf = appendUUID(buf, e.RecipientID.UUID, e.RecipientID.Valid)
		buf = appendTime(buf, e.OccurredAt)
		buf = appendText(buf, e.UserAgent)
		buf = appendText(buf, e.IP)
		buf = appendText(buf, e.URL)
		buf = appendText(buf, e.BounceClass)
		buf = appendBool(buf, e.IsMachine)
	}
	return binary.BigEndian.AppendUint16(buf, 0xffff) // trailer: a field count of -1
}

// A field is its length in bytes (-1 for NULL) and its value in the type's binary form.

func appendUUID(buf []byte, id uuid.UUID, valid bool) []byte {
	if !valid {
		return binary.BigEndian.AppendUint32(buf, 0xffffffff)
	}
	buf = binary.BigEndian.AppendUint32(buf, 16)
	return append(buf, id[:]...)
}

// appendText appends s, whose length events.Validate bounds (a few kilobytes at most).
func appendText(buf []byte, s string) []byte {
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(s))) //nolint:gosec // bounded by validation, far below 2^31
	return append(buf, s...)
}

func appendTime(buf []byte, t time.Time) []byte {
	buf = binary.BigEndian.AppendUint32(buf, 8)
	// Two's complement: a time before 2000 is a negative count.
	return binary.BigEndian.AppendUint64(buf, uint64(t.UnixMicro()-postgresEpochMicros)) //nolint:gosec // the bits are what matter, not the sign
}

func appendBool(buf []byte, b bool) []byte {
	buf = binary.BigEndian.AppendUint32(buf, 1)
	if b {
		return append(buf, 1)
	}
	return append(buf, 0)
}
