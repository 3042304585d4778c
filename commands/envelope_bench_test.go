package commands_test

import (
	"testing"

	"github.com/clubcrm/crm/commands"
)

// BenchmarkParseEnvelope decodes and validates one envelope of each shape
// the upstream streams carry most: every message crm serve reads pays it.
// It needs no database; compare commits with benchstat:
//
//	go test -run '^$' -bench ParseEnvelope -count 10 ./commands > new.txt
func BenchmarkParseEnvelope(b *testing.B) {
	for _, c := range []struct{ name, payload string }{
		{"member.created", `{"id":"scl-1","type":"member.created","source":"scl","tenantId":"royal-golf","occurredAt":"2026-03-14T07:30:00Z",` +
			`"data":{"memberId":42,"authUserId":"idp|8812","email":"Jane.Doe@Mail.com","phoneNumber":"082 555 1234","country":"ZA",` +
			`"firstName":"Jane","lastName":"Doe","membershipTier":"Gold","membershipStatus":"ACTIVE","homeClubId":"club-1",` +
			`"externalIds":{"mcaV1ZaId":"ZA-991","golfRsaId":"G-1"}}}`},
		{"teetime.booked", `{"id":"tt-2","type":"teetime.booked","source":"teetime","tenantId":"royal-golf","occurredAt":"2026-03-14T07:31:00Z",` +
			`"data":{"playerId":"p-7","bookingId":"b-1","clubId":"club-1","teeTimeAt":"2026-03-21T07:30:00Z"}}`},
		{"message.sent", `{"id":"msg-1","type":"message.sent","source":"messaging","tenantId":"royal-golf","occurredAt":"2026-03-14T08:00:00Z",` +
			`"data":{"contactId":"c-3","messageId":"m-1","channel":"EMAIL","campaignId":"camp-1","email":"jane.doe@mail.com"}}`},
		{"email.opened", `{"id":"msg-3","type":"email.opened","tenantId":"royal-golf","data":{"contactId":"c-3","messageId":"m-1","campaignId":"camp-1"}}`},
	} {
		payload := []byte(c.payload)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				if _, err := commands.ParseEnvelope(payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
