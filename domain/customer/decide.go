package customer

import (
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/encoding/json"

	"github.com/clubcrm/crm/domain/identity"
)

// Ingestion is an upstream event to record on the person it concerns,
// with the identity decision already taken for it.
type Ingestion struct {
	Upstream  Upstream
	Data      json.RawMessage
	Person    Person
	Extracted identity.Extracted
	Decision  identity.Decision
}

// Ingest records an upstream event on the profile, opening the profile when
// it does not exist yet and linking the keys the decision names.
func (p *Profile) Ingest(in Ingestion) ([]Event, error) {
	if p.Status == StatusMerged {
		return nil, fmt.Errorf("%w: %s is merged into %s", ErrMerged, p.ID, p.MergedInto)
	}
	links := p.newLinks(in.Extracted, in.Decision, in.Upstream.ID, in.Upstream.OccurredAt)
	var out []Event
	if !p.Exists() {
		out = append(out, Event{TypeCreated, &Created{
			CustomerID:     p.ID,
			TenantID:       p.TenantID,
			Source:         in.Upstream.Source,
			CausedBy:       in.Upstream.ID,
			FirstName:      in.Person.FirstName,
			LastName:       in.Person.LastName,
			LifecycleStage: initialStage(in),
			Links:          links,
		}})
	} else if len(links) > 0 {
		out = append(out, Event{TypeIdentityLinked, &IdentityLinked{Links: links}})
	}
	if c := p.newConflicts(in.Decision.Conflicts); len(c) > 0 {
		out = append(out, Event{TypeDuplicateFlagged, &DuplicateFlagged{Candidates: c, CausedBy: in.Upstream.ID}})
	}
	out = append(out, Event{in.Upstream.Type, &Recorded{Upstream: in.Upstream, Data: in.Data}})
	return out, nil
}

// newLinks answers the keys to add: those the decision links, and the
// identifiers set aside as unusable (kept as given, never matched).
func (p *Profile) newLinks(x identity.Extracted, d identity.Decision, causedBy string, at time.Time) []Link {
	var out []Link
	confidence := d.Confidence
	if d.New() {
		confidence = identity.ConfidenceExact // a new profile owns its keys outright
	}
	for _, k := range append(append([]identity.Key(nil), d.Link...), d.Held...) {
		if !p.Holds(k) {
			out = append(out, Link{Key: k, Indexed: true, MatchedBy: d.MatchedBy, Confidence: confidence, CausedBy: causedBy, LinkedAt: at})
		}
	}
	for _, ig := range x.Ignored {
		if !p.Holds(ig.Key) && !slices.ContainsFunc(out, func(l Link) bool { return l.Key == ig.Key }) {
			out = append(out, Link{Key: ig.Key, Indexed: false, Reason: ig.Reason, MatchedBy: d.MatchedBy, CausedBy: causedBy, LinkedAt: at})
		}
	}
	return out
}

func (p *Profile) newConflicts(cs []identity.Conflict) []identity.Conflict {
	var out []identity.Conflict
	for _, c := range cs {
		if c.Other != p.ID {
			out = append(out, c)
		}
	}
	return out
}

func initialStage(in Ingestion) Lifecycle {
	switch in.Upstream.Source {
	case "scl":
		if m, ok := parsed(in).(*Member); ok && m.MembershipStatus != "" {
			return StageForMembership(m.MembershipStatus, LifecycleMember)
		}
		return LifecycleMember
	case "teetime":
		return LifecycleGuest
	}
	return LifecycleProspect
}

func parsed(in Ingestion) any {
	v, _ := ParseUpstream(in.Upstream.Type, in.Data)
	return v
}

// Registration is a profile staff enter by hand.
type Registration struct {
	FirstName, LastName, DisplayName string
	ExternalIDs                      ExternalIDs
	Extracted                        identity.Extracted
	Decision                         identity.Decision
	Actor                            string
	CommandID                        string
	At                               time.Time
}

// Register opens a profile entered by staff.
func (p *Profile) Register(r Registration) ([]Event, error) {
	if p.Exists() {
		return nil, fmt.Errorf("%w: profile %s exists", ErrInvalid, p.ID)
	}
	out := []Event{{TypeCreated, &Created{
		CustomerID:     p.ID,
		TenantID:       p.TenantID,
		Source:         "crm",
		CausedBy:       r.CommandID,
		FirstName:      r.FirstName,
		LastName:       r.LastName,
		DisplayName:    r.DisplayName,
		LifecycleStage: LifecycleProspect,
		ExternalIDs:    r.ExternalIDs,
		Links:          p.newLinks(r.Extracted, r.Decision, r.CommandID, r.At),
	}}}
	if c := p.newConflicts(r.Decision.Conflicts); len(c) > 0 {
		out = append(out, Event{TypeDuplicateFlagged, &DuplicateFlagged{Candidates: c, CausedBy: r.CommandID}})
	}
	return out, nil
}

// Edit changes CRM-owned fields; fields left nil stay as they are. It
// answers no events when nothing would change.
func (p *Profile) Edit(e Edited) ([]Event, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	if e.Status != nil && *e.Status != StatusActive && *e.Status != StatusArchived {
		return nil, fmt.Errorf("%w: status: must be ACTIVE or ARCHIVED (merging sets MERGED)", ErrInvalid)
	}
	if e.LifecycleStage != nil && !slices.Contains(Lifecycles, *e.LifecycleStage) {
		return nil, fmt.Errorf("%w: lifecycleStage: must be one of %v", ErrInvalid, Lifecycles)
	}
	if e.DisplayName != nil && *e.DisplayName == p.DisplayName {
		e.DisplayName = nil
	}
	if e.LifecycleStage != nil && *e.LifecycleStage == p.LifecycleStage && p.LifecycleByStaff {
		e.LifecycleStage = nil
	}
	if e.Status != nil && *e.Status == p.Status {
		e.Status = nil
	}
	if e.ExternalIDs != nil && mergeExternal(p.ExternalIDs, *e.ExternalIDs) == p.ExternalIDs {
		e.ExternalIDs = nil
	}
	if e.DisplayName == nil && e.LifecycleStage == nil && e.Status == nil && e.ExternalIDs == nil {
		return nil, nil
	}
	return []Event{{TypeEdited, &e}}, nil
}

// Merge absorbs source into p. It answers the survivor's events and the
// source's. The source's full state travels in the survivor's event, so the
// merge can be reversed later without loss.
func (p *Profile) Merge(source *Profile, actor, causedBy string) (survivor, closed []Event, err error) {
	if source.ID == p.ID {
		return nil, nil, ErrSelfMerge
	}
	if err := p.checkOpen(); err != nil {
		return nil, nil, err
	}
	if err := source.checkOpen(); err != nil {
		return nil, nil, err
	}
	if source.TenantID != p.TenantID {
		return nil, nil, fmt.Errorf("%w: %s", ErrNotFound, source.ID)
	}
	snapshot, err := json.Marshal(source)
	if err != nil {
		return nil, nil, fmt.Errorf("snapshot %s: %w", source.ID, err)
	}
	var moved []Link
	for _, l := range source.Links {
		if !p.Holds(l.Key) {
			l.MatchedBy, l.CausedBy = "merge", causedBy
			moved = append(moved, l)
		}
	}
	survivor = []Event{{TypeMerged, &Merged{SourceID: source.ID, Source: snapshot, Links: moved, Tags: source.Tags, Actor: actor, CausedBy: causedBy}}}
	closed = []Event{{TypeMergedInto, &MergedInto{SurvivorID: p.ID, Actor: actor, CausedBy: causedBy}}}
	return survivor, closed, nil
}

// ClearDuplicate records staff deciding a flagged pair.
func (p *Profile) ClearDuplicate(other uuid.UUID, action, actor string) ([]Event, error) {
	if !p.Exists() {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, p.ID)
	}
	return []Event{{TypeDuplicateCleared, &DuplicateCleared{Other: other, Action: action, Actor: actor}}}, nil
}
