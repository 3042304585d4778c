package segment

import (
	"slices"

	"github.com/clubcrm/crm/domain/customer"
)

// Kind is what a field holds, which decides its operators and the type of
// their values.
type Kind string

// Field kinds.
const (
	String  Kind = "string"
	Enum    Kind = "enum" // a string from a fixed list
	Number  Kind = "number"
	Boolean Kind = "boolean"
	Time    Kind = "time"
	Tags    Kind = "tags"    // a set of strings
	Aliases Kind = "aliases" // the secondary emails and phones
)

// Field is one field of the CustomerProfile read model rules may test.
type Field struct {
	Name   string   `json:"name"`
	Kind   Kind     `json:"kind"`
	Values []string `json:"values,omitempty"` // an Enum's values
	Doc    string   `json:"doc"`
}

// Operators lists the operators of a field kind.
func (k Kind) Operators() []Operator {
	switch k {
	case String:
		return []Operator{Eq, Neq, In, Nin, Contains, StartsWith, Exists, NotExists}
	case Enum:
		return []Operator{Eq, Neq, In, Nin, Exists, NotExists}
	case Number:
		return []Operator{Eq, Neq, In, Nin, Lt, Lte, Gt, Gte, Between, Exists, NotExists}
	case Boolean:
		return []Operator{Eq, Neq, Exists, NotExists}
	case Time:
		return []Operator{Eq, Neq, Lt, Lte, Gt, Gte, Between, WithinLast, NotWithinLast, Exists, NotExists}
	case Tags:
		return []Operator{HasTag, HasAnyTag, HasAllTags, Contains, Exists, NotExists}
	case Aliases:
		return []Operator{Eq, Contains, StartsWith, Exists, NotExists}
	}
	return nil
}

func enumOf[T ~string](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// Fields lists every field of the CustomerProfile read model, by its JSON
// name in GET /api/v1/customers/{id}.
var Fields = []Field{
	{Name: "id", Kind: String, Doc: "the CRM's id of the profile"},
	{Name: "authUserId", Kind: String, Doc: "identity provider user id"},
	{Name: "email", Kind: String, Doc: "primary email, normalised (lower case)"},
	{Name: "phoneNumber", Kind: String, Doc: "primary phone, E.164 when it could be read"},
	{Name: "sclMemberId", Kind: Number, Doc: "SCL Member.id"},
	{Name: "teetimePlayerId", Kind: String, Doc: "TeeTime Player.id"},
	{Name: "messagingContactId", Kind: String, Doc: "Messaging Contact.id"},
	{Name: "externalIds.mcaV1ZaId", Kind: String, Doc: "MCA v1 South Africa id"},
	{Name: "externalIds.mcaV1UkId", Kind: String, Doc: "MCA v1 United Kingdom id"},
	{Name: "externalIds.golfRsaId", Kind: String, Doc: "GolfRSA id"},
	{Name: "firstName", Kind: String},
	{Name: "lastName", Kind: String},
	{Name: "displayName", Kind: String},
	{Name: "status", Kind: Enum, Values: enumOf(customer.Statuses), Doc: "the record's state; merged-away profiles are never members"},
	{Name: "lifecycleStage", Kind: Enum, Values: enumOf(customer.Lifecycles)},
	{Name: "tags", Kind: Tags},
	{Name: "engagementScore", Kind: Number, Doc: "0-100 (docs/scoring.md); missing until scored"},
	{Name: "churnRiskScore", Kind: Number, Doc: "0-100 (docs/scoring.md); missing until scored"},
	{Name: "lifetimeValue", Kind: Number, Doc: "payments received, in minor units of the tenant's main currency"},
	{Name: "lifetimeValueCurrency", Kind: String},
	{Name: "lastActivityAt", Kind: Time},
	{Name: "activityCount30d", Kind: Number},
	{Name: "bookingCount30d", Kind: Number},
	{Name: "handicap", Kind: Number, Doc: "from TeeTime"},
	{Name: "homeClubId", Kind: String},
	{Name: "membershipTier", Kind: String, Doc: "from SCL, as SCL spells it (Gold, Platinum)"},
	{Name: "membershipStatus", Kind: String, Doc: "from SCL, upper case (ACTIVE, SUSPENDED, ...)"},
	{Name: "emailOptIn", Kind: Boolean},
	{Name: "smsOptIn", Kind: Boolean},
	{Name: "pushOptIn", Kind: Boolean},
	{Name: "whatsappOptIn", Kind: Boolean},
	{Name: "aliases", Kind: Aliases, Doc: "secondary emails and phone numbers: a value matches when any alias does"},
	{Name: "version", Kind: Number, Doc: "events in the profile's stream"},
	{Name: "createdAt", Kind: Time},
	{Name: "updatedAt", Kind: Time},
	{Name: "mergedInto", Kind: String},
}

// FieldNamed answers the field of a name.
func FieldNamed(name string) (Field, bool) {
	i := slices.IndexFunc(Fields, func(f Field) bool { return f.Name == name })
	if i < 0 {
		return Field{}, false
	}
	return Fields[i], true
}
