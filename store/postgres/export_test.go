package postgres

import "context"

// StopRelay stops the outbox's relay, as a process that dies after its
// commits and before it publishes would: the rows stay in the table.
func (s *Store) StopRelay() { _ = s.relay.stop(context.Background()) }
