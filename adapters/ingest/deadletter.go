package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/segmentio/encoding/json"

	"github.com/clubcrm/crm/commands"
)

// DefaultDeadLetterStream receives what the consumer cannot process.
const DefaultDeadLetterStream = "crm.deadletter"

// Fields of a dead-letter entry. Each is a field of its own in the Redis
// stream entry, so `XRANGE crm.deadletter - +` is readable as it is:
//
//	_watermill_message_uuid  the message's UUID: the publisher's, or for an
//	                         entry written without one (plain XADD) a UUID
//	                         derived from stream, entry id and payload
//	payload                  the original payload, byte for byte
//	reason                   why it was refused, e.g. "invalid upstream
//	                         event: type: \"member.deleted\" is not an event
//	                         of the contract"
//	stream                   the stream it was read from, e.g. scl.events
//	messageId                its entry id in that stream, e.g. 1732269091234-0
//	failedAt                 when it was dead-lettered, RFC 3339 UTC with
//	                         fractional seconds
//	consumer                 the consumer that refused it
//	originalMetadata         the original watermill metadata as a JSON object
//	                         of strings; absent when there was none
//
// Re-driving an entry is `XADD <stream> * payload <payload>` once its cause
// is fixed: processing is idempotent by envelope id. A watermill subscriber
// with the default unmarshaller can read the stream too (it takes the UUID
// and payload and ignores the other fields). Nothing trims the stream: an
// operator deletes entries once they are dealt with.
const (
	FieldReason           = "reason"
	FieldStream           = "stream"
	FieldMessageID        = "messageId"
	FieldFailedAt         = "failedAt"
	FieldConsumer         = "consumer"
	FieldOriginalMetadata = "originalMetadata"
)

// errUnreadable marks a stream entry that holds no envelope to parse.
var errUnreadable = errors.New("unreadable stream entry")

// invalidError is an envelope the handler refused as invalid.
type invalidError struct{ reason string }

func (e invalidError) Error() string { return e.reason }
func (e invalidError) Unwrap() error { return commands.ErrInvalidEnvelope }

// permanent reports whether err is about the message itself, so handling
// it again cannot succeed: it is dead-lettered at once, without retries.
//
// Everything else counts as transient (the database or Redis down, a lost
// race retried too often, the context ended): retried with backoff, then
// nacked and redelivered after NackResendSleep, for as long as it takes.
// That stalls the stream behind the message, in order, instead of
// dead-lettering every healthy event that arrives while PostgreSQL is
// down. The price is that an unforeseen error that is in fact permanent
// stalls its stream too; it shows as a repeating error in the log and a
// growing pending count, and is fixed in code, not lost.
//
// A panic is permanent: it is a bug that the same message would trigger
// again, and the panic's stack goes with the message to the dead letters.
func permanent(err error) bool {
	var panicked middleware.RecoveredPanicError
	return errors.Is(err, commands.ErrInvalidEnvelope) || errors.Is(err, errUnreadable) || errors.As(err, &panicked)
}

// deadLetterMarshaller writes dead-letter entries in the shape documented
// above. Watermill's default marshaller would pack the reason into a
// msgpack "metadata" blob that nobody can read with redis-cli.
type deadLetterMarshaller struct {
	consumer string
	now      func() time.Time
}

func (m deadLetterMarshaller) Marshal(_ string, msg *message.Message) (map[string]any, error) {
	md := msg.Metadata
	stream := md.Get(metaStream)
	if stream == "" {
		stream = md.Get(middleware.PoisonedTopicKey)
	}
	reason := md.Get(middleware.ReasonForPoisonedKey)
	if reason == "" {
		reason = "unknown"
	}
	values := map[string]any{
		redisstream.UUIDHeaderKey: msg.UUID,
		"payload":                 []byte(msg.Payload),
		FieldReason:               reason,
		FieldStream:               stream,
		FieldMessageID:            md.Get(metaEntryID),
		FieldFailedAt:             m.now().UTC().Format(time.RFC3339Nano),
		FieldConsumer:             m.consumer,
	}
	original := map[string]string{}
	for k, v := range md {
		switch k {
		case middleware.ReasonForPoisonedKey, middleware.PoisonedTopicKey, middleware.PoisonedHandlerKey, middleware.PoisonedSubscriberKey:
			continue
		}
		if strings.HasPrefix(k, "_crm_") {
			continue
		}
		original[k] = v
	}
	if len(original) > 0 {
		b, err := json.Marshal(original)
		if err != nil {
			return nil, fmt.Errorf("encode original metadata: %w", err)
		}
		values[FieldOriginalMetadata] = string(b)
	}
	return values, nil
}

// deadLetterPublisher publishes poisoned messages with a context of its
// own: the message's context ends when the consumer shuts down, and a
// refused message should still reach the dead letters then.
type deadLetterPublisher struct {
	pub     *redisstream.Publisher
	timeout time.Duration
}

func (p deadLetterPublisher) Publish(topic string, msgs ...*message.Message) error {
	for _, m := range msgs {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(m.Context()), p.timeout)
		c := m.Copy() // Copy keeps UUID, payload and metadata, drops acks
		c.SetContext(ctx)
		err := p.pub.Publish(topic, c)
		cancel()
		if err != nil {
			return fmt.Errorf("dead-letter %s to %s: %w", m.UUID, topic, err)
		}
		if n, ok := m.Context().Value(noteKey{}).(*note); ok {
			n.deadLettered = m.Metadata.Get(middleware.ReasonForPoisonedKey)
		}
	}
	return nil
}

func (p deadLetterPublisher) Close() error { return p.pub.Close() }
