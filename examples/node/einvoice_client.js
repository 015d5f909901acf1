#!/usr/bin/env node
// Register one invoice through einvoice-worker and wait for its outcome (amqplib).
//
// The same flow as examples/python/einvoice_client.py:
// - publish `irn.generate` on a *confirm channel* with `mandatory`, so a command the broker
//   could not route or store is an error here instead of a silent loss;
// - name a `replyTo` queue and a `correlationId`, and match the answer by it;
// - tell terminal outcomes from "keep waiting" ones:
//     irn.generated  terminal  store IRN, AckNo, AckDt, SignedQRCode on the invoice
//     irn.rejected   terminal  show data.errors[] (path, code, message) to a user
//     irn.failed     terminal  nothing was registered: fix the cause, send it again
//     irn.in_doubt   wait      the worker is settling it by lookup
//     gstin.paused   wait      the worker keeps the command and retries after the pause
//
// Usage: node einvoice_client.js INVOICE.json --gstin 29AAGCP4821K1Z3 [--amqp URL]
//          [--namespace PREFIX] [--timeout 60] [--request-id ERP-4711]
// Exit codes: 0 generated, 2 rejected, 3 failed, 4 no final answer within the timeout.
// The last line printed is `RESULT <json>` for scripts.
'use strict';
const fs = require('node:fs');
const { randomUUID } = require('node:crypto');
const amqp = require('amqplib');

const EXIT = { 'irn.generated': 0, 'irn.rejected': 2, 'irn.failed': 3 };
const WAIT = new Set(['irn.in_doubt', 'gstin.paused']);

function parseArgs(argv) {
  const args = { amqp: 'amqp://guest:guest@127.0.0.1:5672/%2f', namespace: '', timeout: 60, requestId: null };
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${flag} needs a value`);
      return argv[++i];
    };
    if (flag === '--gstin') args.gstin = value();
    else if (flag === '--amqp') args.amqp = value();
    else if (flag === '--namespace') args.namespace = value();
    else if (flag === '--timeout') args.timeout = Number(value());
    else if (flag === '--request-id') args.requestId = value();
    else rest.push(flag);
  }
  if (rest.length !== 1 || !args.gstin) {
    throw new Error('usage: node einvoice_client.js INVOICE.json --gstin GSTIN [--amqp URL] [--namespace P] [--timeout S]');
  }
  args.invoice = rest[0];
  return args;
}

function describe(event) {
  const data = event.data || {};
  switch (event.event_type) {
    case 'irn.generated': {
      let how = data.duplicate ? ' (already registered: the IRP\'s own record)' : '';
      if (data.replayed) how += ' (answered from the worker\'s store)';
      console.log(`generated: IRN ${data.irn} AckNo ${data.ack_no} AckDt ${data.ack_dt}${how}`);
      break;
    }
    case 'irn.rejected':
    case 'irn.failed':
      console.log(`${event.event_type.split('.')[1]}:`);
      for (const e of data.errors || []) console.log(`  ${e.path || '(invoice)'} [${e.code}] ${e.message}`);
      break;
    case 'irn.in_doubt':
      console.log('in doubt: the IRP may have registered it; the worker is settling it by lookup');
      break;
    case 'gstin.paused':
      console.log(`GSTIN paused until ${data.paused_until}: the worker retries after the pause`);
      break;
    default:
      console.log(`${event.event_type}: ${JSON.stringify(data).slice(0, 200)}`);
  }
}

async function register(args) {
  // schema_version: the contract's major version this client is written for (docs/asyncapi.yaml).
  const command = { schema_version: 1, gstin: args.gstin, invoice: JSON.parse(fs.readFileSync(args.invoice, 'utf8')) };
  if (args.requestId) command.request_id = args.requestId;

  const conn = await amqp.connect(args.amqp);
  try {
    const ch = await conn.createConfirmChannel();
    // A returned (unroutable) mandatory message arrives before its confirm: remember it.
    let returned = null;
    ch.on('return', (msg) => { returned = msg.fields.replyText; });
    const { queue: replyQueue } = await ch.assertQueue('', { exclusive: true, autoDelete: true });
    const correlationId = randomUUID();
    const seen = [];
    const outcome = new Promise((resolve) => {
      const timer = setTimeout(() => resolve(null), args.timeout * 1000);
      ch.consume(replyQueue, (msg) => {
        if (!msg || msg.properties.correlationId !== correlationId) return;
        const event = JSON.parse(msg.content.toString('utf8'));
        seen.push(event.event_type);
        describe(event);
        if (WAIT.has(event.event_type)) return;
        clearTimeout(timer);
        resolve(event);
      }, { noAck: true });
    });
    ch.publish(args.namespace + 'einvoice.commands', 'irn.generate', Buffer.from(JSON.stringify(command)), {
      contentType: 'application/json',
      persistent: true,
      messageId: randomUUID(),
      correlationId,
      replyTo: replyQueue,
      mandatory: true,
    });
    await ch.waitForConfirms(); // throws if the broker nacked the publish
    if (returned) throw new Error(`the broker could not route the command: ${returned}`);
    return { event: await outcome, seen };
  } finally {
    await conn.close();
  }
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const { event, seen } = await register(args);
  if (!event) {
    console.log(`no final answer within ${args.timeout} s (saw: ${seen.join(', ') || 'nothing'})`);
    console.log('RESULT ' + JSON.stringify({ outcome: 'timeout', seen }));
    return 4;
  }
  const data = event.data || {};
  console.log('RESULT ' + JSON.stringify({
    outcome: event.event_type,
    seen,
    irn: data.irn ?? null,
    ack_no: data.ack_no ?? null,
    errors: (data.errors || []).map((e) => ({ path: e.path, code: e.code })),
    request_id: event.request_id ?? null,
  }));
  return EXIT[event.event_type] ?? 3;
}

main().then((code) => process.exit(code), (err) => {
  console.error(`error: ${err.message}`);
  process.exit(1);
});
