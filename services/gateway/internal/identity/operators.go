package identity

import (
	"context"
	"fmt"
)

// OperatorAdmin grants and revokes platform operator rights. Only a command run on the
// server uses it: no API operation makes an operator.
type OperatorAdmin struct {
	store Store
}

// NewOperatorAdmin returns an OperatorAdmin on store.
func NewOperatorAdmin(store Store) *OperatorAdmin { return &OperatorAdmin{store: store} }

// GrantOperator makes the user with email a platform operator. grantedBy names who ran the
// command.
func (s *OperatorAdmin) GrantOperator(ctx context.Context, email, grantedBy string) (Operator, error) {
	e, err := normalizeEmail("email", email)
	if err != nil {
		return Operator{}, err
	}
	if grantedBy == "" {
		return Operator{}, invalid("granted_by", "is required")
	}
	op, err := s.store.GrantOperator(ctx, e, grantedBy)
	if err != nil {
		return Operator{}, fmt.Errorf("grant operator: %w", err)
	}
	return op, nil
}

// RevokeOperator takes platform operator rights from the user with email.
func (s *OperatorAdmin) RevokeOperator(ctx context.Context, email string) error {
	e, err := normalizeEmail("email", email)
	if err != nil {
		return err
	}
	if err := s.store.RevokeOperator(ctx, e); err != nil {
		return fmt.Errorf("revoke operator: %w", err)
	}
	return nil
}

// Operators lists the platform operators.
func (s *OperatorAdmin) Operators(ctx context.Context) ([]Operator, error) {
	ops, err := s.store.Operators(ctx)
	if err != nil {
		return nil, fmt.Errorf("list operators: %w", err)
	}
	return ops, nil
}
