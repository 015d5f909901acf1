#!/usr/bin/env node
// A durable consumer of einvoice-worker's result events (amqplib); see
// examples/python/events_consumer.py for the reasoning. In short: the ERP's own durable
// queue bound to `einvoice.events`, ack after applying, apply each event_id once (events
// are delivered at least once).
//
// Usage: node events_consumer.js [--amqp URL] [--namespace PREFIX] [--queue erp.einvoice-results]
//          [--max-events N] [--idle-exit SECS]
// Each applied event is printed as `EVENT <json>`.
'use strict';
const amqp = require('amqplib');

const BINDINGS = ['irn.#', 'gstin.paused', 'ewaybill.#', 'reconcile.#', 'command.rejected'];

function parseArgs(argv) {
  const args = { amqp: 'amqp://guest:guest@127.0.0.1:5672/%2f', namespace: '', queue: 'erp.einvoice-results', maxEvents: 0, idleExit: 0 };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === '--amqp') args.amqp = value;
    else if (flag === '--namespace') args.namespace = value;
    else if (flag === '--queue') args.queue = value;
    else if (flag === '--max-events') args.maxEvents = Number(value);
    else if (flag === '--idle-exit') args.idleExit = Number(value);
    else throw new Error(`unknown option ${flag}`);
  }
  return args;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const conn = await amqp.connect(args.amqp);
  const ch = await conn.createChannel();
  const queue = args.namespace + args.queue;
  await ch.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
  for (const key of BINDINGS) await ch.bindQueue(queue, args.namespace + 'einvoice.events', key);
  await ch.prefetch(50);

  // A real consumer keeps applied event ids in its own database, in the invoice update's transaction.
  const applied = new Set();
  let count = 0;
  let idle = null;
  await new Promise((resolve) => {
    const armIdle = () => {
      if (!args.idleExit) return;
      clearTimeout(idle);
      idle = setTimeout(resolve, args.idleExit * 1000);
    };
    armIdle();
    ch.consume(queue, (msg) => {
      if (!msg) return resolve();
      armIdle();
      const event = JSON.parse(msg.content.toString('utf8'));
      if (!applied.has(event.event_id)) {
        applied.add(event.event_id);
        count += 1;
        const doc = event.document || {};
        console.log('EVENT ' + JSON.stringify({
          event_type: event.event_type,
          request_id: event.request_id ?? null,
          doc_number: doc.doc_number ?? null,
          irn: (event.data || {}).irn ?? null,
        }));
      }
      ch.ack(msg); // after applying: a crash before this redelivers
      if (args.maxEvents && count >= args.maxEvents) resolve();
    });
  });
  clearTimeout(idle);
  await conn.close();
  console.log(`applied ${count} events`);
}

main().catch((err) => {
  console.error(`error: ${err.message}`);
  process.exit(1);
});
