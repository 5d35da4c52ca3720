package rabbitmq

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/taskertype"
)

// Config configures a Queue. The zero value of each field but URL means
// its default.
type Config struct {
	// URL is the broker's AMQP URL, e.g.
	// "amqp://guest:guest@127.0.0.1:5672/". Required.
	URL string
	// Prefetch bounds the deliveries a consumer of one queue holds
	// unacknowledged (basic.qos): set it to the slots of the worker that
	// claims the queue, so that a process never takes more than it can
	// run. Default 64.
	Prefetch int
	// Logger receives the provider's logs. Default: discard.
	Logger *slog.Logger
	// Clock tells the time of claims (visibility timeouts) and of the
	// records kept with messages (enqueued, dead). Default: the wall
	// clock. Delays run on the broker's timers (message TTLs).
	Clock taskertype.Clock
	// DialTimeout bounds one attempt to connect. Default 5s.
	DialTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the backoff between attempts to
	// connect again after the connection was lost: it starts at
	// ReconnectMin and doubles up to ReconnectMax. Defaults 100ms and 5s.
	ReconnectMin, ReconnectMax time.Duration
	// Prefix is put before every name on the broker (queues, exchanges),
	// so that several installations, or tests, share a virtual host.
	// Default none: the engine's names as they are.
	Prefix string
	// PriorityAging is the waiting one point of SendParams.Priority is
	// worth in claim order (queue.SendParams.Priority). Claims order the
	// deliveries this process holds: the broker itself delivers in its
	// queue's order. Default queue.DefaultPriorityAging.
	PriorityAging time.Duration
	// Lookahead is how many deliveries beyond Prefetch a claim takes from
	// the broker (basic.get) to hand them out by priority: the order of
	// claims is exact among the Prefetch+Lookahead messages at the head of
	// the queue. What a process holds and has not claimed, other
	// processes cannot take (until it claims, releases or dies). Default
	// 32; negative: none.
	Lookahead int
	// MaxBrowse bounds the dead letters that DeadLetterList,
	// DeadLetterRequeue and DeadLetterPurge read from one queue's _dlq.
	// Default 10,000.
	MaxBrowse int
}

func (c Config) withDefaults() Config {
	c.Prefetch = cmp.Or(c.Prefetch, 64)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = taskertype.SystemClock{}
	}
	c.DialTimeout = cmp.Or(c.DialTimeout, 5*time.Second)
	c.ReconnectMin = cmp.Or(c.ReconnectMin, 100*time.Millisecond)
	c.ReconnectMax = cmp.Or(c.ReconnectMax, 5*time.Second)
	c.MaxBrowse = cmp.Or(c.MaxBrowse, 10_000)
	c.PriorityAging = cmp.Or(c.PriorityAging, queue.DefaultPriorityAging)
	c.Lookahead = max(cmp.Or(c.Lookahead, 32), 0)
	return c
}

// RedactURL returns u with its password replaced by "xxxxx", for errors
// and logs.
func RedactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(an AMQP URL that does not parse)"
	}
	return p.Redacted()
}

// ErrClosed is returned by the calls made after Close.
var ErrClosed = errors.New("rabbitmq: the queue is closed")

// Queue is a queue.Queue on RabbitMQ. Its methods are safe for concurrent
// use. Its mutex guards only memory: no network call is made under it.
type Queue struct {
	cfg     Config
	log     *slog.Logger
	clock   taskertype.Clock
	safeURL string
	ids     *ids
	stats   *counters
	tokens  atomic.Int64  // the last publish token (hPub)
	handles atomic.Int64  // the last delivery handle (queue.Message.Handle)
	gets    atomic.Uint64 // basic.get calls made by claims (round trips to the broker)

	mu     sync.Mutex
	conn   *amqp.Connection // nil while disconnected
	raw    net.Conn         // conn's socket (DropConnection)
	pub    *publisher       // confirm mode; publishes of every queue
	up     chan struct{}    // closed while connected; replaced when lost
	gen    uint64           // connection generation, grows at each connect
	queues map[string]*qstate
	closed bool
	// wake-up figures
	signals, coalesced, reconnects uint64
	brokerAt                       time.Time // the last read of the broker's counts

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var (
	_ queue.Queue           = (*Queue)(nil)
	_ queue.WakeupReporter  = (*Queue)(nil)
	_ queue.CounterReporter = (*Queue)(nil)
)

// Open connects to the broker and returns the queue. A broker that cannot
// be reached is an error naming the URL (without its password).
func Open(ctx context.Context, cfg Config) (*Queue, error) {
	if cfg.URL == "" {
		return nil, fmt.Errorf("rabbitmq: %w: no URL: give the broker's AMQP URL, e.g. amqp://guest:guest@127.0.0.1:5672/", taskertype.ErrInvalid)
	}
	if _, err := amqp.ParseURI(cfg.URL); err != nil {
		return nil, fmt.Errorf("rabbitmq: %w: URL %s: %v: want amqp://user:password@host:port/vhost", taskertype.ErrInvalid, RedactURL(cfg.URL), err)
	}
	if err := queue.CheckPriorityAging(cfg.PriorityAging); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	q := &Queue{
		cfg: cfg, log: cfg.Logger, clock: cfg.Clock, safeURL: RedactURL(cfg.URL),
		ids: newIDs(), stats: newCounters(), queues: make(map[string]*qstate), up: make(chan struct{}),
	}
	conn, pub, raw, err := q.dial(ctx)
	if err != nil {
		return nil, err
	}
	q.ctx, q.cancel = context.WithCancel(context.Background())
	q.connected(conn, pub, raw)
	q.wg.Go(q.expireLoop)
	return q, nil
}

// dial connects and opens the publishing channel in confirm mode.
func (q *Queue) dial(ctx context.Context) (*amqp.Connection, *publisher, net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, q.cfg.DialTimeout)
	defer cancel()
	var raw net.Conn
	conn, err := amqp.DialConfig(q.cfg.URL, amqp.Config{
		Dial: func(network, addr string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(dctx, network, addr)
			raw = c
			return c, err
		},
		Properties: amqp.Table{"connection_name": "tasker"},
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("rabbitmq: cannot reach the broker at %s: %w: check that RabbitMQ runs there and that the user and password are right", q.safeURL, err)
	}
	pub, err := newPublisher(conn)
	if err != nil {
		_ = conn.Close()
		return nil, nil, nil, fmt.Errorf("rabbitmq: open the publishing channel on %s: %w", q.safeURL, err)
	}
	return conn, pub, raw, nil
}

// connected installs a new connection and starts watching it: when it is
// lost, the deliveries it held are forgotten (the broker requeues them)
// and a goroutine connects again with backoff.
func (q *Queue) connected(conn *amqp.Connection, pub *publisher, raw net.Conn) {
	lost := conn.NotifyClose(make(chan *amqp.Error, 1))
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		_ = conn.Close()
		return
	}
	q.conn, q.pub, q.raw = conn, pub, raw
	q.gen++
	gen := q.gen
	close(q.up)
	var consume []*qstate
	for _, s := range q.queues {
		if len(s.subs) > 0 && s.ensured {
			consume = append(consume, s)
		}
		q.signalLocked(s) // what was held comes back: look again
	}
	q.mu.Unlock()
	for _, s := range consume {
		q.startConsumer(s, gen)
	}
	q.wg.Go(func() {
		select {
		case err := <-lost:
			q.lost(gen, err)
		case <-q.ctx.Done():
		}
	})
}

// lost forgets the connection of generation gen and connects again.
func (q *Queue) lost(gen uint64, cause *amqp.Error) {
	q.mu.Lock()
	if q.closed || q.gen != gen {
		q.mu.Unlock()
		return
	}
	q.conn, q.pub, q.raw = nil, nil, nil
	q.up = make(chan struct{})
	for _, s := range q.queues {
		s.dropLocked()
	}
	q.mu.Unlock()
	q.log.Warn("rabbitmq: connection lost: connecting again", slog.String("url", q.safeURL), slog.Any("cause", cause))
	wait := q.cfg.ReconnectMin
	for {
		select {
		case <-q.ctx.Done():
			return
		case <-time.After(wait):
		}
		conn, pub, raw, err := q.dial(q.ctx)
		if err == nil {
			q.mu.Lock()
			q.reconnects++
			q.mu.Unlock()
			q.log.Info("rabbitmq: connected again", slog.String("url", q.safeURL))
			q.connected(conn, pub, raw)
			return
		}
		q.log.Debug("rabbitmq: connect again", slog.Any("error", err), slog.Duration("next_in", wait))
		wait = min(2*wait, q.cfg.ReconnectMax)
	}
}

// connection waits until the broker is connected and returns the
// connection, its publishing channel and its generation.
func (q *Queue) connection(ctx context.Context) (*amqp.Connection, *publisher, uint64, error) {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return nil, nil, 0, ErrClosed
		}
		conn, pub, gen, up := q.conn, q.pub, q.gen, q.up
		q.mu.Unlock()
		if conn != nil {
			return conn, pub, gen, nil
		}
		select {
		case <-up:
		case <-ctx.Done():
			return nil, nil, 0, fmt.Errorf("rabbitmq: waiting for the broker at %s to come back: %w", q.safeURL, ctx.Err())
		}
	}
}

// publish publishes msg, mandatory, with a publisher confirm, and
// publishes again on the new connection when the connection is lost
// before the confirm: a message may then arrive twice (the engine's
// compare-and-set transitions absorb it), never not at all once publish
// returns nil. A message no queue took (the broker returned it) is an
// error wrapping ErrReturned, after the queue was declared again.
func (q *Queue) publish(ctx context.Context, exchange, key string, msg amqp.Publishing) error {
	for {
		_, pub, _, err := q.connection(ctx)
		if err != nil {
			return err
		}
		token := q.stamp(&msg)
		dc, err := pub.ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, true, false, msg)
		if err == nil {
			var ok bool
			if ok, err = dc.WaitContext(ctx); err == nil && ok {
				if pub.ret.returned(token) {
					return q.returned(ctx, exchange, key)
				}
				return nil
			}
			if err == nil && !pub.ch.IsClosed() {
				return fmt.Errorf("rabbitmq: publish to %q: the broker refused the message (nack)", key)
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("rabbitmq: publish to %q: %w", key, ctx.Err())
		}
		if !pub.ch.IsClosed() {
			return fmt.Errorf("rabbitmq: publish to %q: %w", key, err)
		}
		// The channel closed under the publish: once connected again,
		// publish again.
		q.waitLost(ctx, pub)
	}
}

// stamp gives msg a new publish token (hPub) and returns it.
func (q *Queue) stamp(msg *amqp.Publishing) int64 {
	t := q.tokens.Add(1)
	if msg.Headers == nil {
		msg.Headers = amqp.Table{}
	}
	msg.Headers[hPub] = t
	return t
}

// returned is the error of a publish to exchange/key that the broker
// returned: it declares the queue again first, so that the publish made
// again (the outbox keeps its row and retries) delivers.
func (q *Queue) returned(ctx context.Context, exchange, key string) error {
	to := key
	if exchange != "" {
		to = "exchange " + exchange
	}
	if err := q.redeclare(ctx, exchange, key); err != nil {
		return fmt.Errorf("rabbitmq: publish to %q: %w; declaring the queue again failed too: %v", to, ErrReturned, err)
	}
	q.log.Warn("rabbitmq: the broker returned a message no queue took; its queue was declared again", slog.String("to", to))
	return fmt.Errorf("rabbitmq: publish to %q: %w: the queue was missing (deleted behind the engine's back?) and was declared again: publish again", to, ErrReturned)
}

// waitLost waits, briefly, until the provider saw the loss of the
// connection that ch belonged to, so that connection returns a new one.
func (q *Queue) waitLost(ctx context.Context, ch *publisher) {
	for range 50 {
		q.mu.Lock()
		same := q.pub == ch
		q.mu.Unlock()
		if !same {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	// The publishing channel alone closed (the connection is up): open
	// another one.
	q.mu.Lock()
	conn := q.conn
	q.mu.Unlock()
	if conn == nil {
		return
	}
	pub, err := newPublisher(conn)
	if err != nil {
		return
	}
	q.mu.Lock()
	if q.conn == conn && q.pub == ch {
		q.pub = pub
		pub = nil
	}
	q.mu.Unlock()
	if pub != nil {
		_ = pub.ch.Close()
	}
}

// channel runs fn on a short-lived channel of the current connection:
// for passive declares and browsing, whose errors (404) close the channel.
func (q *Queue) channel(ctx context.Context, fn func(ch *amqp.Channel) error) error {
	conn, _, _, err := q.connection(ctx)
	if err != nil {
		return err
	}
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("rabbitmq: open a channel: %w", err)
	}
	defer func() { _ = ch.Close() }()
	return fn(ch)
}

// notFound translates the broker's 404 into taskertype.ErrNotFound.
func notFound(err error, op, name string) error {
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.NotFound {
		return fmt.Errorf("rabbitmq: %s: queue %q does not exist: call QueueEnsure first: %w", op, name, taskertype.ErrNotFound)
	}
	return fmt.Errorf("rabbitmq: %s %q: %w", op, name, err)
}

// DropConnection closes the connection to the broker as a network failure
// would: its socket, without AMQP's closing handshake. The broker gives
// back the deliveries this process held, and the queue connects again
// (Config.ReconnectMin). For tests of what a drop does to running steps.
func (q *Queue) DropConnection() {
	q.mu.Lock()
	raw := q.raw
	q.mu.Unlock()
	if raw != nil {
		_ = raw.Close()
	}
}

// Capabilities implements queue.Queue: wake-ups come from the consumers
// (a delivery pushed by the broker), so they cross processes; the broker
// runs the delays.
func (q *Queue) Capabilities() queue.Capabilities {
	return queue.Capabilities{Wakeups: true, CrossProcessWakeups: true, BrokerClock: true}
}

// Close cancels the consumers and closes the connection: the broker
// requeues every delivery this process held.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	conn := q.conn
	q.conn, q.pub = nil, nil
	select { // wake the waiters: they find closed
	case <-q.up:
	default:
		close(q.up)
	}
	for _, s := range q.queues {
		s.dropLocked()
	}
	q.mu.Unlock()
	q.cancel()
	var err error
	if conn != nil {
		err = conn.Close()
	}
	q.wg.Wait()
	if errors.Is(err, amqp.ErrClosed) {
		err = nil
	}
	return err
}
