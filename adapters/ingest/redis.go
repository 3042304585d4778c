package ingest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// Fields the subscriber adds to every entry it reads (see label), so the
// unmarshaller (which sees only an entry's fields) learns where the entry
// came from. They never reach Redis.
const (
	fieldEntryID = "\x00crm-entry-id"
	fieldStream  = "\x00crm-stream"
)

// Metadata keys the unmarshaller sets on every message. They are internal:
// the dead-letter entry carries them as fields of their own, not among the
// original metadata.
const (
	metaEntryID    = "_crm_entry_id"
	metaStream     = "_crm_stream"
	metaUnreadable = "_crm_unreadable"
)

// entryUUIDSpace names the UUIDs given to entries published without one.
var entryUUIDSpace = uuid.MustParse("6f1f8e0c-4a43-4c1b-9d1e-3f5c2b7a9e10")

// sharedClient is the Redis client as the subscriber and the dead-letter
// publisher see it. It exists because the client belongs to the caller
// (serve shares it with /readyz and other components):
//
//   - watermill-redisstream's Publisher.Close closes the client it was
//     given: here Close does nothing;
//   - a handler still running when Run gives up waiting (CloseTimeout) may
//     yet dead-letter, and the caller may close its client once Run has
//     returned: release waits for the commands in flight and fails every
//     later one with redis.ErrClosed, without reaching Redis.
type sharedClient struct {
	redis.UniversalClient
	mu       sync.RWMutex // held for reading by each command in flight
	released bool
}

func (c *sharedClient) Close() error { return nil }

// release waits for the guarded commands in flight, and makes later ones
// fail with redis.ErrClosed without reaching Redis.
func (c *sharedClient) release() {
	c.mu.Lock()
	c.released = true
	c.mu.Unlock()
}

// guard runs call unless the client is released.
func guard[T interface{ SetErr(error) }](c *sharedClient, failed func() T, call func() T) T {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.released {
		cmd := failed()
		cmd.SetErr(redis.ErrClosed)
		return cmd
	}
	return call()
}

func (c *sharedClient) XAdd(ctx context.Context, a *redis.XAddArgs) *redis.StringCmd {
	return guard(c, func() *redis.StringCmd { return redis.NewStringCmd(ctx) }, func() *redis.StringCmd {
		return c.UniversalClient.XAdd(ctx, a)
	})
}

func (c *sharedClient) XReadGroup(ctx context.Context, a *redis.XReadGroupArgs) *redis.XStreamSliceCmd {
	return guard(c, func() *redis.XStreamSliceCmd { return redis.NewXStreamSliceCmd(ctx) }, func() *redis.XStreamSliceCmd {
		return c.UniversalClient.XReadGroup(ctx, a)
	})
}

func (c *sharedClient) XAutoClaim(ctx context.Context, a *redis.XAutoClaimArgs) *redis.XAutoClaimCmd {
	return guard(c, func() *redis.XAutoClaimCmd { return redis.NewXAutoClaimCmd(ctx) }, func() *redis.XAutoClaimCmd {
		return c.UniversalClient.XAutoClaim(ctx, a)
	})
}

func (c *sharedClient) XClaimJustID(ctx context.Context, a *redis.XClaimArgs) *redis.StringSliceCmd {
	return guard(c, func() *redis.StringSliceCmd { return redis.NewStringSliceCmd(ctx) }, func() *redis.StringSliceCmd {
		return c.UniversalClient.XClaimJustID(ctx, a)
	})
}

func (c *sharedClient) XInfoConsumers(ctx context.Context, stream, group string) *redis.XInfoConsumersCmd {
	return guard(c, func() *redis.XInfoConsumersCmd { return redis.NewXInfoConsumersCmd(ctx, stream, group) }, func() *redis.XInfoConsumersCmd {
		return c.UniversalClient.XInfoConsumers(ctx, stream, group)
	})
}

func (c *sharedClient) XGroupDelConsumer(ctx context.Context, stream, group, consumer string) *redis.IntCmd {
	return guard(c, func() *redis.IntCmd { return redis.NewIntCmd(ctx) }, func() *redis.IntCmd {
		return c.UniversalClient.XGroupDelConsumer(ctx, stream, group, consumer)
	})
}

func (c *sharedClient) XGroupCreateMkStream(ctx context.Context, stream, group, start string) *redis.StatusCmd {
	return guard(c, func() *redis.StatusCmd { return redis.NewStatusCmd(ctx) }, func() *redis.StatusCmd {
		return c.UniversalClient.XGroupCreateMkStream(ctx, stream, group, start)
	})
}

func (c *sharedClient) Pipelined(ctx context.Context, fn func(redis.Pipeliner) error) ([]redis.Cmder, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.released {
		return nil, redis.ErrClosed
	}
	return c.UniversalClient.Pipelined(ctx, fn)
}

// label adds the entry id and stream to each message's fields: the
// Unmarshaller is handed an entry's fields only, and the dead-letter entry
// must name both. The fields never reach Redis.
func label(stream string, msgs []redis.XMessage) {
	for i := range msgs {
		if msgs[i].Values == nil {
			msgs[i].Values = map[string]any{}
		}
		msgs[i].Values[fieldEntryID] = msgs[i].ID
		msgs[i].Values[fieldStream] = stream
	}
}

// unmarshaller reads both what watermill publishes (_watermill_message_uuid,
// payload, msgpack metadata) and what a plain `XADD stream * payload '<json>'`
// writes.
//
// It never fails. The subscriber treats an unmarshal error as fatal to the
// whole subscription: it logs "processMessage fail" and stops reading the
// stream, leaving the entry pending for ever and every event behind it
// unread. The default unmarshaller fails on exactly the entries non-watermill
// publishers write (no _watermill_message_uuid), so an entry it cannot read
// becomes a message marked unreadable instead, which the handler
// dead-letters like any other invalid event.
type unmarshaller struct{}

func (unmarshaller) Unmarshal(values map[string]any) (*message.Message, error) {
	v := make(map[string]any, len(values))
	for k, x := range values {
		// go-redis answers strings; anything else would make the default
		// unmarshaller's type assertions panic.
		if s, ok := x.(string); ok {
			v[k] = s
		} else {
			v[k] = fmt.Sprint(x)
		}
	}
	entryID, _ := v[fieldEntryID].(string)
	stream, _ := v[fieldStream].(string)
	delete(v, fieldEntryID)
	delete(v, fieldStream)

	var problems []string
	if _, ok := v["payload"]; !ok {
		problems = append(problems, fmt.Sprintf("the stream entry has no payload field (fields: %s)", strings.Join(slices.Sorted(maps.Keys(v)), ", ")))
	}
	if id, _ := v[redisstream.UUIDHeaderKey].(string); id == "" {
		// Derived, not random: a redelivery of the entry keeps its UUID.
		p, _ := v["payload"].(string)
		v[redisstream.UUIDHeaderKey] = uuid.NewSHA1(entryUUIDSpace, []byte(stream+"\x00"+entryID+"\x00"+p)).String()
	}
	msg, err := redisstream.DefaultMarshallerUnmarshaller{}.Unmarshal(v)
	if err != nil {
		// Only the metadata can fail to decode now: keep the message
		// without it, and say why.
		problems = append(problems, fmt.Sprintf("the stream entry's metadata field is unreadable: %v", err))
		delete(v, "metadata")
		if msg, err = (redisstream.DefaultMarshallerUnmarshaller{}).Unmarshal(v); err != nil {
			return nil, fmt.Errorf("unmarshal stream entry %s: %w", entryID, err)
		}
	}
	if msg.Metadata == nil {
		msg.Metadata = message.Metadata{}
	}
	msg.Metadata.Set(metaEntryID, entryID)
	msg.Metadata.Set(metaStream, stream)
	delete(msg.Metadata, metaUnreadable) // only this code says so
	if len(problems) > 0 {
		msg.Metadata.Set(metaUnreadable, strings.Join(problems, "; "))
	}
	return msg, nil
}
