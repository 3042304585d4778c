package httpapi

import (
	"net/http"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/encoding/json"
)

// Title and Version head the OpenAPI document.
var (
	Title      = "Club CRM & Marketing API"
	APIVersion = "1.0.0"
)

var pathParam = regexp.MustCompile(`\{([^}:]+)(:[^}]*)?\}`)

// OpenAPI answers an OpenAPI 3.1 document of every registered route.
func (a *API) OpenAPI() map[string]any {
	s := newSchemas()
	problem := s.ref(reflect.TypeOf(Problem{}))
	paths := map[string]map[string]any{}
	for _, rt := range a.routes {
		path := pathParam.ReplaceAllString(FullPath(rt), "{$1}")
		op := map[string]any{
			"summary":     rt.Summary,
			"operationId": operationID(rt.Method, path),
		}
		if len(rt.Tags) > 0 {
			op["tags"] = rt.Tags
		}
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(FullPath(rt), -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		for _, q := range rt.Query {
			typ := q.Type
			if typ == "" {
				typ = "string"
			}
			var schema map[string]any = map[string]any{"type": typ}
			if q.Repeated {
				schema = map[string]any{"type": "array", "items": map[string]any{"type": typ}}
			}
			params = append(params, map[string]any{"name": q.Name, "in": "query", "required": q.Required, "description": q.Description, "schema": schema, "explode": true})
		}
		if rt.Idempotent {
			params = append(params, map[string]any{"name": "Idempotency-Key", "in": "header", "required": false,
				"description": "Retrying with the same key and body answers the first response again.", "schema": map[string]any{"type": "string", "maxLength": 128}})
		}
		if params != nil {
			op["parameters"] = params
		}
		if rt.Request != nil {
			op["requestBody"] = map[string]any{
				"required": true,
				"content":  map[string]any{"application/json": map[string]any{"schema": s.ref(reflect.TypeOf(rt.Request))}},
			}
		}
		ok := map[string]any{"description": http.StatusText(rt.Status)}
		if rt.Response != nil {
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": s.ref(reflect.TypeOf(rt.Response))}}
		}
		responses := map[string]any{strconv.Itoa(rt.Status): ok}
		errs := append([]int{http.StatusBadRequest, http.StatusInternalServerError}, rt.Errors...)
		if !rt.Public {
			errs = append(errs, http.StatusUnauthorized, http.StatusForbidden)
		}
		for _, code := range errs {
			responses[strconv.Itoa(code)] = map[string]any{
				"description": http.StatusText(code),
				"content":     map[string]any{"application/problem+json": map[string]any{"schema": problem}},
			}
		}
		op["responses"] = responses
		if rt.Public {
			op["security"] = []any{}
		} else if rt.Role != "" {
			op["x-required-role"] = rt.Role
			op["description"] = "Requires the role " + rt.Role + "."
		}
		if paths[path] == nil {
			paths[path] = map[string]any{}
		}
		paths[path][strings.ToLower(rt.Method)] = op
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info":    map[string]any{"title": Title, "version": APIVersion},
		"paths":   paths,
		"components": map[string]any{
			"schemas": s.defs,
			"securitySchemes": map[string]any{
				"bearer": map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
			},
		},
		"security": []any{map[string]any{"bearer": []any{}}},
	}
}

func operationID(method, path string) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(method))
	for _, part := range strings.FieldsFunc(path, func(r rune) bool { return r == '/' || r == '{' || r == '}' || r == '-' || r == '.' }) {
		if part == "api" || part == "v1" {
			continue
		}
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}

// schemas turns Go types into JSON Schema (the 2020-12 dialect OpenAPI 3.1
// uses), naming struct types as components.
type schemas struct {
	defs map[string]any
}

func newSchemas() *schemas { return &schemas{defs: map[string]any{}} }

var (
	timeType = reflect.TypeOf(time.Time{})
	uuidType = reflect.TypeOf(uuid.UUID{})
	rawType  = reflect.TypeOf(json.RawMessage{})
	durType  = reflect.TypeOf(time.Duration(0))
)

func (s *schemas) ref(t reflect.Type) map[string]any {
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t == uuidType:
		return map[string]any{"type": "string", "format": "uuid"}
	case t == rawType:
		return map[string]any{}
	case t == durType:
		return map[string]any{"type": "integer", "description": "nanoseconds"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		inner := s.ref(t.Elem())
		return map[string]any{"anyOf": []any{inner, map[string]any{"type": "null"}}}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "contentEncoding": "base64"}
		}
		return map[string]any{"type": "array", "items": s.ref(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": s.ref(t.Elem())}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Struct:
		name := schemaName(t)
		if _, done := s.defs[name]; !done {
			s.defs[name] = map[string]any{} // placeholder: breaks cycles
			s.defs[name] = s.object(t)
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	return map[string]any{}
}

func schemaName(t reflect.Type) string {
	name := t.Name()
	if i := strings.IndexByte(name, '['); i >= 0 { // generic instance: List[pkg.T]
		args := pathParam.ReplaceAllString(name[i+1:len(name)-1], "")
		if j := strings.LastIndexByte(args, '.'); j >= 0 {
			args = args[j+1:]
		}
		name = name[:i] + "Of" + args
	}
	if name == "" {
		name = "Anonymous"
	}
	return name
}

// object describes a struct's JSON form: fields by their json names,
// omitempty fields optional, `doc:"..."` tags as descriptions and
// `enum:"A,B"` tags as enums.
func (s *schemas) object(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
				walk(f.Type)
				continue
			}
			if name == "" {
				name = f.Name
			}
			p := s.ref(f.Type)
			if d := f.Tag.Get("doc"); d != "" || f.Tag.Get("enum") != "" {
				p = copyMap(p)
				if d != "" {
					p["description"] = d
				}
				if e := f.Tag.Get("enum"); e != "" {
					p["enum"] = strings.Split(e, ",")
				}
			}
			props[name] = p
			if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") && f.Type.Kind() != reflect.Pointer {
				required = append(required, name)
			}
		}
	}
	walk(t)
	sort.Strings(required)
	out := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		out["required"] = required
	}
	return out
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m)+2)
	for k, v := range m {
		out[k] = v
	}
	return out
}
