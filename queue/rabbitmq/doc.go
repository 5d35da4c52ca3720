// Package rabbitmq is a queue.Queue on a RabbitMQ broker (AMQP 0-9-1, with
// github.com/rabbitmq/amqp091-go).
//
// Topology, per queue name N (the names the engine uses: worker_<ns>,
// orchestration_results, orchestration_tasks):
//
//   - N: a durable classic queue, dead-lettering to the exchange N_dlx;
//   - N_dlx: a durable fanout exchange bound to the durable queue N_dlq,
//     where MessageDeadLetter sets messages aside (as tasker-core declares
//     them);
//   - N_archive: a durable queue that MessageArchive moves messages to;
//   - N_delay_<ms>: durable classic queues with a fixed message TTL of ms
//     milliseconds that dead-letter back to N through the default exchange:
//     a message sent or released with a delay waits there. A queue exists
//     per delay level (two significant digits of milliseconds, rounded
//     down) and expires a minute after its last use; a message that comes
//     back before its due time (the level rounded down) is routed to the
//     level of what remains. No broker plugin is needed.
//
// Claims are deliveries held by this process with manual acknowledgement:
// a claim's visibility timeout is kept here, on the injected clock; when it
// passes the message is ready to be claimed again in this process, read
// once more. A message taken by a process that dies comes back: its channel
// closes and the broker requeues what it held. A message is never handed
// to two holders at once: the broker delivers it to one channel, and this
// process hands it to one claim at a time.
//
// The provider's mutex guards memory only; no network call is made under
// it. The one lock held across a call is a queue's rpc mutex, which
// serializes the synchronous methods on its claim channel (AMQP allows one
// in flight per channel) and guards nothing else.
//
// Wake-ups come from consumers: a queue with subscribers has a consumer
// with a prefetch of Config.Prefetch (set it to the worker's slots), and
// each delivery that arrives signals the subscribers. Claims take the
// deliveries at hand first, then basic.get what the broker holds.
package rabbitmq
