package customer

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on tags.
const (
	// MaxTagLength bounds a tag, in characters.
	MaxTagLength = 50
	// MaxTags bounds how many tags one profile carries.
	MaxTags = 100
)

// TagsChanged records tags added to and removed from the profile. Added
// holds only tags the profile lacked, Removed only tags it had, so the
// event is never empty and replaying a command changes nothing.
type TagsChanged struct {
	Added   []string `json:"added,omitempty"`
	Removed []string `json:"removed,omitempty"`
	Actor   string   `json:"actor"`
}

// NormalizeTag answers a tag in its stored form: trimmed, runs of spaces
// made one, lower-case (tags compare without regard to case). A tag holds
// letters, digits, spaces and - _ . : / & +, starts with a letter or digit,
// and has at most MaxTagLength characters.
func NormalizeTag(s string) (string, error) {
	t := strings.ToLower(strings.Join(strings.Fields(s), " "))
	switch {
	case t == "":
		return "", fmt.Errorf("must not be empty")
	case utf8.RuneCountInString(t) > MaxTagLength:
		return "", fmt.Errorf("must be at most %d characters", MaxTagLength)
	}
	for i, r := range t {
		ok := unicode.IsLetter(r) || unicode.IsDigit(r)
		if !ok && i > 0 {
			ok = r == ' ' || strings.ContainsRune("-_.:/&+", r)
		}
		if !ok {
			return "", fmt.Errorf("%q: must start with a letter or digit and hold only letters, digits, spaces and - _ . : / & +", s)
		}
	}
	return t, nil
}

// normalizeTags normalises a list named field, dropping repeats.
func normalizeTags(field string, in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for i, s := range in {
		t, err := NormalizeTag(s)
		if err != nil {
			return nil, fmt.Errorf("%w: %s[%d]: %v", ErrInvalid, field, i, err)
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

// ChangeTags adds and removes tags. Adding a tag the profile has, or
// removing one it lacks, is no change, so two staff members adding the same
// tag at once record it once. Naming one tag in both lists is invalid.
func (p *Profile) ChangeTags(add, remove []string, actor string) ([]Event, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	a, err := normalizeTags("add", add)
	if err != nil {
		return nil, err
	}
	r, err := normalizeTags("remove", remove)
	if err != nil {
		return nil, err
	}
	for _, t := range a {
		if slices.Contains(r, t) {
			return nil, fmt.Errorf("%w: remove: %q is also in add", ErrInvalid, t)
		}
	}
	return p.tagEvents(a, r, actor)
}

// ReplaceTags makes tags the profile's whole set.
func (p *Profile) ReplaceTags(tags []string, actor string) ([]Event, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	want, err := normalizeTags("tags", tags)
	if err != nil {
		return nil, err
	}
	var remove []string
	for _, t := range p.Tags {
		if !slices.Contains(want, t) {
			remove = append(remove, t)
		}
	}
	return p.tagEvents(want, remove, actor)
}

func (p *Profile) tagEvents(add, remove []string, actor string) ([]Event, error) {
	e := TagsChanged{Actor: actor}
	for _, t := range add {
		if !slices.Contains(p.Tags, t) {
			e.Added = append(e.Added, t)
		}
	}
	for _, t := range remove {
		if slices.Contains(p.Tags, t) {
			e.Removed = append(e.Removed, t)
		}
	}
	if len(e.Added) == 0 && len(e.Removed) == 0 {
		return nil, nil
	}
	if n := len(p.Tags) + len(e.Added) - len(e.Removed); n > MaxTags {
		return nil, fmt.Errorf("%w: tags: a profile carries at most %d tags (this would make %d)", ErrInvalid, MaxTags, n)
	}
	return []Event{{TypeTagsChanged, &e}}, nil
}
