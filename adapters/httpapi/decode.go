package httpapi

import (
	// The standard library's decoder, unlike the rest of the service's
	// JSON (github.com/segmentio/encoding/json): request bodies need its
	// Token and More, and the problems below are written against its errors.
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// DefaultBodyLimit bounds request bodies unless a route sets its own.
const DefaultBodyLimit = 1 << 20

// Decode reads the request body as one JSON value into v, rejecting unknown
// fields, trailing data and bodies over the route's limit, and answers a
// problem naming the field at fault. If v has a Validate() []FieldError
// method, its findings are reported together as one 400.
func Decode(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") && !strings.HasSuffix(strings.SplitN(ct, ";", 2)[0], "+json") {
		return NewProblem(http.StatusUnsupportedMediaType, "unsupported-media-type", "", "send the body as application/json")
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeProblem(err)
	}
	if dec.More() {
		return Invalid(FieldError{Field: "", Reason: "body holds more than one JSON value"})
	}
	if _, err := dec.Token(); err != io.EOF {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge(mbe.Limit)
		}
		return Invalid(FieldError{Field: "", Reason: "unexpected data after the JSON value"})
	}
	if val, ok := v.(interface{ Validate() []FieldError }); ok {
		if errs := val.Validate(); len(errs) > 0 {
			return Invalid(errs...)
		}
	}
	return nil
}

func decodeProblem(err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		mbe *http.MaxBytesError
	)
	switch {
	case errors.As(err, &mbe):
		return tooLarge(mbe.Limit)
	case errors.Is(err, io.EOF):
		return Invalid(FieldError{Field: "", Reason: "request body is empty"})
	case errors.Is(err, io.ErrUnexpectedEOF):
		return Invalid(FieldError{Field: "", Reason: "request body is cut short"})
	case errors.As(err, &syn):
		return Invalid(FieldError{Field: "", Reason: fmt.Sprintf("malformed JSON at byte %d", syn.Offset)})
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "(body)"
		}
		return Invalid(FieldError{Field: field, Reason: "must be " + jsonKind(typ.Type.Kind().String())})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return Invalid(FieldError{Field: name, Reason: "unknown field"})
	}
	var p *Problem
	if errors.As(err, &p) {
		return p
	}
	// A field type's own UnmarshalJSON failed: report its message.
	return Invalid(FieldError{Field: "", Reason: err.Error()})
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "an object"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	}
	return "of another type"
}
