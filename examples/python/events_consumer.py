#!/usr/bin/env python3
"""A durable consumer of einvoice-worker's result events (pika).

The reply queue of ``einvoice_client.py`` is for a caller that waits; an ERP should *also* keep
a durable queue bound to the ``einvoice.events`` exchange, so results reach it even when the
process that sent the command has died. This consumer:

* declares its own durable quorum queue and binds it to the event types it cares about;
* acknowledges an event only after it has been applied, so a crash redelivers it;
* applies each event at most once by remembering ``event_id`` (events are delivered at least
  once: a redelivery, or a ``replayed`` answer to a re-sent command, must not be applied twice).

Usage::

    python events_consumer.py [--amqp URL] [--namespace PREFIX] [--queue erp.einvoice-results]
        [--max-events N] [--idle-exit SECS]

Each applied event is printed as ``EVENT <json>``; a real ERP would update the invoice instead.
"""
import argparse
import json
import sys
import time

import pika

BINDINGS = ["irn.#", "gstin.paused", "ewaybill.#", "reconcile.#", "command.rejected"]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672/%2f")
    p.add_argument("--namespace", default="", help="the worker's EINVOICE_NAMESPACE prefix")
    p.add_argument("--queue", default="erp.einvoice-results", help="this ERP's own durable queue")
    p.add_argument("--max-events", type=int, default=0, help="stop after N applied events (0: never)")
    p.add_argument("--idle-exit", type=float, default=0, help="stop after SECS without events (0: never)")
    return p.parse_args(argv)


def apply(event, applied):
    """Update the ERP from one event; idempotent by event_id."""
    if event["event_id"] in applied:
        return False
    applied.add(event["event_id"])
    doc = event.get("document") or {}
    summary = {
        "event_type": event["event_type"],
        "request_id": event.get("request_id"),
        "doc_number": doc.get("doc_number"),
        "irn": (event.get("data") or {}).get("irn"),
    }
    print("EVENT " + json.dumps(summary), flush=True)
    return True


def main(argv):
    args = parse_args(argv)
    conn = pika.BlockingConnection(pika.URLParameters(args.amqp))
    ch = conn.channel()
    queue = args.namespace + args.queue
    ch.queue_declare(queue=queue, durable=True, arguments={"x-queue-type": "quorum"})
    for key in BINDINGS:
        ch.queue_bind(queue=queue, exchange=args.namespace + "einvoice.events", routing_key=key)
    ch.basic_qos(prefetch_count=50)

    applied, count, last = set(), 0, time.monotonic()
    # A real consumer would keep the set of applied event ids in its own database, in the same
    # transaction as the invoice update; a set is enough to show the rule.
    for method, _props, body in ch.consume(queue, inactivity_timeout=0.5):
        if method is None:
            if args.idle_exit and time.monotonic() - last > args.idle_exit:
                break
            continue
        last = time.monotonic()
        if apply(json.loads(body), applied):
            count += 1
        ch.basic_ack(method.delivery_tag)  # after applying: a crash before this redelivers
        if args.max_events and count >= args.max_events:
            break
    ch.cancel()
    conn.close()
    print(f"applied {count} events", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
