package scoring

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
)

// Day numbers days since 1970-01-01 (UTC).
type Day int32

// DayOf answers the UTC day of t.
func DayOf(t time.Time) Day { return Day(t.UTC().Unix() / 86400) }

// Time answers midnight UTC of d.
func (d Day) Time() time.Time { return time.Unix(int64(d)*86400, 0).UTC() }

// Channel bits: the channels a person engaged through (breadth).
const (
	ChannelGolf     uint16 = 1 << iota // bookings, rounds, competitions
	ChannelEmail                       // opens and clicks
	ChannelInPerson                    // visits and meetings
	ChannelPhone
	ChannelSMS
	ChannelWhatsApp
	ChannelPush
	ChannelSocial
	ChannelVideo
	ChannelOther
)

var channelNames = []string{"GOLF", "EMAIL", "IN_PERSON", "PHONE", "SMS", "WHATSAPP", "PUSH", "SOCIAL", "VIDEO", "OTHER"}

// ChannelBit answers the bit of a channel name ("" and unknown: OTHER).
func ChannelBit(name string) uint16 {
	for i, n := range channelNames {
		if n == name {
			return 1 << i
		}
	}
	return ChannelOther
}

// ChannelNames answers the names of the bits set in mask.
func ChannelNames(mask uint16) []string {
	out := []string{}
	for i, n := range channelNames {
		if mask&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// Counts are what happened on one day.
type Counts struct {
	Day        Day
	Activities uint32 // things the person did (timeline.Counts)
	Opens      uint32 // emails opened
	Clicks     uint32 // links clicked
	Sent       uint32 // messages sent to the person
	Failed     uint32 // failed payments
	SpendCents int64  // payments received, minor units
	Channels   uint16 // channels engaged through
	Complaints uint32 // manual activities marked as complaints; notes are kept apart
	Bookings   uint32 // tee times booked
}

// TierChange is a change of membership tier on a day.
type TierChange struct {
	Day      Day
	From, To string
}

// add adds o's counts to c's.
func (c *Counts) add(o Counts) {
	c.Activities += o.Activities
	c.Opens += o.Opens
	c.Clicks += o.Clicks
	c.Sent += o.Sent
	c.Failed += o.Failed
	c.SpendCents += o.SpendCents
	c.Channels |= o.Channels
	c.Complaints += o.Complaints
	c.Bookings += o.Bookings
}

// Inputs are what the scores are computed from, kept per profile by the
// scores projector: per-day counts over the last Horizon days, the last
// activity, tier changes and complaint notes.
type Inputs struct {
	Days             []Counts // ascending by day, one entry a day
	LastActivity     Day      // 0: none
	HasActivity      bool
	Tier             string
	MembershipStatus string
	Tiers            []TierChange      // ascending by day
	ComplaintNotes   map[uuid.UUID]Day // notes marked as complaints, by the day written
}

// at answers the counts of day d, adding an entry when there is none.
func (in *Inputs) at(d Day) *Counts {
	i, found := slices.BinarySearchFunc(in.Days, d, func(c Counts, d Day) int { return int(c.Day - d) })
	if !found {
		in.Days = slices.Insert(in.Days, i, Counts{Day: d})
	}
	return &in.Days[i]
}

// Activity records something the person did on day d through channel
// (a bit; 0 for none).
func (in *Inputs) Activity(d Day, channel uint16, booking bool) {
	c := in.at(d)
	c.Activities++
	c.Channels |= channel
	if booking {
		c.Bookings++
	}
	if !in.HasActivity || d > in.LastActivity {
		in.LastActivity, in.HasActivity = d, true
	}
}

// Opened, Clicked, Sent, PaymentFailed, Paid and Complaint record the
// other counts of day d.
func (in *Inputs) Opened(d Day)            { in.at(d).Opens++ }
func (in *Inputs) Clicked(d Day)           { in.at(d).Clicks++ }
func (in *Inputs) Sent(d Day)              { in.at(d).Sent++ }
func (in *Inputs) PaymentFailed(d Day)     { in.at(d).Failed++ }
func (in *Inputs) Paid(d Day, cents int64) { in.at(d).SpendCents += cents }
func (in *Inputs) Complaint(d Day)         { in.at(d).Complaints++ }

// SetTier records the membership tier from d on; a change of a known tier
// is kept as a TierChange.
func (in *Inputs) SetTier(d Day, tier string) {
	if tier == "" || tier == in.Tier {
		return
	}
	if in.Tier != "" {
		i, _ := slices.BinarySearchFunc(in.Tiers, d, func(t TierChange, d Day) int { return int(t.Day - d) })
		for i < len(in.Tiers) && in.Tiers[i].Day == d {
			i++
		}
		in.Tiers = slices.Insert(in.Tiers, i, TierChange{Day: d, From: in.Tier, To: tier})
	}
	in.Tier = tier
}

// ComplaintNote marks note id, written on day d, as a complaint, or
// unmarks it.
func (in *Inputs) ComplaintNote(id uuid.UUID, d Day, on bool) {
	if !on {
		delete(in.ComplaintNotes, id)
		return
	}
	if in.ComplaintNotes == nil {
		in.ComplaintNotes = map[uuid.UUID]Day{}
	}
	if _, ok := in.ComplaintNotes[id]; !ok {
		in.ComplaintNotes[id] = d
	}
}

// Absorb adds another profile's inputs (a merge): the survivor keeps its
// own tier and status.
func (in *Inputs) Absorb(o Inputs) {
	for _, c := range o.Days {
		in.at(c.Day).add(c)
	}
	if o.HasActivity && (!in.HasActivity || o.LastActivity > in.LastActivity) {
		in.LastActivity, in.HasActivity = o.LastActivity, true
	}
	if in.Tier == "" {
		in.Tier = o.Tier
	}
	if in.MembershipStatus == "" {
		in.MembershipStatus = o.MembershipStatus
	}
	in.Tiers = append(in.Tiers, o.Tiers...)
	slices.SortStableFunc(in.Tiers, func(a, b TierChange) int { return int(a.Day - b.Day) })
	for id, d := range o.ComplaintNotes {
		in.ComplaintNote(id, d, true)
	}
}

// Prune drops what lies more than Horizon days before today: no window
// reaches it.
func (in *Inputs) Prune(today Day) {
	from := today - Horizon
	i := 0
	for i < len(in.Days) && in.Days[i].Day <= from {
		i++
	}
	in.Days = in.Days[i:]
	j := 0
	for j < len(in.Tiers) && in.Tiers[j].Day <= from {
		j++
	}
	in.Tiers = in.Tiers[j:]
	for id, d := range in.ComplaintNotes {
		if d <= from {
			delete(in.ComplaintNotes, id)
		}
	}
}

// Empty reports whether nothing is known that could score.
func (in *Inputs) Empty() bool {
	return len(in.Days) == 0 && !in.HasActivity && len(in.Tiers) == 0 && len(in.ComplaintNotes) == 0 && in.MembershipStatus == ""
}

// The encoding of Inputs is binary, versioned by its first byte: the
// scores projector reads and writes it for every profile an event touches,
// and JSON would cost most of its time.
const encodingVersion = 1

// Encode answers in's binary form.
func (in *Inputs) Encode() []byte {
	b := make([]byte, 0, 16+len(in.Days)*12)
	b = append(b, encodingVersion)
	var last int64 = -1
	if in.HasActivity {
		last = int64(in.LastActivity)
	}
	b = binary.AppendVarint(b, last)
	b = appendString(b, in.Tier)
	b = appendString(b, in.MembershipStatus)
	b = binary.AppendUvarint(b, uint64(len(in.Days)))
	prev := Day(0)
	for _, c := range in.Days {
		b = binary.AppendVarint(b, int64(c.Day-prev))
		prev = c.Day
		b = binary.AppendUvarint(b, uint64(c.Activities))
		b = binary.AppendUvarint(b, uint64(c.Opens))
		b = binary.AppendUvarint(b, uint64(c.Clicks))
		b = binary.AppendUvarint(b, uint64(c.Sent))
		b = binary.AppendUvarint(b, uint64(c.Failed))
		b = binary.AppendUvarint(b, uint64(c.Complaints))
		b = binary.AppendUvarint(b, uint64(c.Bookings))
		b = binary.AppendVarint(b, c.SpendCents)
		b = binary.AppendUvarint(b, uint64(c.Channels))
	}
	b = binary.AppendUvarint(b, uint64(len(in.Tiers)))
	for _, t := range in.Tiers {
		b = binary.AppendVarint(b, int64(t.Day))
		b = appendString(b, t.From)
		b = appendString(b, t.To)
	}
	ids := make([]uuid.UUID, 0, len(in.ComplaintNotes))
	for id := range in.ComplaintNotes {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		b = append(b, id[:]...)
		b = binary.AppendVarint(b, int64(in.ComplaintNotes[id]))
	}
	return b
}

// ErrCorrupt reports inputs that do not decode.
var ErrCorrupt = errors.New("scoring inputs: corrupt encoding")

// Decode reads inputs Encode wrote.
func Decode(b []byte) (Inputs, error) {
	var in Inputs
	if len(b) == 0 {
		return in, nil
	}
	if b[0] != encodingVersion {
		return in, fmt.Errorf("%w: version %d", ErrCorrupt, b[0])
	}
	r := reader{b: b[1:]}
	if last := r.varint(); last >= 0 {
		in.LastActivity, in.HasActivity = Day(last), true
	}
	in.Tier = r.string()
	in.MembershipStatus = r.string()
	n := r.uvarint()
	if n > Horizon*4 {
		return Inputs{}, ErrCorrupt
	}
	in.Days = make([]Counts, n)
	prev := Day(0)
	for i := range in.Days {
		c := &in.Days[i]
		prev += Day(r.varint())
		c.Day = prev
		c.Activities, c.Opens, c.Clicks = uint32(r.uvarint()), uint32(r.uvarint()), uint32(r.uvarint())
		c.Sent, c.Failed, c.Complaints, c.Bookings = uint32(r.uvarint()), uint32(r.uvarint()), uint32(r.uvarint()), uint32(r.uvarint())
		c.SpendCents = r.varint()
		c.Channels = uint16(r.uvarint())
	}
	nt := r.uvarint()
	if nt > 1<<16 {
		return Inputs{}, ErrCorrupt
	}
	for range nt {
		t := TierChange{Day: Day(r.varint())}
		t.From, t.To = r.string(), r.string()
		in.Tiers = append(in.Tiers, t)
	}
	nc := r.uvarint()
	if nc > 1<<16 {
		return Inputs{}, ErrCorrupt
	}
	for range nc {
		var id uuid.UUID
		copy(id[:], r.bytes(16))
		in.ComplaintNote(id, Day(r.varint()), true)
	}
	if r.err {
		return Inputs{}, ErrCorrupt
	}
	return in, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

type reader struct {
	b   []byte
	err bool
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes(n int) []byte {
	if len(r.b) < n {
		r.err, r.b = true, nil
		return make([]byte, n)
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) string() string {
	n := r.uvarint()
	if n > 1<<12 {
		r.err = true
		return ""
	}
	return string(r.bytes(int(n)))
}
