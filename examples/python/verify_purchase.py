#!/usr/bin/env python3
"""Verify a supplier's e-invoice through einvoice-worker before booking the purchase (pika).

The buyer's side of e-invoicing: before an ERP books a purchase and claims its input tax
credit, it asks the worker (``einvoice.verify``, offline: no IRP call) whether the supplier's
invoice really was registered and signed by an IRP, and whether what the IRP signed matches the
purchase as the ERP recorded it:

* send what the supplier gave you: the QR code's text (the signed JWT, e.g. from a scanner),
  a photo or scan of the QR code (PNG/JPEG), or the signed JSON (``SignedInvoice``);
* send your own record (``expected``: supplier GSTIN, number, date, total, your GSTIN) and the
  rounding you accept on the total (``tolerance``, rupees);
* book only on ``valid: true``; otherwise hold the purchase and show ``reason``:

  =====================  ==================================================================
  reason                 what it means for the purchase
  =====================  ==================================================================
  SIGNATURE_INVALID      altered after the IRP signed it (an amount changed): do not book
  UNKNOWN_KEY            not signed by any configured IRP key: not a registered e-invoice
  KEY_NOT_VALID_AT_DATE  signed with an IRP key outside the dates it was in use
  NOT_AN_EINVOICE        the QR code or file holds no signed e-invoice
  UNREADABLE_IMAGE       the image holds no readable QR code: scan it again
  BUYER_NOT_OURS         billed to another GSTIN: no input tax credit for us
  MISMATCH               differs from our record (``mismatches`` lists the fields)
  =====================  ==================================================================

Usage::

    python verify_purchase.py (--qr-text FILE | --qr-image FILE | --signed-json FILE)
        --gstin OUR_GSTIN [--supplier-gstin G] [--doc-number N] [--doc-date dd/mm/yyyy]
        [--total 118000.00] [--tolerance 1.00] [--amqp URL] [--namespace PREFIX] [--timeout 30]

Exit codes: 0 book it (valid), 1 hold it (valid: false), 2 the command was rejected, 4 no answer
within the timeout. The last line printed is ``RESULT <json>`` for scripts.
"""
import argparse
import base64
import json
import sys
import time
import uuid

import pika


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--qr-text", help="a file holding the QR code's text (the signed JWT)")
    src.add_argument("--qr-image", help="a PNG or JPEG image of the QR code")
    src.add_argument("--signed-json", help="the supplier's signed JSON (SignedInvoice / SignedQRCode)")
    p.add_argument("--gstin", required=True, help="our GSTIN: the purchase must be billed to it")
    p.add_argument("--supplier-gstin")
    p.add_argument("--doc-number")
    p.add_argument("--doc-date", help="dd/mm/yyyy")
    p.add_argument("--total", help="the invoice total in our books, rupees (text keeps it exact)")
    p.add_argument("--tolerance", default="1.00", help="rupees the total may differ by")
    p.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672/%2f")
    p.add_argument("--namespace", default="", help="the worker's EINVOICE_NAMESPACE prefix")
    p.add_argument("--timeout", type=float, default=30.0)
    return p.parse_args(argv)


def command(args):
    cmd = {"schema_version": 1, "gstin": args.gstin, "tolerance": args.tolerance,
           "request_id": f"purchase-{uuid.uuid4().hex[:12]}"}
    if args.qr_text:
        with open(args.qr_text, encoding="utf-8") as f:
            cmd["signed_qr_code"] = f.read().strip()
    elif args.qr_image:
        with open(args.qr_image, "rb") as f:
            cmd["qr_image"] = base64.b64encode(f.read()).decode("ascii")
    else:
        with open(args.signed_json, encoding="utf-8") as f:
            cmd["signed_invoice"] = json.load(f)
    expected = {k: v for k, v in {
        "supplier_gstin": args.supplier_gstin, "doc_number": args.doc_number,
        "doc_date": args.doc_date, "total_value": args.total, "buyer_gstin": args.gstin,
    }.items() if v is not None}
    cmd["expected"] = expected
    return cmd


def verify(args):
    conn = pika.BlockingConnection(pika.URLParameters(args.amqp))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        reply_queue = ch.queue_declare(queue="", exclusive=True, auto_delete=True).method.queue
        correlation_id = str(uuid.uuid4())
        ch.basic_publish(
            exchange=args.namespace + "einvoice.commands",
            routing_key="einvoice.verify",
            body=json.dumps(command(args)).encode("utf-8"),
            properties=pika.BasicProperties(
                content_type="application/json",
                delivery_mode=pika.DeliveryMode.Persistent,
                message_id=str(uuid.uuid4()),
                correlation_id=correlation_id,
                reply_to=reply_queue,
            ),
            mandatory=True,
        )
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            method, props, body = ch.basic_get(reply_queue, auto_ack=True)
            if method is None:
                conn.sleep(0.1)
                continue
            if props.correlation_id == correlation_id:
                return json.loads(body)
        return None
    finally:
        conn.close()


def main(argv):
    args = parse_args(argv)
    event = verify(args)
    if event is None:
        print(f"no answer within {args.timeout:.0f} s")
        print("RESULT " + json.dumps({"outcome": "timeout"}))
        return 4
    data = event.get("data") or {}
    if event["event_type"] != "einvoice.verified":
        for e in data.get("errors", []):
            print(f"rejected: {e.get('path') or '(command)'} [{e['code']}] {e['message']}")
        print("RESULT " + json.dumps({"outcome": event["event_type"],
                                      "errors": [e.get("code") for e in data.get("errors", [])]}))
        return 2
    fields = data.get("fields") or {}
    signer = data.get("signed_by") or {}
    if data["valid"]:
        print(f"BOOK: {fields.get('doc_type')} {fields.get('doc_number')} of {fields.get('supplier_gstin')}, "
              f"total {fields.get('total_value')}, IRN {fields.get('irn')} "
              f"(signed by {signer.get('irp')} key {signer.get('key_id')})")
    else:
        print(f"HOLD: [{data['reason']}] {data.get('message')}")
        for m in data.get("mismatches", []):
            print(f"  {m['field']}: ours {m['expected']}, signed {m['actual']}")
    print("RESULT " + json.dumps({
        "outcome": "book" if data["valid"] else "hold",
        "reason": data.get("reason"),
        "mismatches": [m["field"] for m in data.get("mismatches", [])],
        "irn": fields.get("irn"),
        "signed_by": signer.get("key_id"),
    }))
    return 0 if data["valid"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
