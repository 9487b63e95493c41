package orders

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/waybill/waybill/internal/dbsqlc"
)

var (
	// ErrNotFound: no order has that external_id.
	ErrNotFound = errors.New("order not found")
	// ErrConflict: an order with that external_id exists with different content.
	ErrConflict = errors.New("an order with this external_id exists with different content")
)

// Problem is one reason an order cannot be accepted.
type Problem struct {
	Field   string `json:"field"`
	Problem string `json:"problem"`
}

// ValidationError lists every problem the database found with an order (see
// waybill.orders_validate): the same rules whether the order came by SQL or HTTP.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Field + ": " + p.Problem
	}
	return "invalid order: " + strings.Join(parts, "; ")
}

// NewOrder is an order as a producer submits it.
type NewOrder struct {
	ExternalID string
	Carrier    string
	Kind       Kind // empty means delivery
	Payload    json.RawMessage
}

// Store reads and writes orders.
type Store struct {
	pool    *pgxpool.Pool
	queries *dbsqlc.Queries
}

func NewStore(pool *pgxpool.Pool) *Store {
	return &Store{pool: pool, queries: dbsqlc.New()}
}

// Create inserts the order, which enqueues its dispatch job in the same transaction. Submitting
// the same order again returns the stored one with created=false; the same external_id with other
// content is ErrConflict; an order that could never be dispatched is a *ValidationError.
func (s *Store) Create(ctx context.Context, n NewOrder) (order Order, created bool, err error) {
	if n.Kind == "" {
		n.Kind = KindDelivery
	}
	row, err := s.queries.OrderInsert(ctx, s.pool, dbsqlc.OrderInsertParams{
		ExternalID: n.ExternalID,
		Carrier:    n.Carrier,
		Kind:       string(n.Kind),
		Payload:    n.Payload,
	})
	switch {
	case err == nil:
		return fromRow(row), true, nil
	case errors.Is(err, pgx.ErrNoRows): // ON CONFLICT: it exists
	default:
		if verr := validationError(err); verr != nil {
			return Order{}, false, verr
		}
		return Order{}, false, fmt.Errorf("insert order %s: %w", n.ExternalID, err)
	}

	existing, err := s.GetByExternalID(ctx, n.ExternalID)
	if err != nil {
		return Order{}, false, err
	}
	if existing.Carrier != n.Carrier || existing.Kind != n.Kind {
		return existing, false, ErrConflict
	}
	// Compared by Postgres as jsonb, which is how the payload is stored: exact for any number,
	// where Go's float64 would refuse 1e400 and confuse integers beyond 2^53.
	same, err := s.queries.OrderPayloadEquals(ctx, s.pool, dbsqlc.OrderPayloadEqualsParams{
		ExternalID: n.ExternalID, Payload: n.Payload,
	})
	if err != nil {
		return Order{}, false, fmt.Errorf("compare order %s: %w", n.ExternalID, err)
	}
	if !same {
		return existing, false, ErrConflict
	}
	return existing, false, nil
}

// GetByExternalID returns the order or ErrNotFound.
func (s *Store) GetByExternalID(ctx context.Context, externalID string) (Order, error) {
	row, err := s.queries.OrderGetByExternalID(ctx, s.pool, externalID)
	if errors.Is(err, pgx.ErrNoRows) {
		return Order{}, ErrNotFound
	}
	if err != nil {
		return Order{}, fmt.Errorf("get order %s: %w", externalID, err)
	}
	return fromRow(row), nil
}

func fromRow(r dbsqlc.WaybillOrder) Order {
	return Order{
		ID:           r.ID,
		ExternalID:   r.ExternalID,
		Carrier:      r.Carrier,
		Kind:         Kind(r.Kind),
		Payload:      r.Payload,
		Status:       Status(r.Status),
		StatusAt:     r.StatusAt,
		StatusReason: deref(r.StatusReason),
		CarrierRef:   deref(r.CarrierRef),
		TrackingURL:  deref(r.TrackingUrl),
		CreatedAt:    r.CreatedAt,
		UpdatedAt:    r.UpdatedAt,
		DispatchedAt: r.DispatchedAt,
	}
}

// validationError turns the database's refusal of an order into field problems, or nil when
// err is something else.
func validationError(err error) *ValidationError {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return nil
	}
	switch {
	case pgErr.Code == "23514" && pgErr.ConstraintName == "orders_valid":
		var raw []string
		if json.Unmarshal([]byte(pgErr.Detail), &raw) != nil {
			return &ValidationError{Problems: []Problem{{Field: "order", Problem: pgErr.Message}}}
		}
		v := &ValidationError{}
		for _, s := range raw {
			field, problem, _ := strings.Cut(s, ": ")
			v.Problems = append(v.Problems, Problem{Field: field, Problem: problem})
		}
		return v
	case pgErr.Code == "23514" && pgErr.ConstraintName == "orders_external_id_format":
		return &ValidationError{Problems: []Problem{{Field: "external_id", Problem: "1 to 200 characters, not starting or ending with white space"}}}
	case pgErr.Code == "22P02" || pgErr.Code == "22007" || pgErr.Code == "22008":
		// Malformed JSON or an impossible date in the payload.
		return &ValidationError{Problems: []Problem{{Field: "payload", Problem: pgErr.Message}}}
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
