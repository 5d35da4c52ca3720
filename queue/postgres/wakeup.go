package postgres

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tasker-go/tasker/queue"
)

// Subscribe implements queue.Queue. The channel has a buffer of one and
// signals coalesce: a consumer claims until a claim comes back empty after
// each signal.
func (q *Queue) Subscribe(name string) (<-chan struct{}, func()) {
	if q.closed.Load() {
		return make(chan struct{}, 1), func() {}
	}
	s := q.demux.subscribe(name)
	var once sync.Once
	return s.ch, func() { once.Do(func() { q.demux.unsubscribe(name, s) }) }
}

// NotifySent wakes this process's subscribers of the queues of sent after
// the messages were committed: at once for a message without delay, when
// its delay runs out otherwise (a timer per queue, for the earliest). Other
// processes learn of the messages through the notifications the
// transaction sent (BatchNotify, or the queue's own statements). The store
// calls it after the commit of a transaction that sent messages; the
// queue's own methods call it themselves. Only Queue and Delay of each
// SendParams are read.
func (q *Queue) NotifySent(sent ...queue.SendParams) {
	for i := range sent {
		if sent[i].Delay <= 0 {
			q.demux.signal(sent[i].Queue)
		} else {
			q.timers.arm(q, sent[i].Queue, sent[i].Delay)
		}
	}
}

// listener holds the process's one LISTEN connection: a dedicated
// connection outside the pool, read by one goroutine that dispatches each
// notification to the queue's subscribers (demux). When the connection
// drops, it reconnects with exponential backoff and then wakes every
// subscriber once, since notifications sent in between are lost.
type listener struct {
	pid atomic.Uint32 // backend pid of the connection; 0 while disconnected
}

// run keeps the listener connected until q.ctx ends. The outcome of the
// first attempt to connect goes to first.
func (l *listener) run(q *Queue, first chan<- error) {
	defer q.wg.Done()
	ctx := q.ctx
	backoff := q.cfg.ReconnectMin
	for attempt, connected := 1, false; ; attempt++ {
		conn, err := q.connectListener(ctx)
		if first != nil {
			first <- err
			first = nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			q.logger.Warn("queue: listener cannot connect; retrying", "attempt", attempt, "backoff", backoff, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, q.cfg.ReconnectMax)
			continue
		}
		l.pid.Store(conn.PgConn().PID())
		if connected || attempt > 1 {
			// Notifications may have been missed while nobody listened:
			// every subscriber looks once.
			q.logger.Info("queue: listener connected again; waking every subscriber", "attempts", attempt, "channel", q.channel)
			q.reconnects.Add(1)
			q.demux.signalAll()
		}
		attempt, backoff, connected = 0, q.cfg.ReconnectMin, true
		err = q.receive(ctx, conn)
		l.pid.Store(0)
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn.Close(closeCtx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		q.logger.Warn("queue: listener connection lost; reconnecting", "channel", q.channel, "err", err)
	}
}

func (q *Queue) connectListener(ctx context.Context) (*pgx.Conn, error) {
	cfg := q.db.ConnConfig()
	cfg.RuntimeParams["application_name"] = "tasker-listener"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{q.channel}.Sanitize()); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	return conn, nil
}

// receive dispatches notifications until the connection fails or ctx ends.
// A notification sent by this process's own pool is skipped: the sender
// woke its subscribers itself, right after its commit (NotifySent).
func (q *Queue) receive(ctx context.Context, conn *pgx.Conn) error {
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if q.db.OwnsPID(n.PID) {
			continue
		}
		q.notifications.Add(1)
		q.demux.signal(n.Payload)
	}
}

// timers wake the subscribers of a queue when its earliest delayed message
// falls due: one timer per queue, in real time.
type timers struct {
	mu   sync.Mutex
	m    map[string]*delayTimer
	done bool
}

type delayTimer struct {
	timer *time.Timer
	due   time.Time // real time
}

// arm makes sure the queue's timer fires no later than delay from now.
func (ts *timers) arm(q *Queue, name string, delay time.Duration) {
	due := time.Now().Add(delay)
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.done {
		return
	}
	if t := ts.m[name]; t != nil {
		if !t.due.After(due) {
			return
		}
		t.timer.Stop()
	}
	t := &delayTimer{due: due}
	t.timer = time.AfterFunc(delay, func() { ts.fire(q, name, t) })
	ts.m[name] = t
}

// fire runs when a queue's timer goes off: it wakes the local subscribers,
// notifies the other processes, and arms the timer again for the next
// delayed message of the queue, whoever sent it.
func (ts *timers) fire(q *Queue, name string, t *delayTimer) {
	ts.mu.Lock()
	if ts.done {
		ts.mu.Unlock()
		return
	}
	if ts.m[name] == t {
		delete(ts.m, name)
	}
	q.wg.Add(1)
	ts.mu.Unlock()
	defer q.wg.Done()

	// The statement reads the database's clock before the local wake-up:
	// every message due by then is visible to the claims the signal
	// causes, and the next timer covers the messages due after it.
	var next *int64 // microseconds until the next delayed message is due
	err := q.db.Pool.QueryRow(q.ctx, q.stmtsOf(name).fire, q.now(), q.channel, name).Scan(&next)
	q.demux.signal(name)
	if err != nil {
		if !q.errClosed(err) {
			q.logger.Warn("queue: wake other processes and find the next delayed message", "queue", name, "err", err)
		}
		return
	}
	if next != nil {
		ts.arm(q, name, time.Duration(*next)*time.Microsecond)
	}
}

// stop stops every timer; a timer that fires afterwards does nothing.
func (ts *timers) stop() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.done = true
	for name, t := range ts.m {
		t.timer.Stop()
		delete(ts.m, name)
	}
}
