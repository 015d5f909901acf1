#!/usr/bin/env python3
"""Register one invoice through einvoice-worker and wait for its outcome (pika).

What an ERP integration needs, in one small file:

* publish ``irn.generate`` to the ``einvoice.commands`` exchange with **publisher confirms**
  and ``mandatory`` set, so a command the broker could not route or store raises instead of
  vanishing;
* name a ``reply_to`` queue and a ``correlation_id``, and match the answer by it;
* tell terminal outcomes from the ones that say "keep waiting":

  =================  ===========  =====================================================
  event              terminal?    what the ERP does
  =================  ===========  =====================================================
  irn.generated      yes          store IRN, AckNo, AckDt, SignedQRCode on the invoice
  irn.rejected       yes          show ``data.errors[]`` (path, code, message) to a user
  irn.failed         yes          nothing was registered: fix the cause, send it again
  irn.in_doubt       no           the worker is settling it by lookup; wait for the next
  gstin.paused       no           a configuration error paused the GSTIN; the worker keeps
                                  the command and retries after the pause
  =================  ===========  =====================================================

Usage::

    python einvoice_client.py INVOICE.json --gstin 29AAGCP4821K1Z3 [--amqp URL]
        [--namespace PREFIX] [--timeout 60] [--request-id ERP-4711]

Exit codes: 0 generated, 2 rejected, 3 failed, 4 no final answer within the timeout.
The last line printed is ``RESULT <json>`` for scripts.
"""
import argparse
import json
import sys
import time
import uuid

import pika

EXIT = {"irn.generated": 0, "irn.rejected": 2, "irn.failed": 3}
WAIT = {"irn.in_doubt", "gstin.paused"}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("invoice", help="a NIC schema v1.1 invoice (JSON file)")
    p.add_argument("--gstin", required=True, help="the seller GSTIN the worker is configured for")
    p.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672/%2f")
    p.add_argument("--namespace", default="", help="the worker's EINVOICE_NAMESPACE prefix")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for a final answer")
    p.add_argument("--request-id", default=None, help="your own id, echoed in every event")
    return p.parse_args(argv)


def register(args):
    with open(args.invoice, encoding="utf-8") as f:
        invoice = json.load(f)
    # schema_version: the contract's major version this client is written for (docs/asyncapi.yaml).
    command = {"schema_version": 1, "gstin": args.gstin, "invoice": invoice}
    if args.request_id:
        command["request_id"] = args.request_id

    conn = pika.BlockingConnection(pika.URLParameters(args.amqp))
    try:
        ch = conn.channel()
        ch.confirm_delivery()  # basic_publish now raises unless the broker confirmed it
        # A private, server-named reply queue: it disappears with this connection.
        reply_queue = ch.queue_declare(queue="", exclusive=True, auto_delete=True).method.queue
        correlation_id = str(uuid.uuid4())
        ch.basic_publish(
            exchange=args.namespace + "einvoice.commands",
            routing_key="irn.generate",
            body=json.dumps(command).encode("utf-8"),
            properties=pika.BasicProperties(
                content_type="application/json",
                delivery_mode=pika.DeliveryMode.Persistent,
                message_id=str(uuid.uuid4()),
                correlation_id=correlation_id,
                reply_to=reply_queue,
            ),
            mandatory=True,  # unroutable → pika.exceptions.UnroutableError
        )
        return await_outcome(conn, ch, reply_queue, correlation_id, args.timeout)
    finally:
        conn.close()


def await_outcome(conn, ch, reply_queue, correlation_id, timeout):
    """Read the reply queue until a terminal event for our correlation id, or the deadline."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        method, props, body = ch.basic_get(reply_queue, auto_ack=True)
        if method is None:
            conn.sleep(0.1)  # keeps the connection's heartbeats going
            continue
        if props.correlation_id != correlation_id:
            continue  # an answer to an earlier command that reused this queue
        event = json.loads(body)
        seen.append(event["event_type"])
        describe(event)
        if event["event_type"] in WAIT:
            continue
        return event, seen
    return None, seen


def describe(event):
    kind, data = event["event_type"], event.get("data") or {}
    if kind == "irn.generated":
        how = " (already registered: the IRP's own record)" if data.get("duplicate") else ""
        how += " (answered from the worker's store)" if data.get("replayed") else ""
        print(f"generated: IRN {data['irn']} AckNo {data['ack_no']} AckDt {data['ack_dt']}{how}")
    elif kind in ("irn.rejected", "irn.failed"):
        print(f"{kind.split('.')[1]}:")
        for e in data.get("errors", []):
            where = e.get("path") or "(invoice)"
            print(f"  {where} [{e['code']}] {e['message']}")
    elif kind == "irn.in_doubt":
        print("in doubt: the IRP may have registered it; the worker is settling it by lookup")
    elif kind == "gstin.paused":
        print(f"GSTIN paused until {data.get('paused_until')}: the worker retries after the pause")
    else:
        print(f"{kind}: {json.dumps(data)[:200]}")


def main(argv):
    args = parse_args(argv)
    event, seen = register(args)
    if event is None:
        print(f"no final answer within {args.timeout:.0f} s (saw: {', '.join(seen) or 'nothing'})")
        print("RESULT " + json.dumps({"outcome": "timeout", "seen": seen}))
        return 4
    data = event.get("data") or {}
    print("RESULT " + json.dumps({
        "outcome": event["event_type"],
        "seen": seen,
        "irn": data.get("irn"),
        "ack_no": data.get("ack_no"),
        "errors": [{"path": e.get("path"), "code": e.get("code")} for e in data.get("errors", [])],
        "request_id": event.get("request_id"),
    }))
    return EXIT.get(event["event_type"], 3)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
