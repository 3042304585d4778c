// Package population generates a deterministic club population and two
// years of its upstream history, as SCL, TeeTime and Messaging would
// publish it (docs/events.md), for the benchmark harness.
//
// People are spread over clubs (tenants). Each is an SCL member, a TeeTime
// player, a Messaging contact or several of these, and the services know
// them the way real ones do: the same address in different case, the same
// mobile in national and international form, a household sharing one
// number, a contact known under a second address. The history opens with
// the identity events of the people who are already the clubs' (the
// upstream services publishing what they hold), then people keep joining
// while the others book tee times and play them, pay, receive messages,
// open and click them, and change handicap and tier.
//
// The same Config always yields the same people and the same events in the
// same order, so figures of two runs (or two commits) are comparable.
package population

import (
	"container/heap"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Start is when the history begins; it spans Days days from there.
var Start = time.Date(2024, 12, 1, 0, 0, 0, 0, time.UTC)

// Defaults of Config.
const (
	DefaultDays          = 730
	DefaultPeoplePerClub = 5000
	DefaultSeed          = 20261122
)

// Upstream stream names.
const (
	StreamSCL       = "scl.events"
	StreamTeeTime   = "teetime.events"
	StreamMessaging = "messaging.events"
)

// Streams lists the upstream streams, indexed by Event.Stream.
var Streams = []string{StreamSCL, StreamTeeTime, StreamMessaging}

// Config sizes a population.
type Config struct {
	People        int
	Events        int // upstream events of the whole history
	Seed          uint64
	Days          int
	PeoplePerClub int
}

func (c *Config) defaults() {
	if c.Seed == 0 {
		c.Seed = DefaultSeed
	}
	if c.Days <= 0 {
		c.Days = DefaultDays
	}
	if c.PeoplePerClub <= 0 {
		c.PeoplePerClub = DefaultPeoplePerClub
	}
}

// Person is someone the upstream services know. Identifiers are derived
// from Index, so a Person stays small: a million of them fit in tens of
// megabytes.
type Person struct {
	Index    int32
	Club     int32
	MemberID int64 // SCL member id; 0 when not a member
	Player   bool  // a TeeTime player
	Contact  bool  // a Messaging contact
	AuthUser bool  // has an identity-provider account
	HasEmail bool
	AltEmail bool // Messaging knows them under a second address
	First    uint16
	Last     uint16
	Domain   uint8
	Phone    int32 // index into the phone space; -1 for none
	Tier     uint8
	Status   uint8
	Handicap int16 // tenths
	Join     int32 // minutes after Start
	Seen     bool  // an event of theirs has been generated
	// Keenness weighs how much of the activity is theirs: log-normal,
	// so most people do a little and a few keen golfers a lot (the
	// keenest hundredth about nine times the mean).
	Keenness float32
}

// Tenant answers the person's club as a tenant id.
func (p *Person) Tenant() string { return ClubTenant(int(p.Club)) }

// ClubTenant answers the tenant id of club n.
func ClubTenant(n int) string { return fmt.Sprintf("club-%04d", n) }

// Email answers the person's address as the CRM normalises it, "" when
// they have none.
func (p *Person) Email() string {
	if !p.HasEmail {
		return ""
	}
	return strings.ToLower(p.email())
}

// SCLEmail answers the address as SCL writes it (the case people typed),
// "" when they have none.
func (p *Person) SCLEmail() string {
	if !p.HasEmail {
		return ""
	}
	return p.email()
}

// email answers the address in the case SCL writes it.
func (p *Person) email() string {
	return firstNames[p.First] + "." + mailName(lastNames[p.Last]) + strconv.Itoa(int(p.Index)) + "@" + domains[p.Domain]
}

// mailName drops what an address cannot hold: "De Beer" → "DeBeer".
func mailName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\'' {
			return -1
		}
		return r
	}, s)
}

// PlayerID answers the TeeTime player id.
func (p *Person) PlayerID() string { return "TT" + strconv.Itoa(int(p.Index)) }

// ContactID answers the Messaging contact id.
func (p *Person) ContactID() string { return "MSG-" + strconv.Itoa(int(p.Index)) }

// AuthUserID answers the identity-provider user id.
func (p *Person) AuthUserID() string { return "idp|" + strconv.Itoa(int(p.Index)) }

// PhoneE164 answers the mobile in E.164, "" when they have none.
func (p *Person) PhoneE164() string {
	if p.Phone < 0 {
		return ""
	}
	pre, rest := phoneParts(p.Phone)
	return "+27" + pre + rest
}

// phoneNational writes the mobile as SCL's staff type it: "082 555 1234".
func (p *Person) phoneNational() string {
	pre, rest := phoneParts(p.Phone)
	return "0" + pre + " " + rest[:3] + " " + rest[3:]
}

// phoneSpaced writes the mobile as Messaging stores it: "+27 82 555 1234".
func (p *Person) phoneSpaced() string {
	pre, rest := phoneParts(p.Phone)
	return "+27 " + pre + " " + rest[:3] + " " + rest[3:]
}

// mobilePrefixes are South African mobile ranges phonenumbers accepts.
var mobilePrefixes = []string{"82", "83", "84", "72", "73", "74", "76", "79", "71", "81"}

// phoneParts spreads n over the prefixes; 7919 is prime to 10^7, so every
// n below 10^8 gets a number of its own.
func phoneParts(n int32) (string, string) {
	pre := mobilePrefixes[(int(n)/10_000_000)%len(mobilePrefixes)]
	rest := (int64(n)%10_000_000)*7919%10_000_000 + 0
	s := strconv.FormatInt(rest, 10)
	s = strings.Repeat("0", 7-len(s)) + s
	// Numbers of one repeated digit or an ascending run are placeholders
	// the CRM never matches on; nudge them off.
	if placeholder(s) {
		s = s[:6] + string('0'+(s[6]-'0'+5)%10)
	}
	return pre, s
}

func placeholder(d string) bool {
	same, asc := true, true
	for i := 1; i < len(d); i++ {
		same = same && d[i] == d[0]
		asc = asc && d[i] == d[i-1]+1
	}
	return same || asc
}

// Tiers and statuses as SCL names them.
var (
	Tiers    = []string{"Bronze", "Silver", "Gold", "Platinum"}
	Statuses = []string{"ACTIVE", "SUSPENDED", "LAPSED", "CANCELLED"}
)

var tierWeights = []int{30, 30, 25, 15}
var statusWeights = []int{85, 5, 5, 5}

// Event is one upstream envelope.
type Event struct {
	Stream     int // index into Streams
	ID         string
	Type       string
	Source     string
	Tenant     string
	OccurredAt time.Time
	Data       []byte // the envelope's data object
	Person     int32  // the person it concerns
}

// Payload answers the envelope as JSON, as the services XADD it.
func (e *Event) Payload() []byte {
	b := make([]byte, 0, len(e.Data)+160)
	b = append(b, `{"id":`...)
	b = appendString(b, e.ID)
	b = append(b, `,"type":`...)
	b = appendString(b, e.Type)
	b = append(b, `,"source":`...)
	b = appendString(b, e.Source)
	b = append(b, `,"tenantId":`...)
	b = appendString(b, e.Tenant)
	b = append(b, `,"occurredAt":"`...)
	b = e.OccurredAt.AppendFormat(b, time.RFC3339)
	b = append(b, `","data":`...)
	b = append(b, e.Data...)
	return append(b, '}')
}

// Population is the people of a Config and the generator of their history.
type Population struct {
	Config Config
	People []Person
	Clubs  int

	rng     *rand.Rand
	order   []int32   // people by join time
	keen    []float64 // running sums of Keenness along order
	joined  int       // people of order whose join time has passed
	ids     [3]int    // per stream: the next envelope number
	pending pendingHeap
	emitted int
	hour    int
	hours   int
	rate    float64 // activity roots per joined person per hour
	acc     float64
	seq     uint64  // orders steps due at the same minute
	buf     []Event // events of the current hour, in time order
	next    int     // next of buf to hand out
	// PerType counts the events handed out, by type.
	PerType map[string]int
}

// New answers the population of cfg, ready to generate its history.
func New(cfg Config) *Population {
	cfg.defaults()
	p := &Population{Config: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x636c7562)), PerType: map[string]int{}}
	p.Clubs = max(1, (cfg.People+cfg.PeoplePerClub-1)/cfg.PeoplePerClub)
	p.hours = cfg.Days * 24
	p.makePeople()
	p.calibrate()
	return p
}

func pick(r *rand.Rand, weights []int) int {
	total := 0
	for _, w := range weights {
		total += w
	}
	n := r.IntN(total)
	for i, w := range weights {
		if n < w {
			return i
		}
		n -= w
	}
	return len(weights) - 1
}

func (p *Population) makePeople() {
	r := p.rng
	n := p.Config.People
	p.People = make([]Person, n)
	perClub := (n + p.Clubs - 1) / p.Clubs
	minutes := int32(p.Config.Days * 24 * 60)
	for i := range p.People {
		x := &p.People[i]
		x.Index = int32(i)
		x.Club = int32(i / perClub)
		x.First = uint16(r.IntN(len(firstNames)))
		x.Last = uint16(r.IntN(len(lastNames)))
		x.Domain = uint8(r.IntN(len(domains)))
		x.HasEmail = r.IntN(100) < 95
		x.Phone = -1
		if r.IntN(100) < 60 {
			x.Phone = int32(i)
		}
		// A household: same surname and landline as the person before.
		if i > 0 && p.People[i-1].Club == x.Club && r.IntN(100) < 5 {
			prev := &p.People[i-1]
			x.Last, x.Phone = prev.Last, prev.Phone
			if x.Phone < 0 {
				x.Phone = int32(i)
			}
		}
		if r.IntN(100) < 45 {
			x.MemberID = 100_000 + int64(i)
		}
		x.Player = r.IntN(100) < 75 || (x.MemberID != 0 && r.IntN(100) < 80)
		x.Contact = r.IntN(100) < 80
		if x.MemberID == 0 && !x.Player && !x.Contact {
			x.Contact = true
		}
		x.AuthUser = (x.MemberID != 0 && r.IntN(100) < 50) || (x.Player && r.IntN(100) < 20)
		x.AltEmail = x.Contact && x.HasEmail && r.IntN(100) < 3
		x.Tier = uint8(pick(r, tierWeights))
		x.Status = uint8(pick(r, statusWeights))
		x.Handicap = int16(r.IntN(360))
		x.Keenness = float32(math.Exp(1.3 * r.NormFloat64()))
		// Seven in ten are the clubs' already and arrive in the first
		// month, as the services publish what they hold; the others
		// join over the two years.
		if r.IntN(100) < 70 {
			x.Join = int32(r.IntN(30 * 24 * 60))
		} else {
			x.Join = int32(r.Int64N(int64(minutes)))
		}
	}
	p.order = make([]int32, n)
	for i := range p.order {
		p.order[i] = int32(i)
	}
	// Counting sort by join hour keeps this linear for a million people.
	byHour := make([][]int32, p.Config.Days*24+1)
	for i := range p.People {
		h := p.People[i].Join / 60
		byHour[h] = append(byHour[h], int32(i))
	}
	p.order = p.order[:0]
	for _, list := range byHour {
		p.order = append(p.order, list...)
	}
	p.keen = make([]float64, n)
	total := 0.0
	for i, who := range p.order {
		total += float64(p.People[who].Keenness)
		p.keen[i] = total
	}
}

// pickActive answers someone who has joined, each as likely as their
// keenness makes them.
func (p *Population) pickActive() int32 {
	u := p.rng.Float64() * p.keen[p.joined-1]
	i, _ := slices.BinarySearch(p.keen[:p.joined], u)
	return p.order[min(i, p.joined-1)]
}

// identityEvents is how many events announce a person: one per service
// that knows them.
func identityEvents(x *Person) int {
	n := 0
	if x.MemberID != 0 {
		n++
	}
	if x.Player {
		n++
	}
	if x.Contact {
		n++
	}
	return n
}

// Weights of the activity that starts a chain, per service, and the mean
// number of events each chain yields.
const (
	wBooking     = 30 // teetime.booked, then teetime.completed
	wHandicap    = 6
	wCompetition = 2
	wPayment     = 10 // payment.received (payment.failed one in eleven)
	wTier        = 1
	wMemberUpd   = 1
	wCampaign    = 30 // message.sent, delivered, opened, clicked
	wPreference  = 1
)

const (
	bookingChain  = 1.85                                     // 85% of bookings are played
	campaignChain = 1 + 0.95 + 0.7*(0.95*0.45+0.95*0.45*0.2) // EMAIL 70%: opens 45%, clicks 20% of opens
	memberChain   = (wPayment + wTier + wMemberUpd) * 1.0    // one event each
	playerChain   = wBooking*bookingChain + wHandicap + wCompetition
	contactChain  = wCampaign*campaignChain + wPreference*1.0
	playerWeight  = wBooking + wHandicap + wCompetition
	contactWeight = wCampaign + wPreference
	memberWeight  = wPayment + wTier + wMemberUpd
)

// meanChain answers the mean events of one activity root of x.
func meanChain(x *Person) float64 {
	w, e := 0.0, 0.0
	if x.MemberID != 0 {
		w, e = w+memberWeight, e+memberChain
	}
	if x.Player {
		w, e = w+playerWeight, e+playerChain
	}
	if x.Contact {
		w, e = w+contactWeight, e+contactChain
	}
	if w == 0 {
		return 1
	}
	return e / w
}

// calibrate sets the activity rate so that the history holds about
// Config.Events events: identity events are fixed by the people; the
// rest is activity, spread evenly over the people who have joined.
func (p *Population) calibrate() {
	ident := 0
	weighted := 0.0 // Σ mean chain × hours joined
	for i := range p.People {
		x := &p.People[i]
		ident += identityEvents(x)
		weighted += meanChain(x) * float64(p.hours-int(x.Join/60))
	}
	activity := float64(p.Config.Events - ident)
	if activity <= 0 || weighted == 0 {
		p.rate = 0
		return
	}
	// A little over, so the history reaches Events before the two years
	// end; Next stops at exactly Events.
	p.rate = activity / weighted * 1.03
}

// Remaining answers how many events Next will still hand out.
func (p *Population) Remaining() int { return p.Config.Events - p.emitted }

// Next answers the next event of the history, and false once
// Config.Events have been handed out (or the history ran dry).
func (p *Population) Next() (Event, bool) {
	for p.next == len(p.buf) {
		if p.emitted >= p.Config.Events || !p.fill() {
			return Event{}, false
		}
	}
	if p.emitted >= p.Config.Events {
		return Event{}, false
	}
	e := p.buf[p.next]
	p.buf[p.next] = Event{}
	p.next++
	p.emitted++
	p.People[e.Person].Seen = true
	p.PerType[e.Type]++
	return e, true
}

// pendingEvent is an event due at a later minute: a chain's next step.
type pendingEvent struct {
	at   int32 // minute
	seq  uint64
	kind uint8
	who  int32
	ref  int64 // booking or message number
	ch   uint8 // channel of a message
}

type pendingHeap []pendingEvent

func (h pendingHeap) Len() int { return len(h) }
func (h pendingHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h pendingHeap) Swap(i, j int)       { h[i], h[j] = h[j], h[i] }
func (h *pendingHeap) Push(x any)         { *h = append(*h, x.(pendingEvent)) }
func (h *pendingHeap) Pop() (x any)       { old := *h; x = old[len(old)-1]; *h = old[:len(old)-1]; return x }
func (h pendingHeap) peek() *pendingEvent { return &h[0] }

// Kinds of generated events.
const (
	kMemberCreated uint8 = iota
	kPlayerCreated
	kContactCreated
	kBooked
	kCompleted
	kHandicap
	kCompetition
	kPayment
	kTier
	kMemberUpdated
	kSent
	kDelivered
	kOpened
	kClicked
	kPreference
)

// fill generates the next hour's events into buf; false when the two
// years and every pending step are done.
func (p *Population) fill() bool {
	p.buf, p.next = p.buf[:0], 0
	if p.hour >= p.hours && len(p.pending) == 0 {
		return false
	}
	h := p.hour
	p.hour++
	r := p.rng
	var due []pendingEvent
	// Arrivals of the hour: their identity events, a service at a time
	// and minutes apart, in an order of their own.
	for p.joined < len(p.order) && int(p.People[p.order[p.joined]].Join/60) <= h {
		x := &p.People[p.order[p.joined]]
		p.joined++
		at := x.Join
		kinds := make([]uint8, 0, 3)
		if x.MemberID != 0 {
			kinds = append(kinds, kMemberCreated)
		}
		if x.Player {
			kinds = append(kinds, kPlayerCreated)
		}
		if x.Contact {
			kinds = append(kinds, kContactCreated)
		}
		r.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
		for n, k := range kinds {
			p.seq++
			due = append(due, pendingEvent{at: at + int32(n*r.IntN(20)), seq: p.seq, kind: k, who: x.Index})
		}
	}
	// Activity roots of the hour, spread over its minutes.
	if h < p.hours && p.joined > 0 {
		p.acc += p.rate * float64(p.joined)
		n := int(p.acc)
		p.acc -= float64(n)
		for range n {
			who := p.pickActive()
			x := &p.People[who]
			at := int32(h*60 + r.IntN(60))
			if at < x.Join+60 {
				at = x.Join + 60 // after their identity events
			}
			p.seq++
			due = append(due, pendingEvent{at: at, seq: p.seq, kind: p.rootKind(x), who: who})
		}
	}
	for _, d := range due {
		heap.Push(&p.pending, d) // ordered with the chain steps due
	}
	end := int32((h + 1) * 60)
	if h >= p.hours-1 && p.hour >= p.hours {
		end = math.MaxInt32 // after the last hour, drain every step
	}
	for len(p.pending) > 0 && p.pending.peek().at < end {
		d := heap.Pop(&p.pending).(pendingEvent)
		p.emit(d)
	}
	return true
}

func (p *Population) rootKind(x *Person) uint8 {
	r := p.rng
	w := 0
	if x.MemberID != 0 {
		w += memberWeight
	}
	if x.Player {
		w += playerWeight
	}
	if x.Contact {
		w += contactWeight
	}
	n := r.IntN(w)
	if x.MemberID != 0 {
		switch {
		case n < wPayment:
			return kPayment
		case n < wPayment+wTier:
			return kTier
		case n < memberWeight:
			return kMemberUpdated
		}
		n -= memberWeight
	}
	if x.Player {
		switch {
		case n < wBooking:
			return kBooked
		case n < wBooking+wHandicap:
			return kHandicap
		case n < playerWeight:
			return kCompetition
		}
		n -= playerWeight
	}
	if n < wCampaign {
		return kSent
	}
	return kPreference
}

// newID answers the next envelope id of a stream: services number their
// own events.
func (p *Population) newID(stream int) string {
	p.ids[stream]++
	return [...]string{"scl-", "tt-", "msg-"}[stream] + strconv.Itoa(p.ids[stream])
}

var channels = []string{"EMAIL", "SMS", "PUSH"}

// emit turns a due step into its event, queueing the chain's next step.
func (p *Population) emit(d pendingEvent) {
	r := p.rng
	x := &p.People[d.who]
	at := Start.Add(time.Duration(d.at) * time.Minute).Add(time.Duration(r.IntN(60)) * time.Second)
	e := Event{Tenant: x.Tenant(), OccurredAt: at, Person: d.who}
	var b []byte
	obj := func(stream int, typ string) {
		e.Stream, e.Type, e.Source = stream, typ, [...]string{"scl", "teetime", "messaging"}[stream]
		e.ID = p.newID(stream)
		b = append(make([]byte, 0, 256), '{')
	}
	later := func(minutes int32, kind uint8, ref int64, ch uint8) {
		p.seq++
		heap.Push(&p.pending, pendingEvent{at: d.at + max(1, minutes), seq: p.seq, kind: kind, who: d.who, ref: ref, ch: ch})
	}
	switch d.kind {
	case kMemberCreated:
		obj(0, "member.created")
		b = field(b, "memberId", x.MemberID)
		if x.AuthUser {
			b = strField(b, "authUserId", x.AuthUserID())
		}
		if x.HasEmail {
			b = strField(b, "email", x.email()) // SCL keeps the case people typed
		}
		if x.Phone >= 0 {
			b = strField(b, "phoneNumber", x.phoneNational())
			b = strField(b, "country", "ZA")
		}
		b = strField(b, "firstName", firstNames[x.First])
		b = strField(b, "lastName", lastNames[x.Last])
		b = strField(b, "membershipTier", Tiers[x.Tier])
		b = strField(b, "membershipStatus", Statuses[x.Status])
		b = strField(b, "homeClubId", x.Tenant())
		if x.Index%4 == 0 {
			b = append(b, `"externalIds":{"golfRsaId":"G-`...)
			b = strconv.AppendInt(b, int64(x.Index), 10)
			b = append(b, `"},`...)
		}
	case kPlayerCreated:
		obj(1, "player.created")
		b = strField(b, "playerId", x.PlayerID())
		if x.AuthUser {
			b = strField(b, "authUserId", x.AuthUserID())
		}
		if x.HasEmail {
			b = strField(b, "email", strings.ToLower(x.email()))
		}
		if x.Phone >= 0 && r.IntN(2) == 0 {
			b = strField(b, "phoneNumber", x.PhoneE164())
		}
		b = strField(b, "firstName", firstNames[x.First])
		b = strField(b, "lastName", lastNames[x.Last])
		b = append(b, `"handicap":`...)
		b = strconv.AppendFloat(b, float64(x.Handicap)/10, 'f', 1, 64)
		b = append(b, ',')
		b = strField(b, "homeClubId", x.Tenant())
	case kContactCreated, kPreference:
		obj(2, "contactPreference.updated")
		b = strField(b, "contactId", x.ContactID())
		if x.HasEmail {
			email := strings.ToUpper(x.email())
			if x.AltEmail {
				email = strings.ToLower(firstNames[x.First][:1]+mailName(lastNames[x.Last])) + strconv.Itoa(int(x.Index)) + "@work.example.net"
			} else if x.Index%2 == 0 {
				email = strings.ToLower(email)
			}
			b = strField(b, "email", email)
		}
		if x.Phone >= 0 {
			b = strField(b, "phoneNumber", x.phoneSpaced())
		}
		b = boolField(b, "emailOptIn", r.IntN(100) < 80)
		b = boolField(b, "smsOptIn", r.IntN(100) < 50)
		b = boolField(b, "pushOptIn", r.IntN(100) < 30)
		b = boolField(b, "whatsappOptIn", r.IntN(100) < 20)
	case kBooked:
		obj(1, "teetime.booked")
		ref := int64(p.ids[1])
		b = strField(b, "playerId", x.PlayerID())
		b = strField(b, "bookingId", "B-"+strconv.FormatInt(ref, 10))
		b = strField(b, "clubId", x.Tenant())
		tee := at.Add(time.Duration(1+r.IntN(14*24)) * time.Hour).Truncate(10 * time.Minute)
		b = strField(b, "teeTimeAt", tee.Format(time.RFC3339))
		if r.IntN(100) < 85 {
			later(int32(tee.Sub(Start).Minutes())-d.at+240, kCompleted, ref, 0)
		}
	case kCompleted:
		obj(1, "teetime.completed")
		b = strField(b, "playerId", x.PlayerID())
		b = strField(b, "bookingId", "B-"+strconv.FormatInt(d.ref, 10))
		b = strField(b, "clubId", x.Tenant())
		b = strField(b, "teeTimeAt", at.Add(-4*time.Hour).Truncate(10*time.Minute).Format(time.RFC3339))
	case kHandicap:
		obj(1, "handicap.updated")
		x.Handicap = min(540, max(0, x.Handicap+int16(r.IntN(21)-10)))
		b = strField(b, "playerId", x.PlayerID())
		b = append(b, `"handicap":`...)
		b = strconv.AppendFloat(b, float64(x.Handicap)/10, 'f', 1, 64)
		b = append(b, ',')
	case kCompetition:
		obj(1, "competition.entered")
		b = strField(b, "playerId", x.PlayerID())
		c := r.IntN(12)
		b = strField(b, "competitionId", "comp-"+strconv.Itoa(c))
		b = strField(b, "competitionName", competitions[c])
	case kPayment:
		failed := r.IntN(11) == 0
		if failed {
			obj(0, "payment.failed")
		} else {
			obj(0, "payment.received")
		}
		b = field(b, "memberId", x.MemberID)
		b = strField(b, "paymentId", "pay-"+strconv.Itoa(p.ids[0]))
		b = field(b, "amountCents", int64(50_000+int(x.Tier)*40_000))
		b = strField(b, "currency", "ZAR")
		reason := "monthly subscription"
		if failed {
			reason = "card declined"
		}
		b = strField(b, "reason", reason)
	case kTier:
		obj(0, "tier.changed")
		from := x.Tier
		x.Tier = uint8(r.IntN(len(Tiers)))
		if x.Tier == from {
			x.Tier = (from + 1) % uint8(len(Tiers))
		}
		b = field(b, "memberId", x.MemberID)
		b = strField(b, "fromTier", Tiers[from])
		b = strField(b, "toTier", Tiers[x.Tier])
	case kMemberUpdated:
		obj(0, "member.updated")
		x.Status = uint8(pick(r, statusWeights))
		b = field(b, "memberId", x.MemberID)
		b = strField(b, "membershipStatus", Statuses[x.Status])
		b = strField(b, "membershipTier", Tiers[x.Tier])
	case kSent:
		obj(2, "message.sent")
		ref := int64(p.ids[2])
		ch := uint8(0)
		if n := r.IntN(10); n >= 9 {
			ch = 2
		} else if n >= 7 {
			ch = 1
		}
		b = p.messageData(b, x, ref, ch)
		b = strField(b, "campaignId", "camp-"+strconv.Itoa(int(d.at/(7*24*60)))) // a campaign a week
		if r.IntN(100) < 95 {
			later(1+int32(r.IntN(5)), kDelivered, ref, ch)
		}
	case kDelivered:
		obj(2, "message.delivered")
		b = p.messageData(b, x, d.ref, d.ch)
		if d.ch == 0 && r.IntN(100) < 45 {
			later(int32(5+r.IntN(48*60)), kOpened, d.ref, d.ch)
		}
	case kOpened, kClicked:
		if d.kind == kOpened {
			obj(2, "email.opened")
		} else {
			obj(2, "email.clicked")
		}
		b = strField(b, "contactId", x.ContactID())
		b = strField(b, "messageId", "m-"+strconv.FormatInt(d.ref, 10))
		b = strField(b, "campaignId", "camp-"+strconv.Itoa(int(d.at/(7*24*60))))
		if d.kind == kClicked {
			b = strField(b, "url", "https://club.example/entry")
		} else if r.IntN(100) < 20 {
			later(int32(1+r.IntN(30)), kClicked, d.ref, d.ch)
		}
	}
	b[len(b)-1] = '}' // the trailing comma
	e.Data = b
	p.buf = append(p.buf, e)
}

func (p *Population) messageData(b []byte, x *Person, ref int64, ch uint8) []byte {
	b = strField(b, "contactId", x.ContactID())
	b = strField(b, "messageId", "m-"+strconv.FormatInt(ref, 10))
	return strField(b, "channel", channels[ch])
}

func field(b []byte, name string, v int64) []byte {
	b = append(b, '"')
	b = append(b, name...)
	b = append(b, `":`...)
	b = strconv.AppendInt(b, v, 10)
	return append(b, ',')
}

func strField(b []byte, name, v string) []byte {
	b = append(b, '"')
	b = append(b, name...)
	b = append(b, `":`...)
	b = appendString(b, v)
	return append(b, ',')
}

func boolField(b []byte, name string, v bool) []byte {
	b = append(b, '"')
	b = append(b, name...)
	b = append(b, `":`...)
	b = strconv.AppendBool(b, v)
	return append(b, ',')
}

// appendString appends s as a JSON string. Generated text is printable
// ASCII without quotes or backslashes; anything else goes through
// encoding/json.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
