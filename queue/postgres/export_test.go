package postgres

// ListenerPID is the backend pid of the queue's listener connection; 0 while
// it is not connected.
func (q *Queue) ListenerPID() uint32 { return q.listener.pid.Load() }

// Subscribers counts the queue's subscriptions, over all queue names.
func (q *Queue) Subscribers() int { return q.demux.len() }

// Channel is the queue's notification channel.
func (q *Queue) Channel() string { return q.channel }

// SortIndexName is the claim-order index's name of a queue's table.
func SortIndexName(table string) string { return sortIndexName(table) }
