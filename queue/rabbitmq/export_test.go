package rabbitmq

// BasicGets returns the basic.get calls the claims of q made: each is a
// round trip to the broker.
func BasicGets(q *Queue) uint64 { return q.gets.Load() }
