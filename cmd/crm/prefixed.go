package main

import "github.com/ThreeDotsLabs/watermill/message"

// prefixed publishes every message to its topic with a prefix before it:
// serve's tests publish to streams of their own, as they ingest from
// streams of their own, instead of the shared crm.events.
type prefixed struct {
	message.Publisher
	prefix string
}

func (p prefixed) Publish(topic string, msgs ...*message.Message) error {
	return p.Publisher.Publish(p.prefix+topic, msgs...)
}
