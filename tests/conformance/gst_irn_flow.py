"""The seed's own client, gst_irn (PyPI `gst-e-invoicing`), run against `einvoice-worker sim`
the way its documentation and its own tests use it against the real NIC sandbox.

Usage: python gst_irn_flow.py CONFIG.json
CONFIG: {"base_url", "gstin", "client_id", "client_secret", "username", "password",
         "wrong_password", "public_key_pem", "signing_public_key_pem", "cache_dir", "buyer_gstin"}

Every answer is checked. Each check prints one "ok <name>" line; the Rust test
(tests/conformance.rs) requires every name, so a check that is skipped fails the test as surely
as one that fails. Any failure raises and exits non-zero.
"""

import base64
import datetime as dt
import json
import os
import re
import sys
import uuid

import einvoice  # PyPI `einvoice`: reads the payload of a signed e-invoice QR code
import jwt  # PyJWT, installed with gst_irn
import requests
from gst_irn import (
    Session,
    get_doc_dtls,
    get_ewb_dtls,
    get_invoice,
    get_item,
    get_seller_dtls,
    get_tran_dtls,
    get_val_dtls,
    qr,
)
from gst_irn.converters import to_buyer
from gst_irn.session import RequestError

IST = dt.timezone(dt.timedelta(hours=5, minutes=30))
NIC_TIME = "%Y-%m-%d %H:%M:%S"
PASSED = []


def check(name, cond, detail=""):
    if not cond:
        raise AssertionError(f"{name}: {detail}")
    PASSED.append(name)
    print(f"ok {name}", flush=True)


def stats(cfg):
    r = requests.get(f"{cfg['base_url']}/_sim/stats", timeout=10)
    r.raise_for_status()
    return r.json()


def session(cfg, password=None):
    # Exactly the documented constructor; base_url points at the simulator.
    return Session(
        gstin=cfg["gstin"],
        client_id=cfg["client_id"],
        client_secret=cfg["client_secret"],
        username=cfg["username"],
        password=password or cfg["password"],
        public_key=cfg["public_key_pem"],
        base_url=cfg["base_url"],
    )


def failure(fn, *args, **kwargs):
    """Call fn, which must raise gst_irn's RequestError; return its (message, answer)."""
    try:
        fn(*args, **kwargs)
    except RequestError as err:
        return err.args
    raise AssertionError(f"{fn.__name__} did not raise RequestError")


def error_codes(answer):
    return [e["ErrorCode"] for e in answer.get("ErrorDetails") or []]


def nic_time(s):
    return dt.datetime.strptime(s, NIC_TIME).replace(tzinfo=IST)


def verify_jwt(token, cfg):
    """NIC's signed JWTs: RS256, iss NIC, data = a JSON string; verified with the signing key."""
    header = jwt.get_unverified_header(token)
    check("jwt alg RS256", header.get("alg") == "RS256", header)
    claims = jwt.decode(token, cfg["signing_public_key_pem"], algorithms=["RS256"], issuer="NIC")
    return json.loads(claims["data"])


def main():
    cfg = json.load(open(sys.argv[1]))
    base = cfg["base_url"]
    cache = cfg["cache_dir"]

    # 1. generate_token: one auth call, token and SEK set, cached on disk.
    before = stats(cfg)["auth_calls"]
    s = session(cfg)
    s.generate_token(cache_dir=cache)
    check("generate_token sets token and SEK", bool(s._auth_token) and bool(s._auth_sek))
    check("SEK is 32 bytes", len(base64.b64decode(s._auth_sek)) == 32, s._auth_sek)
    check("generate_token made one auth call", stats(cfg)["auth_calls"] == before + 1)
    files = [f for f in os.listdir(cache) if f.endswith(".json")]
    check("token cached in cache_dir", len(files) == 1, files)
    cached = json.load(open(os.path.join(cache, files[0])))
    check("cache holds token and SEK", cached["token"] == s._auth_token and cached["sek"] == s._auth_sek)
    # TokenExpiry is India time, one hour ahead on the sandbox.
    life = nic_time(cached["expiry_time"]) - dt.datetime.now(IST)
    check("TokenExpiry is IST, 1 h ahead", dt.timedelta(minutes=55) < life <= dt.timedelta(minutes=61), life)

    # 2. Token cache reuse: a new Session with the same credentials makes no auth call.
    s2 = session(cfg)
    s2.generate_token(cache_dir=cache)
    check("cached token reused", (s2._auth_token, s2._auth_sek) == (s._auth_token, s._auth_sek))
    check("cache reuse made no auth call", stats(cfg)["auth_calls"] == before + 1)
    # Forced: a real auth call, and NIC answers with the same live token outside its last 10 minutes.
    s2.generate_token(force_regenerate_token=True, cache_dir=cache)
    check("forced refresh calls auth", stats(cfg)["auth_calls"] == before + 2)
    check("forced refresh keeps the live token", (s2._auth_token, s2._auth_sek) == (s._auth_token, s._auth_sek))
    # A wrong password is refused with NIC's code, the way gst_irn reports it.
    msg, answer = failure(session(cfg, cfg["wrong_password"]).generate_token, cache_dir=cache + "-wrong")
    check("wrong password: action failed 1008", msg == "action failed" and "1008" in error_codes(answer), answer)

    # 3. get_gst_info, and gst_irn's converter to BuyerDtls.
    buyer = cfg["buyer_gstin"]
    info = s.get_gst_info(buyer)
    check("get_gst_info answers for the GSTIN", info.get("Gstin") == buyer, info)
    check("get_gst_info status and state", info.get("Status") == "ACT" and int(info["StateCode"]) == int(buyer[:2]), info)
    pos = buyer[:2]
    buyer_dtls = to_buyer(info, pos)
    check("to_buyer builds BuyerDtls", buyer_dtls["Gstin"] == buyer and buyer_dtls["Stcd"] == str(int(buyer[:2])) and buyer_dtls["Addr1"] and buyer_dtls["LglNm"], buyer_dtls)

    # 4. generate_e_invoice for a sample invoice built with gst_irn's generators.
    doc_no = "GI/" + uuid.uuid4().hex[:10].upper()
    doc_dt = dt.datetime.now(IST).strftime("%d/%m/%Y")
    invoice = get_invoice(
        tran_dtls=get_tran_dtls(),
        doc_dtls=get_doc_dtls(typ="INV", no=doc_no, dt=doc_dt),
        seller_dtls=get_seller_dtls(
            gstin=cfg["gstin"], lgl_nm="Conformance Seller Pvt Ltd", addr1="1 MG Road",
            loc="Bengaluru", pin=560001, stcd="29",
        ),
        buyer_dtls=buyer_dtls,
        item_list=[
            get_item(
                sl_no="1", is_servc="Y", hsn_cd="998431", qty=1, unit="OTH", unit_price=1000,
                tot_amt=1000, ass_amt=1000, gst_rt=18.0, igst_amt=180, tot_item_val=1180,
            )
        ],
        val_dtls=get_val_dtls(ass_val=1000, igst_val=180, tot_inv_val=1180),
        # As in gst_irn's own tests: a distance alone makes no e-way bill, so the IRN stays cancellable.
        ewb_dtls=get_ewb_dtls(distance=10),
    )
    einv = s.generate_e_invoice(invoice)
    irn = einv.get("Irn", "")
    check("generate: Irn is 64 hex", re.fullmatch(r"[0-9a-f]{64}", irn) is not None, einv)
    check("generate: AckNo is a number", isinstance(einv.get("AckNo"), int) and einv["AckNo"] > 0, einv)
    ack_age = dt.datetime.now(IST) - nic_time(einv["AckDt"])
    check("generate: AckDt is IST now", dt.timedelta(minutes=-1) < ack_age < dt.timedelta(minutes=5), einv["AckDt"])
    check("generate: Status ACT", einv.get("Status") == "ACT", einv)
    check("generate: no e-way bill for a bare distance", einv.get("EwbNo") is None, einv)
    signed = verify_jwt(einv["SignedInvoice"], cfg)
    check("SignedInvoice is the invoice plus Irn/AckNo/AckDt",
          signed["Irn"] == irn and signed["AckNo"] == einv["AckNo"] and signed["AckDt"] == einv["AckDt"]
          and signed["DocDtls"] == invoice["DocDtls"] and signed["BuyerDtls"] == buyer_dtls
          and signed["ValDtls"]["TotInvVal"] == 1180, signed)
    qr_data = verify_jwt(einv["SignedQRCode"], cfg)
    expected_qr = {
        "SellerGstin": cfg["gstin"], "BuyerGstin": buyer, "DocNo": doc_no, "DocTyp": "INV", "DocDt": doc_dt,
        "TotInvVal": 1180, "ItemCnt": 1, "MainHsnCode": "998431", "Irn": irn, "IrnDt": einv["AckDt"],
    }
    check("SignedQRCode carries NIC's QR fields", qr_data == expected_qr, qr_data)

    # 5. The duplicate: 2150 with InfoDtls, read the way gst_irn's tests read it.
    msg, answer = failure(s.generate_e_invoice, invoice)
    check("duplicate: action failed, Status 0", msg == "action failed" and answer["Status"] == 0, answer)
    check("duplicate: ErrorCode 2150", error_codes(answer) == ["2150"], answer)
    check("duplicate: InfoDtls[0].Desc.Irn", answer["InfoDtls"][0]["Desc"]["Irn"] == irn, answer)
    desc = answer["InfoDtls"][0]
    check("duplicate: DUPIRN with AckNo and AckDt",
          desc["InfCd"] == "DUPIRN" and desc["Desc"]["AckNo"] == einv["AckNo"] and desc["Desc"]["AckDt"] == einv["AckDt"], desc)

    # 6. get_e_invoice_by_irn returns what generate returned (gst_irn's test compares them whole).
    check("get_e_invoice_by_irn equals generate", s.get_e_invoice_by_irn(irn) == einv)

    # 7. By-document lookup through session.get, as gst_irn's tests do.
    by_doc = s.get(f"{base}/eicore/v1.03/Invoice/irnbydocdetails?doctype=INV&docnum={doc_no}&docdate={doc_dt}")
    check("irnbydocdetails finds the IRN", by_doc.get("Irn") == irn and by_doc.get("AckNo") == einv["AckNo"], by_doc)
    msg, answer = failure(s.get, f"{base}/eicore/v1.03/Invoice/irnbydocdetails?doctype=INV&docnum=GI/NONE&docdate={doc_dt}")
    check("irnbydocdetails for an unknown document: 2154", "2154" in error_codes(answer), answer)

    # 8. The QR helper on the signed QR code.
    uri = qr.get_qr_code_image_base64(einv["SignedQRCode"])
    check("QR helper gives a PNG data URI", uri.startswith("data:image/png;base64,"), uri[:40])
    png = base64.b64decode(uri.split(",", 1)[1])
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    check("QR PNG is a square image", png[:8] == b"\x89PNG\r\n\x1a\n" and width == height and width >= 2 * (21 + 8), (width, height))
    html = qr.get_qr_code_image_html(einv["SignedQRCode"])
    check("QR HTML helper embeds it", html.startswith('<img src="data:image/png;base64,'), html[:60])
    # A second public reader of the signed QR: PyPI `einvoice` returns the JWT's claims as JSON.
    claims = json.loads(einvoice.secure_qr(einv["SignedQRCode"]))
    check("einvoice.secure_qr reads the QR claims", claims["iss"] == "NIC" and json.loads(claims["data"]) == expected_qr, claims)

    # 9. Cancel through session.post, as gst_irn's tests do, then the state and the repeat.
    cancel = s.post(f"{base}/eicore/v1.03/Invoice/Cancel", {"Irn": irn, "CnlRsn": "1", "CnlRem": "Wrong entry"})
    check("cancel answers Irn and CancelDate", cancel.get("Irn") == irn and "CancelDate" in cancel, cancel)
    check("CancelDate is IST now", abs(dt.datetime.now(IST) - nic_time(cancel["CancelDate"])) < dt.timedelta(minutes=5), cancel)
    check("get_e_invoice_by_irn after cancel: CNL", s.get_e_invoice_by_irn(irn)["Status"] == "CNL")
    msg, answer = failure(s.post, f"{base}/eicore/v1.03/Invoice/Cancel", {"Irn": irn, "CnlRsn": "1", "CnlRem": "Again"})
    check("cancel again: 9999", "9999" in error_codes(answer), answer)

    # 10. The simulator saw exactly this traffic (the cache saved an auth call; nothing was retried).
    st = stats(cfg)
    check("simulator counted the calls",
          st["auth_calls"] == before + 3 and st["generate_calls"] == 2 and st["irns_created"] == 1
          and st["cancel_calls"] == 2 and st["lookups"] == 4, st)

    print(f"irn {irn}")
    print(f"gst_irn flow: {len(PASSED)} checks passed")


if __name__ == "__main__":
    main()
