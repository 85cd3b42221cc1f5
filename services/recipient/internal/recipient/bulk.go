package recipient

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/tenancy"
)

// BulkAction is what a bulk operation does to each recipient it matches. The values are the
// ones stored in recipient.bulk_operations.action.
type BulkAction string

// Bulk actions.
const (
	BulkUpdateStatus     BulkAction = "update_status"
	BulkUpdateAttributes BulkAction = "update_attributes"
	BulkDelete           BulkAction = "delete"
)

// BulkState is where a bulk operation is in its life.
type BulkState string

// Bulk states.
const (
	BulkPending   BulkState = "pending"
	BulkRunning   BulkState = "running"
	BulkSucceeded BulkState = "succeeded"
	BulkFailed    BulkState = "failed"
)

// Finished reports whether an operation in state s has nothing left to do.
func (s BulkState) Finished() bool { return s == BulkSucceeded || s == BulkFailed }

// Batch sizes of RunBulkBatch.
const (
	DefaultBatchSize = 500
	MaxBatchSize     = 5000
)

// BulkParams are an operation's arguments: Status and StatusReason for BulkUpdateStatus,
// Attributes (a nil value removes the key) for BulkUpdateAttributes.
type BulkParams struct {
	Status       Status         `json:"status,omitempty"`
	StatusReason string         `json:"status_reason,omitempty"`
	Attributes   map[string]any `json:"attributes,omitempty"`
}

// BulkOperation is a change applied in batches to the recipients of a domain that match a
// filter and were created no later than BoundAt.
type BulkOperation struct {
	ID      uuid.UUID
	Tenant  tenancy.Tenant
	Action  BulkAction
	Filter  Filter
	Params  BulkParams
	State   BulkState
	Matched int64
	Done    int64
	BoundAt time.Time
	// Cursor is the position of the last committed batch; nil before the first.
	Cursor     *Cursor
	Error      string
	CreatedAt  time.Time
	UpdatedAt  time.Time
	StartedAt  time.Time
	FinishedAt time.Time
}

// Percent is Done as a share of Matched, 0 to 100; 100 once the operation succeeded.
func (op BulkOperation) Percent() float64 {
	switch {
	case op.State == BulkSucceeded:
		return 100
	case op.Matched <= 0:
		return 0
	}
	p := float64(op.Done) * 100 / float64(op.Matched)
	return min(p, 100)
}

// NewBulkOperation is what CreateBulkOperation needs.
type NewBulkOperation struct {
	Action BulkAction
	Filter RawFilter
	Params BulkParams
}

// BulkStore persists bulk operations.
type BulkStore interface {
	// CreateBulk inserts a pending operation and enqueues the job that runs it, in one
	// transaction.
	CreateBulk(ctx context.Context, t tenancy.Tenant, op BulkOperation) (BulkOperation, error)
	// GetBulk returns one operation.
	GetBulk(ctx context.Context, t tenancy.Tenant, id uuid.UUID) (BulkOperation, error)
	// RunBulkBatch applies the next batch of at most size recipients of the operation and
	// stores its new position, done count and state, in one transaction: a retried call
	// continues after the last committed batch. The first call counts Matched and moves the
	// operation to running; the call that finds fewer than size recipients ends it. It returns
	// the operation afterwards and how many recipients the batch changed.
	RunBulkBatch(ctx context.Context, t tenancy.Tenant, id uuid.UUID, size int, now time.Time) (BulkOperation, int64, error)
}

// CreateBulk validates and starts a bulk operation.
func (s *Service) CreateBulk(ctx context.Context, t tenancy.Tenant, in NewBulkOperation) (BulkOperation, error) {
	defs, err := s.definitions(ctx, t)
	if err != nil {
		return BulkOperation{}, fmt.Errorf("create bulk operation: %w", err)
	}
	f, err := ParseFilter("filter", in.Filter, defs)
	if err != nil {
		return BulkOperation{}, fmt.Errorf("create bulk operation: %w", err)
	}
	op := BulkOperation{Action: in.Action, Filter: f, State: BulkPending}
	switch in.Action {
	case BulkUpdateStatus:
		sc := StatusChange{Status: in.Params.Status, Reason: in.Params.StatusReason}
		if err := sc.validate(); err != nil {
			return BulkOperation{}, fmt.Errorf("create bulk operation: %w", err)
		}
		if in.Params.Attributes != nil {
			return BulkOperation{}, fmt.Errorf("create bulk operation: %w", invalid("attributes", "are for the update-attributes action only"))
		}
		op.Params = BulkParams{Status: sc.Status, StatusReason: sc.Reason}
	case BulkUpdateAttributes:
		if len(in.Params.Attributes) == 0 {
			return BulkOperation{}, fmt.Errorf("create bulk operation: %w", invalid("attributes", "are required for the update-attributes action"))
		}
		if in.Params.Status != "" || in.Params.StatusReason != "" {
			return BulkOperation{}, fmt.Errorf("create bulk operation: %w", invalid("status", "is for the update-status action only"))
		}
		if err := validateAttributes(in.Params.Attributes); err != nil {
			return BulkOperation{}, fmt.Errorf("create bulk operation: %w", err)
		}
		// Only the keys given are checked: the patch is merged into each recipient as it is.
		patch, err := defs.ValidatePatch(nil, in.Params.Attributes)
		if err != nil {
			return BulkOperation{}, fmt.Errorf("create bulk operation: %w", err)
		}
		for k, v := range in.Params.Attributes {
			if v == nil {
				patch[k] = nil
			}
		}
		op.Params = BulkParams{Attributes: patch}
	case BulkDelete:
		if in.Params.Status != "" || in.Params.StatusReason != "" || in.Params.Attributes != nil {
			return BulkOperation{}, fmt.Errorf("create bulk operation: %w", invalid("action", "delete takes no status or attributes"))
		}
	default:
		return BulkOperation{}, fmt.Errorf("create bulk operation: %w", invalid("action", "must be one of UPDATE_STATUS, UPDATE_ATTRIBUTES, DELETE"))
	}
	op, err = s.store.CreateBulk(ctx, t, op)
	if err != nil {
		return BulkOperation{}, fmt.Errorf("create bulk operation: %w", err)
	}
	return op, nil
}

// GetBulk returns one bulk operation.
func (s *Service) GetBulk(ctx context.Context, t tenancy.Tenant, id uuid.UUID) (BulkOperation, error) {
	op, err := s.store.GetBulk(ctx, t, id)
	if err != nil {
		return BulkOperation{}, fmt.Errorf("get bulk operation: %w", err)
	}
	return op, nil
}

// RunBulkBatch applies the next batch of an operation (see BulkStore.RunBulkBatch); size 0
// means DefaultBatchSize.
func (s *Service) RunBulkBatch(ctx context.Context, t tenancy.Tenant, id uuid.UUID, size int) (BulkOperation, int64, error) {
	switch {
	case size == 0:
		size = DefaultBatchSize
	case size < 0 || size > MaxBatchSize:
		return BulkOperation{}, 0, fmt.Errorf("run bulk batch: %w", invalid("batch_size", fmt.Sprintf("must be between 1 and %d", MaxBatchSize)))
	}
	op, n, err := s.store.RunBulkBatch(ctx, t, id, size, s.now())
	if err != nil {
		return BulkOperation{}, 0, fmt.Errorf("run bulk batch: %w", err)
	}
	return op, n, nil
}
