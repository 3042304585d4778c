package projections_test

import (
	"errors"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/clubcrm/crm/eventstore"
	"github.com/clubcrm/crm/projections"
)

// A command answers the position it wrote as a token; a later query hands
// the token back and waits, briefly, until the read model holds the write.
// The projector may run in another process.
func ExampleRuntime_WaitFor() {
	var (
		rt    *projections.Runtime // projections.New(pool, store, projectors...)
		store eventstore.Store
		mux   = http.NewServeMux()
	)
	mux.HandleFunc("POST /members/{id}/notes", func(w http.ResponseWriter, r *http.Request) {
		res, err := store.Append(r.Context(), eventstore.StreamName("member", r.PathValue("id")), eventstore.Any, eventstore.EventData{
			ID: uuid.New(), Type: "NoteAdded", Metadata: eventstore.Metadata{TenantID: "club-1"},
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Consistency-Token", projections.EncodeToken(res.Position))
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("GET /members/{id}/notes", func(w http.ResponseWriter, r *http.Request) {
		pos, err := projections.DecodeToken(r.Header.Get("Consistency-Token"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		err = rt.WaitFor(r.Context(), "notes", pos, 2*time.Second)
		if errors.Is(err, projections.ErrNotCaughtUp) {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "the read model has not caught up with your write yet", http.StatusServiceUnavailable)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		// ... query the notes read model.
	})
}
