package recipient

import (
	"context"
	"fmt"

	"github.com/heraldmail/herald/libs/tenancy"
)

// Page sizes of ListRecipients.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// CountCap is how many matching rows a filtered list counts at most: past it the total is
// reported as "at least CountCap". Unfiltered and status-only lists read counters instead.
const CountCap = 10000

// Query is a page request to Store.List.
type Query struct {
	Filter Filter
	// After is the position the page starts after; nil for the first page.
	After *Cursor
	Limit int
}

// Page is a page of recipients.
type Page struct {
	Recipients []Recipient
	// Next is the position of the next page; nil on the last page.
	Next *Cursor
	// Total is how many recipients match the filter; when TotalExact is false, at least that
	// many (the count stopped at CountCap).
	Total      int64
	TotalExact bool
}

// ListRequest is a page request as a client makes it.
type ListRequest struct {
	Filter    RawFilter
	PageSize  int
	PageToken string
}

// ListResult is a page for a client: NextPageToken is empty on the last page.
type ListResult struct {
	Recipients    []Recipient
	NextPageToken string
	Total         int64
	TotalExact    bool
}

// List returns a page of the domain's recipients that match the filter, oldest first.
func (s *Service) List(ctx context.Context, t tenancy.Tenant, req ListRequest) (ListResult, error) {
	size := req.PageSize
	switch {
	case size == 0:
		size = DefaultPageSize
	case size < 0 || size > MaxPageSize:
		return ListResult{}, fmt.Errorf("list recipients: %w", invalid("page_size", fmt.Sprintf("must be between 1 and %d", MaxPageSize)))
	}
	defs, err := s.definitions(ctx, t)
	if err != nil {
		return ListResult{}, fmt.Errorf("list recipients: %w", err)
	}
	f, err := ParseFilter("filter", req.Filter, defs)
	if err != nil {
		return ListResult{}, fmt.Errorf("list recipients: %w", err)
	}
	q := Query{Filter: f, Limit: size}
	if req.PageToken != "" {
		c, err := decodeToken(req.PageToken, f)
		if err != nil {
			return ListResult{}, fmt.Errorf("list recipients: %w", err)
		}
		q.After = &c
	}
	p, err := s.store.List(ctx, t, q)
	if err != nil {
		return ListResult{}, fmt.Errorf("list recipients: %w", err)
	}
	res := ListResult{Recipients: p.Recipients, Total: p.Total, TotalExact: p.TotalExact}
	if p.Next != nil {
		res.NextPageToken = encodeToken(*p.Next, f)
	}
	return res, nil
}
