package httpapi

import (
	"encoding/base64"
	"net/http"
	"strconv"

	"github.com/segmentio/encoding/json"
)

// Paging limits.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// List is the shape of every list response.
type List[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"nextCursor"`
}

// Page is a parsed ?limit=&cursor= pair.
type Page struct {
	Limit  int
	Cursor string // opaque; decode with DecodeCursor
}

// ParsePage reads limit and cursor from the query string.
func ParsePage(r *http.Request) (Page, error) {
	p := Page{Limit: DefaultLimit, Cursor: r.URL.Query().Get("cursor")}
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return p, Invalid(FieldError{Field: "limit", Reason: "must be a whole number from 1 to " + strconv.Itoa(MaxLimit)})
		}
		p.Limit = n
	}
	return p, nil
}

// EncodeCursor turns a position in a list (any JSON-encodable keyset) into
// an opaque cursor.
func EncodeCursor(v any) *string {
	b, err := json.Marshal(v)
	if err != nil {
		panic("httpapi: cursor: " + err.Error())
	}
	s := base64.RawURLEncoding.EncodeToString(b)
	return &s
}

// DecodeCursor reads a cursor made by EncodeCursor into v.
func DecodeCursor(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		return Invalid(FieldError{Field: "cursor", Reason: "is not a cursor this list issued"})
	}
	return nil
}

// NewList answers a list of items, with a next cursor when more may follow.
// Callers fetch limit+1 rows: when the extra one arrives, cursorOf (the
// keyset of the last item kept) becomes the next cursor.
func NewList[T any](rows []T, limit int, cursorOf func(last T) any) List[T] {
	l := List[T]{Items: rows}
	if len(rows) > limit {
		l.Items = rows[:limit]
		l.NextCursor = EncodeCursor(cursorOf(l.Items[limit-1]))
	}
	if l.Items == nil {
		l.Items = []T{}
	}
	return l
}
