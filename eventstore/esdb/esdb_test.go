package esdb_test

import (
	"os"
	"testing"

	"github.com/clubcrm/crm/eventstore"
	"github.com/clubcrm/crm/eventstore/esdb"
	"github.com/clubcrm/crm/eventstore/storetest"
)

// TestConformance runs the shared suite against the EventStoreDB named by
// EVENTSTORE_URL, for example
//
//	EVENTSTORE_URL='esdb://localhost:2113?tls=false' go test ./eventstore/esdb/
//
// The suite names its streams uniquely, so a server shared with other tests
// (or earlier runs) will do.
func TestConformance(t *testing.T) {
	url := os.Getenv("EVENTSTORE_URL")
	if url == "" {
		t.Skip("EVENTSTORE_URL not set: EventStoreDB conformance suite skipped")
	}
	storetest.Run(t, func(t *testing.T) eventstore.Store {
		s, err := esdb.Open(url)
		if err != nil {
			// Not the URL itself: it may hold a password.
			t.Fatalf("open EVENTSTORE_URL: %v", err)
		}
		// Run closes the store when the test ends.
		return s
	})
}
