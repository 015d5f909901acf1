use super::*;
use proptest::prelude::*;
use serde_json::json;

// The eight reference samples, shared with the demo and the benchmark.
use crate::samples::SAMPLES;

fn sample(name: &str) -> Value {
    let text = SAMPLES.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no sample {name}")).1;
    serde_json::from_str(text).unwrap()
}

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn opts() -> ValidationOptions {
    ValidationOptions { today: ymd(2025, 4, 15), ..ValidationOptions::default() }
}

/// Sets the value at a JSON pointer, creating the last key if needed.
fn set(v: &mut Value, pointer: &str, new: Value) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    match v.pointer_mut(parent).unwrap_or_else(|| panic!("no {parent}")) {
        Value::Object(m) => {
            m.insert(key.to_string(), new);
        }
        Value::Array(a) => a[key.parse::<usize>().unwrap()] = new,
        _ => panic!("{parent} is not a container"),
    }
}

/// An amount as the JSON number of its decimal text (`33300.9`), as an ERP writes it.
fn amount(d: Decimal) -> Value {
    Value::Number(d.to_string().parse().unwrap())
}

fn del(v: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let removed = v.pointer_mut(parent).and_then(Value::as_object_mut).and_then(|m| m.shift_remove(key));
    assert!(removed.is_some(), "nothing at {pointer}");
}

fn problems_with(v: &Value, hint: Option<&str>, o: &ValidationOptions) -> Vec<(String, String)> {
    let mut got: Vec<(String, String)> = match validate_invoice(v, hint, o) {
        Ok(_) => vec![],
        Err(p) => p.into_iter().map(|p| (p.path, p.code)).collect(),
    };
    got.sort();
    got
}

/// Asserts exactly these (path, code) problems, nothing more.
#[track_caller]
fn expect_with(v: &Value, hint: Option<&str>, o: &ValidationOptions, expected: &[(&str, &str)]) {
    let got = problems_with(v, hint, o);
    let mut want: Vec<(String, String)> = expected.iter().map(|(p, c)| (p.to_string(), c.to_string())).collect();
    want.sort();
    if got != want {
        let detail = match validate_invoice(v, hint, o) {
            Ok(_) => "(valid)".to_string(),
            Err(p) => p.iter().map(|p| format!("\n  {p}")).collect(),
        };
        panic!("expected {want:?}\n     got {got:?}{detail}");
    }
}

#[track_caller]
fn expect(v: &Value, expected: &[(&str, &str)]) {
    expect_with(v, None, &opts(), expected);
}

/// Breaks one sample with `f` and expects exactly `expected`.
#[track_caller]
fn broken(name: &str, f: impl FnOnce(&mut Value), expected: &[(&str, &str)]) {
    let mut v = sample(name);
    f(&mut v);
    expect(&v, expected);
}

// ---- happy path ---------------------------------------------------------

#[test]
fn all_samples_pass() {
    for (name, _) in SAMPLES {
        let v = sample(name);
        let ok = validate_invoice(&v, None, &opts()).unwrap_or_else(|p| panic!("{name}: {p:#?}"));
        // Nothing to normalize in the samples: the payload is unchanged.
        assert_eq!(ok.irp_json(), v, "{name}");
        assert_eq!(ok.key().financial_year.to_string(), "2025-26");
        assert_eq!(ok.doc_date().to_string(), "01/04/2025");
    }
}

#[test]
fn valid_invoice_accessors() {
    let v = sample("b2b-intra-goods");
    let ok = validate_invoice(&v, Some(" 29aagcp4821k1z3 "), &opts()).unwrap();
    assert_eq!(ok.key().to_string(), "29AAGCP4821K1Z3/INV/SMP/0001/2025-26");
    assert_eq!(ok.seller_gstin().as_str(), "29AAGCP4821K1Z3");
    assert_eq!(ok.buyer_gstin(), "29AADCT5519H1Z4");
    assert_eq!(ok.total_invoice_value(), money::parse("39441.50").unwrap());
    assert_eq!(ok.item_count(), 2);
    assert_eq!(ok.main_hsn(), "73079190");
    assert_eq!(ok.supply_type(), SupplyType::B2b);
    assert_eq!(ok.key().irn().len(), 64);

    let ok = validate_invoice(&sample("export-with-payment"), None, &opts()).unwrap();
    assert_eq!(ok.buyer_gstin(), "URP");
    assert_eq!(ok.supply_type(), SupplyType::ExportWithPayment);

    let ok = validate_invoice(&sample("b2b-30-items-roundoff"), None, &opts()).unwrap();
    assert_eq!(ok.item_count(), 30);
    assert_eq!(ok.total_invoice_value(), money::parse("41880").unwrap());
    assert_eq!(ok.main_hsn(), "84839000");
}

#[test]
fn main_hsn_is_line_with_highest_assessable_amount() {
    let mut v = sample("b2b-30-items-roundoff");
    let items = v["ItemList"].as_array().unwrap();
    let (best, _) =
        items.iter().enumerate().max_by_key(|(_, item)| money::from_json(&item["AssAmt"]).unwrap()).unwrap();
    assert_ne!(best, 0, "the test needs the largest line somewhere else than first");
    set(&mut v, &format!("/ItemList/{best}/HsnCd"), json!("8484"));
    let ok = validate_invoice(&v, None, &opts()).unwrap();
    assert_eq!(ok.main_hsn(), "8484");
}

#[test]
fn numeric_strings_and_codes_are_normalized() {
    let mut v = sample("b2b-intra-goods");
    set(&mut v, "/SellerDtls/Pin", json!(" 560058 "));
    set(&mut v, "/SellerDtls/Stcd", json!(" 29 "));
    set(&mut v, "/SellerDtls/Gstin", json!("29aagcp4821k1z3"));
    set(&mut v, "/BuyerDtls/Pos", json!("29 "));
    set(&mut v, "/TranDtls/SupTyp", json!("b2b"));
    set(&mut v, "/TranDtls/RegRev", json!("n"));
    set(&mut v, "/TranDtls/TaxSch", json!("gst"));
    set(&mut v, "/DocDtls/Typ", json!("inv"));
    set(&mut v, "/DocDtls/No", json!(" smp/0001 "));
    set(&mut v, "/DocDtls/Dt", json!(" 01/04/2025"));
    set(&mut v, "/ItemList/0/Unit", json!("nos"));
    set(&mut v, "/ItemList/0/IsServc", json!("n"));
    set(&mut v, "/ItemList/0/AssAmt", json!("24050.00"));
    set(&mut v, "/ItemList/0/GstRt", json!("18"));
    set(&mut v, "/ItemList/0/Qty", json!("40"));
    set(&mut v, "/ItemList/0/Discount", json!(""));
    set(&mut v, "/ItemList/0/TotAmt", json!("24050"));
    set(&mut v, "/ValDtls/TotInvVal", json!("39441.50"));
    set(&mut v, "/CustomField", json!({"keep": " me "}));
    set(&mut v, "/SellerDtls/LglNm", json!("  Prakash Engineering Works Pvt Ltd "));
    let ok = validate_invoice(&v, None, &opts()).unwrap();
    let j = ok.irp_json();
    assert_eq!(j["SellerDtls"]["Pin"], json!(560058));
    assert!(j["SellerDtls"]["Pin"].is_u64());
    assert_eq!(j["SellerDtls"]["Stcd"], json!("29"));
    assert_eq!(j["SellerDtls"]["Gstin"], json!("29AAGCP4821K1Z3"));
    assert_eq!(j["BuyerDtls"]["Pos"], json!("29"));
    assert_eq!(j["TranDtls"]["SupTyp"], json!("B2B"));
    assert_eq!(j["TranDtls"]["RegRev"], json!("N"));
    assert_eq!(j["TranDtls"]["TaxSch"], json!("GST"));
    assert_eq!(j["DocDtls"]["Typ"], json!("INV"));
    // Document numbers are trimmed but never upper-cased.
    assert_eq!(j["DocDtls"]["No"], json!("smp/0001"));
    assert_eq!(j["DocDtls"]["Dt"], json!("01/04/2025"));
    assert_eq!(j["ItemList"][0]["Unit"], json!("NOS"));
    assert_eq!(j["ItemList"][0]["IsServc"], json!("N"));
    assert_eq!(j["ItemList"][0]["AssAmt"], json!(24050.0));
    assert_eq!(j["ItemList"][0]["GstRt"], json!(18));
    assert_eq!(j["ItemList"][0]["Qty"], json!(40));
    assert!(j["ItemList"][0].get("Discount").is_none(), "blank optional number dropped");
    assert_eq!(j["ValDtls"]["TotInvVal"], json!(39441.5));
    // Unknown fields and free text pass through untouched.
    assert_eq!(j["CustomField"], json!({"keep": " me "}));
    assert_eq!(j["SellerDtls"]["LglNm"], json!("  Prakash Engineering Works Pvt Ltd "));
    // The IRN follows the upper-cased number, like NIC's uniqueness check.
    let plain = validate_invoice(&sample("b2b-intra-goods"), None, &opts()).unwrap();
    assert_eq!(ok.key().irn(), plain.key().irn());
    assert_eq!(ok.key().doc_number.as_str(), "smp/0001");
}

// ---- shape ------------------------------------------------------------------

#[test]
fn root_must_be_an_object() {
    for v in [json!([]), json!("x"), json!(null), json!(1), json!(true)] {
        expect(&v, &[("", "INVALID_TYPE")]);
    }
}

#[test]
fn version() {
    broken("b2b-intra-goods", |v| set(v, "/Version", json!("1.0")), &[("Version", "UNSUPPORTED_VERSION")]);
    broken("b2b-intra-goods", |v| del(v, "/Version"), &[("Version", "REQUIRED")]);
    broken("b2b-intra-goods", |v| set(v, "/Version", json!(1.1)), &[("Version", "INVALID_TYPE")]);
}

#[test]
fn required_sections() {
    for s in ["TranDtls", "DocDtls", "SellerDtls", "BuyerDtls", "ItemList", "ValDtls"] {
        broken("b2b-intra-goods", |v| del(v, &format!("/{s}")), &[(s, "REQUIRED")]);
        broken("b2b-intra-goods", |v| set(v, &format!("/{s}"), json!(null)), &[(s, "REQUIRED")]);
    }
}

#[test]
fn section_of_wrong_type() {
    for s in ["TranDtls", "DocDtls", "SellerDtls", "BuyerDtls", "ItemList", "ValDtls", "ShipDtls", "ExpDtls"] {
        broken("b2b-intra-goods", |v| set(v, &format!("/{s}"), json!("oops")), &[(s, "INVALID_TYPE")]);
    }
    broken("b2b-intra-goods", |v| set(v, "/ItemList", json!({})), &[("ItemList", "INVALID_TYPE")]);
    broken("b2b-intra-goods", |v| set(v, "/ItemList/1", json!(42)), &[("ItemList[1]", "INVALID_TYPE")]);
}

#[test]
fn required_fields() {
    let cases: &[(&str, &str)] = &[
        ("/TranDtls/TaxSch", "TranDtls.TaxSch"),
        ("/TranDtls/SupTyp", "TranDtls.SupTyp"),
        ("/DocDtls/Typ", "DocDtls.Typ"),
        ("/DocDtls/No", "DocDtls.No"),
        ("/DocDtls/Dt", "DocDtls.Dt"),
        ("/SellerDtls/Gstin", "SellerDtls.Gstin"),
        ("/SellerDtls/LglNm", "SellerDtls.LglNm"),
        ("/SellerDtls/Addr1", "SellerDtls.Addr1"),
        ("/SellerDtls/Loc", "SellerDtls.Loc"),
        ("/SellerDtls/Pin", "SellerDtls.Pin"),
        ("/SellerDtls/Stcd", "SellerDtls.Stcd"),
        ("/BuyerDtls/Gstin", "BuyerDtls.Gstin"),
        ("/BuyerDtls/LglNm", "BuyerDtls.LglNm"),
        ("/BuyerDtls/Pos", "BuyerDtls.Pos"),
        ("/BuyerDtls/Addr1", "BuyerDtls.Addr1"),
        ("/BuyerDtls/Loc", "BuyerDtls.Loc"),
        ("/BuyerDtls/Pin", "BuyerDtls.Pin"),
        ("/BuyerDtls/Stcd", "BuyerDtls.Stcd"),
        ("/ItemList/1/SlNo", "ItemList[1].SlNo"),
        ("/ItemList/1/IsServc", "ItemList[1].IsServc"),
        ("/ItemList/1/HsnCd", "ItemList[1].HsnCd"),
        ("/ItemList/1/UnitPrice", "ItemList[1].UnitPrice"),
        ("/ItemList/1/TotAmt", "ItemList[1].TotAmt"),
        ("/ItemList/1/AssAmt", "ItemList[1].AssAmt"),
        ("/ItemList/1/GstRt", "ItemList[1].GstRt"),
        ("/ItemList/1/TotItemVal", "ItemList[1].TotItemVal"),
        ("/ValDtls/AssVal", "ValDtls.AssVal"),
        ("/ValDtls/TotInvVal", "ValDtls.TotInvVal"),
    ];
    for (ptr, path) in cases {
        broken("b2b-intra-goods", |v| del(v, ptr), &[(path, "REQUIRED")]);
        // Blank text (or a blank numeric string) counts as missing too.
        broken("b2b-intra-goods", |v| set(v, ptr, json!("  ")), &[(path, "REQUIRED")]);
    }
}

#[test]
fn field_types() {
    broken("b2b-intra-goods", |v| set(v, "/SellerDtls/LglNm", json!(12345)), &[("SellerDtls.LglNm", "INVALID_TYPE")]);
    broken("b2b-intra-goods", |v| set(v, "/ItemList/0/AssAmt", json!(true)), &[("ItemList[0].AssAmt", "INVALID_TYPE")]);
    broken(
        "b2b-intra-goods",
        |v| set(v, "/ItemList/0/AssAmt", json!("24,050")),
        &[("ItemList[0].AssAmt", "INVALID_TYPE")],
    );
    broken(
        "b2b-intra-goods",
        |v| set(v, "/ItemList/0/CgstAmt", json!("1e3")),
        &[("ItemList[0].CgstAmt", "INVALID_TYPE")],
    );
    broken(
        "b2b-intra-goods",
        |v| set(v, "/ItemList/0/HsnCd", json!(73079190)),
        &[("ItemList[0].HsnCd", "INVALID_TYPE")],
    );
    broken("b2b-intra-goods", |v| set(v, "/SellerDtls/Stcd", json!(29)), &[("SellerDtls.Stcd", "INVALID_TYPE")]);
    broken("b2b-intra-goods", |v| set(v, "/ValDtls/RndOffAmt", json!([0])), &[("ValDtls.RndOffAmt", "INVALID_TYPE")]);
}

#[test]
fn negative_amounts() {
    broken("b2b-intra-goods", |v| set(v, "/ValDtls/Discount", json!(-5)), &[("ValDtls.Discount", "NEGATIVE_VALUE")]);
    broken("b2b-intra-goods", |v| set(v, "/ItemList/0/Qty", json!("-40")), &[("ItemList[0].Qty", "NEGATIVE_VALUE")]);
}

#[test]
fn text_lengths() {
    broken("b2b-intra-goods", |v| set(v, "/SellerDtls/LglNm", json!("AB")), &[("SellerDtls.LglNm", "TEXT_LENGTH")]);
    broken(
        "b2b-intra-goods",
        |v| set(v, "/BuyerDtls/Addr1", json!("x".repeat(101))),
        &[("BuyerDtls.Addr1", "TEXT_LENGTH")],
    );
    broken("b2b-intra-goods", |v| set(v, "/SellerDtls/Ph", json!("123")), &[("SellerDtls.Ph", "TEXT_LENGTH")]);
}

// ---- transaction ------------------------------------------------------------

#[test]
fn tax_scheme() {
    broken(
        "b2b-intra-goods",
        |v| set(v, "/TranDtls/TaxSch", json!("VAT")),
        &[("TranDtls.TaxSch", "INVALID_TAX_SCHEME")],
    );
}

#[test]
fn supply_type() {
    broken(
        "b2b-intra-goods",
        |v| set(v, "/TranDtls/SupTyp", json!("B2C")),
        &[("TranDtls.SupTyp", "INVALID_SUPPLY_TYPE")],
    );
}

#[test]
fn yes_no_flags() {
    broken("b2b-intra-goods", |v| set(v, "/TranDtls/RegRev", json!("X")), &[("TranDtls.RegRev", "INVALID_FLAG")]);
    broken(
        "b2b-intra-goods",
        |v| set(v, "/TranDtls/IgstOnIntra", json!("yes")),
        &[("TranDtls.IgstOnIntra", "INVALID_FLAG")],
    );
    broken(
        "b2b-intra-goods",
        |v| set(v, "/ItemList/0/IsServc", json!("G")),
        &[("ItemList[0].IsServc", "INVALID_FLAG")],
    );
    broken("export-with-payment", |v| set(v, "/ExpDtls/RefClm", json!("0")), &[("ExpDtls.RefClm", "INVALID_FLAG")]);
    // Optional flags may be left out.
    broken(
        "b2b-intra-goods",
        |v| {
            del(v, "/TranDtls/RegRev");
            del(v, "/TranDtls/IgstOnIntra");
            set(v, "/TranDtls/IgstOnIntra", json!(""))
        },
        &[],
    );
}

// ---- document -------------------------------------------------------------

#[test]
fn doc_type() {
    broken("b2b-intra-goods", |v| set(v, "/DocDtls/Typ", json!("BIL")), &[("DocDtls.Typ", "INVALID_DOC_TYPE")]);
}

#[test]
fn doc_number() {
    broken("b2b-intra-goods", |v| set(v, "/DocDtls/No", json!("0001")), &[("DocDtls.No", "DOC_NUMBER_START")]);
    broken("b2b-intra-goods", |v| set(v, "/DocDtls/No", json!("/SMP1")), &[("DocDtls.No", "DOC_NUMBER_START")]);
    broken("b2b-intra-goods", |v| set(v, "/DocDtls/No", json!("-SMP1")), &[("DocDtls.No", "DOC_NUMBER_START")]);
    broken("b2b-intra-goods", |v| set(v, "/DocDtls/No", json!("SMP_0001")), &[("DocDtls.No", "DOC_NUMBER_CHARS")]);
    broken(
        "b2b-intra-goods",
        |v| set(v, "/DocDtls/No", json!("SMP/2025-26/00001")),
        &[("DocDtls.No", "DOC_NUMBER_LENGTH")],
    );
    broken("b2b-intra-goods", |v| set(v, "/DocDtls/No", json!("SMP/2025-26/0001")), &[]);
}

#[test]
fn doc_date_format_and_calendar() {
    broken("b2b-intra-goods", |v| set(v, "/DocDtls/Dt", json!("2025-04-01")), &[("DocDtls.Dt", "DATE_FORMAT")]);
    broken("b2b-intra-goods", |v| set(v, "/DocDtls/Dt", json!("1/4/2025")), &[("DocDtls.Dt", "DATE_FORMAT")]);
    broken("b2b-intra-goods", |v| set(v, "/DocDtls/Dt", json!("31/04/2025")), &[("DocDtls.Dt", "DATE_INVALID")]);
}

#[test]
fn doc_date_not_in_future() {
    broken("b2b-intra-goods", |v| set(v, "/DocDtls/Dt", json!("16/04/2025")), &[("DocDtls.Dt", "DATE_IN_FUTURE")]);
    broken("b2b-intra-goods", |v| set(v, "/DocDtls/Dt", json!("15/04/2025")), &[]);
}

#[test]
fn doc_date_not_before_einvoicing() {
    broken(
        "b2b-intra-goods",
        |v| set(v, "/DocDtls/Dt", json!("30/09/2020")),
        &[("DocDtls.Dt", "DATE_BEFORE_EINVOICE_START")],
    );
    broken("b2b-intra-goods", |v| set(v, "/DocDtls/Dt", json!("01/10/2020")), &[]);
}

#[test]
fn doc_date_reporting_window() {
    let v = sample("b2b-intra-goods"); // dated 01/04/2025
    let mut o = opts();
    o.reporting_window_days = Some(30);
    o.today = ymd(2025, 5, 1); // exactly 30 days later: still fine
    expect_with(&v, None, &o, &[]);
    o.today = ymd(2025, 5, 2);
    expect_with(&v, None, &o, &[("DocDtls.Dt", "DATE_OUTSIDE_REPORTING_WINDOW")]);
    o.reporting_window_days = None;
    expect_with(&v, None, &o, &[]);
}

// ---- parties --------------------------------------------------------------

#[test]
fn gstin_check_digit() {
    broken(
        "b2b-intra-goods",
        |v| set(v, "/SellerDtls/Gstin", json!("29AAGCP4821K1Z4")),
        &[("SellerDtls.Gstin", "GSTIN_CHECK_DIGIT")],
    );
    broken(
        "b2b-intra-goods",
        |v| set(v, "/BuyerDtls/Gstin", json!("29AADCT5519H1Z5")),
        &[("BuyerDtls.Gstin", "GSTIN_CHECK_DIGIT")],
    );
}

#[test]
fn gstin_format_and_state() {
    broken(
        "b2b-intra-goods",
        |v| set(v, "/BuyerDtls/Gstin", json!("29AADCT5519H1Z")),
        &[("BuyerDtls.Gstin", "GSTIN_FORMAT")],
    );
    broken(
        "b2b-intra-goods",
        |v| set(v, "/BuyerDtls/Gstin", json!("29AADCT5519H1@4")),
        &[("BuyerDtls.Gstin", "GSTIN_FORMAT")],
    );
    // A seller can never be URP.
    broken("b2b-intra-goods", |v| set(v, "/SellerDtls/Gstin", json!("URP")), &[("SellerDtls.Gstin", "GSTIN_FORMAT")]);
    let mut g = String::from("28AADCT5519H1Z");
    g.push(crate::domain::gstin::check_digit(&g).unwrap());
    broken("b2b-intra-goods", |v| set(v, "/BuyerDtls/Gstin", json!(g)), &[("BuyerDtls.Gstin", "GSTIN_STATE_CODE")]);
}

#[test]
fn other_gstins_are_checked() {
    broken(
        "b2b-inter-goods-ewb",
        |v| set(v, "/EwbDtls/TransId", json!("27AABCV9876P1Z8")),
        &[("EwbDtls.TransId", "GSTIN_CHECK_DIGIT")],
    );
    broken(
        "b2b-intra-goods",
        |v| set(v, "/TranDtls/EcmGstin", json!("29AAGCP4821K1C")),
        &[("TranDtls.EcmGstin", "GSTIN_FORMAT")],
    );
    let ship = json!({"Gstin": "29AADCT5519H1Z5", "LglNm": "Tumkur Auto Components Ltd", "Addr1": "Plant 2", "Loc": "Tumakuru", "Pin": 572106, "Stcd": "29"});
    broken("b2b-intra-goods", |v| set(v, "/ShipDtls", ship), &[("ShipDtls.Gstin", "GSTIN_CHECK_DIGIT")]);
}

#[test]
fn sandbox_gstins_need_relaxed_mode() {
    let mut v = sample("b2b-inter-services");
    set(&mut v, "/SellerDtls/Gstin", json!("29AWGPV7107B1Z1"));
    set(&mut v, "/BuyerDtls/Gstin", json!("36AMBPG7773M002"));
    set(&mut v, "/BuyerDtls/Stcd", json!("36"));
    set(&mut v, "/BuyerDtls/Pos", json!("36"));
    set(&mut v, "/BuyerDtls/Pin", json!(500032));
    expect(&v, &[("SellerDtls.Gstin", "GSTIN_CHECK_DIGIT"), ("BuyerDtls.Gstin", "GSTIN_FORMAT")]);
    let o = ValidationOptions { relaxed_gstin_check_digit: true, ..opts() };
    expect_with(&v, Some("29AWGPV7107B1Z1"), &o, &[]);
}

#[test]
fn seller_gstin_must_match_envelope() {
    let v = sample("b2b-intra-goods");
    expect_with(&v, Some("27AAKFU7303M1ZP"), &opts(), &[("SellerDtls.Gstin", "SELLER_GSTIN_MISMATCH")]);
    expect_with(&v, Some("29aagcp4821k1z3"), &opts(), &[]);
}

#[test]
fn urp_only_for_exports() {
    broken("b2b-intra-goods", |v| set(v, "/BuyerDtls/Gstin", json!("URP")), &[("BuyerDtls.Gstin", "URP_NOT_ALLOWED")]);
    broken(
        "sez-without-payment",
        |v| set(v, "/BuyerDtls/Gstin", json!("urp")),
        &[("BuyerDtls.Gstin", "URP_NOT_ALLOWED")],
    );
    // EXPWOP is an export too (with IGST 0 under LUT).
    broken(
        "export-with-payment",
        |v| {
            set(v, "/TranDtls/SupTyp", json!("EXPWOP"));
            set(v, "/ItemList/0/IgstAmt", json!(0));
            set(v, "/ItemList/0/TotItemVal", json!(820000));
            set(v, "/ValDtls/IgstVal", json!(0));
            set(v, "/ValDtls/TotInvVal", json!(820000));
        },
        &[],
    );
}

#[test]
fn gstin_state_must_match_stcd() {
    // Telangana (36) has no PIN mapping, so only the GSTIN/state rule fires.
    broken(
        "b2b-inter-services",
        |v| set(v, "/SellerDtls/Stcd", json!("36")),
        &[("SellerDtls.Stcd", "GSTIN_STATE_MISMATCH")],
    );
    broken(
        "b2b-inter-goods-ewb",
        |v| set(v, "/BuyerDtls/Stcd", json!("36")),
        &[("BuyerDtls.Stcd", "GSTIN_STATE_MISMATCH")],
    );
    // Not for an export buyer, whose address is abroad.
    broken("export-with-payment", |v| set(v, "/BuyerDtls/Gstin", json!("33AAFCR6612L1ZA")), &[]);
}

#[test]
fn seller_and_buyer_differ() {
    broken(
        "b2b-intra-goods",
        |v| set(v, "/BuyerDtls/Gstin", json!("29AAGCP4821K1Z3")),
        &[("BuyerDtls.Gstin", "SAME_SELLER_BUYER")],
    );
}

#[test]
fn state_codes() {
    broken(
        "b2b-intra-goods",
        |v| set(v, "/SellerDtls/Stcd", json!("28")),
        &[("SellerDtls.Stcd", "INVALID_STATE_CODE")],
    );
    broken("b2b-intra-goods", |v| set(v, "/BuyerDtls/Pos", json!("00")), &[("BuyerDtls.Pos", "INVALID_STATE_CODE")]);
    broken(
        "b2b-intra-goods",
        |v| set(v, "/BuyerDtls/Stcd", json!("Karnataka")),
        &[("BuyerDtls.Stcd", "INVALID_STATE_CODE")],
    );
}

#[test]
fn pin_format() {
    broken("b2b-intra-goods", |v| set(v, "/SellerDtls/Pin", json!(56005)), &[("SellerDtls.Pin", "PIN_FORMAT")]);
    broken("b2b-intra-goods", |v| set(v, "/SellerDtls/Pin", json!("056005")), &[("SellerDtls.Pin", "PIN_FORMAT")]);
    broken("b2b-intra-goods", |v| set(v, "/BuyerDtls/Pin", json!(572128.5)), &[("BuyerDtls.Pin", "PIN_FORMAT")]);
    broken("b2b-intra-goods", |v| set(v, "/BuyerDtls/Pin", json!(1_000_000)), &[("BuyerDtls.Pin", "PIN_FORMAT")]);
    broken("b2b-intra-goods", |v| set(v, "/BuyerDtls/Pin", json!("57212A")), &[("BuyerDtls.Pin", "INVALID_TYPE")]);
}

#[test]
fn pin_must_fit_state() {
    broken(
        "b2b-intra-goods",
        |v| set(v, "/SellerDtls/Pin", json!(400001)),
        &[("SellerDtls.Pin", "PIN_STATE_MISMATCH")],
    );
    broken(
        "b2b-inter-goods-ewb",
        |v| set(v, "/BuyerDtls/Pin", json!(560001)),
        &[("BuyerDtls.Pin", "PIN_STATE_MISMATCH")],
    );
    // A foreign PIN 999999 is not fine for an Indian seller.
    broken(
        "export-with-payment",
        |v| set(v, "/SellerDtls/Pin", json!(999999)),
        &[("SellerDtls.Pin", "PIN_STATE_MISMATCH")],
    );
}

#[test]
fn dispatch_and_ship_to() {
    let disp = json!({"Nm": "Prakash Works Unit 2", "Addr1": "Plot 7, Bommasandra", "Loc": "Bengaluru", "Pin": 560099, "Stcd": "29"});
    let ship = json!({"Gstin": "29AADCT5519H1Z4", "LglNm": "Tumkur Auto Components Ltd", "Addr1": "Plant 2", "Loc": "Tumakuru", "Pin": "572106", "Stcd": "29"});
    broken(
        "b2b-intra-goods",
        |v| {
            set(v, "/DispDtls", disp.clone());
            set(v, "/ShipDtls", ship.clone())
        },
        &[],
    );
    broken(
        "b2b-intra-goods",
        |v| {
            set(v, "/DispDtls", disp.clone());
            set(v, "/DispDtls/Pin", json!(110001))
        },
        &[("DispDtls.Pin", "PIN_STATE_MISMATCH")],
    );
    broken(
        "b2b-intra-goods",
        |v| {
            set(v, "/ShipDtls", ship.clone());
            set(v, "/ShipDtls/Stcd", json!("07"))
        },
        &[("ShipDtls.Pin", "PIN_STATE_MISMATCH")],
    );
    broken(
        "b2b-intra-goods",
        |v| {
            set(v, "/ShipDtls", ship.clone());
            set(v, "/ShipDtls/Stcd", json!("77"))
        },
        &[("ShipDtls.Stcd", "INVALID_STATE_CODE")],
    );
    // An unregistered ship-to address is fine even on B2B.
    broken(
        "b2b-intra-goods",
        |v| {
            set(v, "/ShipDtls", ship.clone());
            set(v, "/ShipDtls/Gstin", json!("URP"))
        },
        &[],
    );
    broken(
        "b2b-intra-goods",
        |v| set(v, "/DispDtls", json!({})),
        &[
            ("DispDtls.Nm", "REQUIRED"),
            ("DispDtls.Addr1", "REQUIRED"),
            ("DispDtls.Loc", "REQUIRED"),
            ("DispDtls.Pin", "REQUIRED"),
            ("DispDtls.Stcd", "REQUIRED"),
        ],
    );
}

#[test]
fn export_buyer_abroad() {
    // Stcd/Pos 96 and PIN 999999 are how a foreign buyer is written.
    broken("export-with-payment", |v| set(v, "/BuyerDtls/Pos", json!("96")), &[]);
    broken(
        "export-with-payment",
        |v| set(v, "/ExpDtls/CntCode", json!("DEU")),
        &[("ExpDtls.CntCode", "INVALID_COUNTRY_CODE")],
    );
    broken(
        "export-with-payment",
        |v| set(v, "/ExpDtls/ForCur", json!("EURO")),
        &[("ExpDtls.ForCur", "INVALID_CURRENCY")],
    );
    broken(
        "export-with-payment",
        |v| set(v, "/ExpDtls/ShipBDt", json!("2025/04/01")),
        &[("ExpDtls.ShipBDt", "DATE_FORMAT")],
    );
    // ExpDtls carries the export's mandatory country; codes are upper-cased.
    broken("export-with-payment", |v| del(v, "/ExpDtls"), &[("ExpDtls.CntCode", "REQUIRED")]);
    let mut v = sample("export-with-payment");
    set(&mut v, "/ExpDtls/CntCode", json!("de"));
    let ok = validate_invoice(&v, None, &opts()).unwrap();
    assert_eq!(ok.irp_json()["ExpDtls"]["CntCode"], json!("DE"));
}

#[test]
fn other_dates_must_be_well_formed() {
    broken(
        "b2b-inter-goods-ewb",
        |v| set(v, "/EwbDtls/TransDocDt", json!("32/01/2025")),
        &[("EwbDtls.TransDocDt", "DATE_INVALID")],
    );
    broken(
        "credit-note",
        |v| set(v, "/RefDtls/PrecDocDtls/0/InvDt", json!("2025-04-01")),
        &[("RefDtls.PrecDocDtls[0].InvDt", "DATE_FORMAT")],
    );
}

// ---- items -----------------------------------------------------------------

#[test]
fn item_count() {
    broken("b2b-intra-goods", |v| set(v, "/ItemList", json!([])), &[("ItemList", "ITEM_COUNT")]);
    let v = sample("b2b-intra-goods");
    let o = ValidationOptions { max_items: 1, ..opts() };
    expect_with(&v, None, &o, &[("ItemList", "ITEM_COUNT")]);
    let o = ValidationOptions { max_items: 2, ..opts() };
    expect_with(&v, None, &o, &[]);
}

#[test]
fn serial_numbers() {
    broken("b2b-intra-goods", |v| set(v, "/ItemList/1/SlNo", json!("1")), &[("ItemList[1].SlNo", "DUPLICATE_SLNO")]);
    broken("b2b-intra-goods", |v| set(v, "/ItemList/1/SlNo", json!("A2")), &[("ItemList[1].SlNo", "SLNO_FORMAT")]);
    broken("b2b-intra-goods", |v| set(v, "/ItemList/1/SlNo", json!(2)), &[("ItemList[1].SlNo", "INVALID_TYPE")]);
}

#[test]
fn hsn_format() {
    for bad in ["7307919", "73", "7307919A", "730791900"] {
        broken("b2b-intra-goods", |v| set(v, "/ItemList/0/HsnCd", json!(bad)), &[("ItemList[0].HsnCd", "HSN_FORMAT")]);
    }
    for good in ["7307", "730791", "73079190"] {
        broken("b2b-intra-goods", |v| set(v, "/ItemList/0/HsnCd", json!(good)), &[]);
    }
}

#[test]
fn hsn_matches_service_flag() {
    broken(
        "b2b-inter-services",
        |v| set(v, "/ItemList/0/HsnCd", json!("84839000")),
        &[("ItemList[0].HsnCd", "HSN_SERVICE_MISMATCH")],
    );
    broken(
        "b2b-intra-goods",
        |v| set(v, "/ItemList/0/HsnCd", json!("998719")),
        &[("ItemList[0].HsnCd", "HSN_SERVICE_MISMATCH")],
    );
}

#[test]
fn goods_need_quantity_and_unit() {
    broken("b2b-intra-goods", |v| del(v, "/ItemList/0/Qty"), &[("ItemList[0].Qty", "REQUIRED")]);
    broken("b2b-intra-goods", |v| del(v, "/ItemList/0/Unit"), &[("ItemList[0].Unit", "REQUIRED")]);
    broken("b2b-intra-goods", |v| set(v, "/ItemList/0/Unit", json!("PIECES")), &[("ItemList[0].Unit", "INVALID_UNIT")]);
    // Services may have neither, but a unit given must still be valid.
    broken("b2b-inter-services", |v| set(v, "/ItemList/0/Unit", json!("HRS")), &[("ItemList[0].Unit", "INVALID_UNIT")]);
    broken("b2b-inter-services", |v| set(v, "/ItemList/0/Unit", json!("oth")), &[]);
}

#[test]
fn gst_rate_master() {
    broken("b2b-intra-goods", |v| set(v, "/ItemList/1/GstRt", json!(2)), &[("ItemList[1].GstRt", "INVALID_GST_RATE")]);
    let v = sample("b2b-intra-goods");
    let o = ValidationOptions { allowed_gst_rates: vec![Decimal::ZERO, Decimal::from(5)], ..opts() };
    expect_with(&v, None, &o, &[("ItemList[0].GstRt", "INVALID_GST_RATE"), ("ItemList[1].GstRt", "INVALID_GST_RATE")]);
    // 40% (GST 2.0) is in the default master.
    broken(
        "b2b-inter-services",
        |v| {
            set(v, "/ItemList/0/GstRt", json!(40));
            set(v, "/ItemList/0/IgstAmt", json!(74000));
            set(v, "/ItemList/0/TotItemVal", json!(259000));
            set(v, "/ValDtls/IgstVal", json!(74000));
            set(v, "/ValDtls/TotInvVal", json!(259000));
        },
        &[],
    );
}

#[test]
fn assessable_amount() {
    broken(
        "b2b-intra-goods",
        |v| set(v, "/ItemList/0/Discount", json!(400)),
        &[("ItemList[0].AssAmt", "ASSAMT_MISMATCH")],
    );
    broken("b2b-intra-goods", |v| set(v, "/ItemList/0/Discount", json!(450.05)), &[]);
}

#[test]
fn igst_only_supplies_take_no_cgst_sgst() {
    // Small enough to stay inside the total tolerances: only the split rule fires.
    broken(
        "b2b-inter-services",
        |v| set(v, "/ItemList/0/CgstAmt", json!(0.5)),
        &[("ItemList[0].CgstAmt", "CGST_SGST_NOT_ALLOWED")],
    );
    broken(
        "sez-without-payment",
        |v| set(v, "/ItemList/0/SgstAmt", json!(0.5)),
        &[("ItemList[0].SgstAmt", "CGST_SGST_NOT_ALLOWED")],
    );
}

#[test]
fn intra_state_takes_no_igst() {
    broken(
        "b2b-intra-goods",
        |v| set(v, "/ItemList/0/IgstAmt", json!(0.5)),
        &[("ItemList[0].IgstAmt", "IGST_NOT_ALLOWED")],
    );
    // …unless IgstOnIntra=Y says IGST is really due.
    broken(
        "b2b-intra-goods",
        |v| {
            set(v, "/TranDtls/IgstOnIntra", json!("Y"));
            for (i, igst) in [(0, 4329.0), (1, 1687.5)] {
                set(v, &format!("/ItemList/{i}/IgstAmt"), json!(igst));
                set(v, &format!("/ItemList/{i}/CgstAmt"), json!(0));
                set(v, &format!("/ItemList/{i}/SgstAmt"), json!(0));
            }
            set(v, "/ValDtls/CgstVal", json!(0));
            set(v, "/ValDtls/SgstVal", json!(0));
            set(v, "/ValDtls/IgstVal", json!(6016.5));
        },
        &[],
    );
}

#[test]
fn igst_amount_follows_rate() {
    let fix = |v: &mut Value, igst: &str| {
        let igst = money::parse(igst).unwrap();
        set(v, "/ItemList/0/IgstAmt", amount(igst));
        set(v, "/ItemList/0/TotItemVal", amount(Decimal::from(185000) + igst));
        set(v, "/ValDtls/IgstVal", amount(igst));
        set(v, "/ValDtls/TotInvVal", amount(Decimal::from(185000) + igst));
    };
    broken("b2b-inter-services", |v| fix(v, "33000.0"), &[("ItemList[0].IgstAmt", "IGST_MISMATCH")]);
    broken("b2b-inter-services", |v| fix(v, "33300.9"), &[]);
    // Export with payment must carry the IGST…
    broken(
        "export-with-payment",
        |v| {
            set(v, "/ItemList/0/IgstAmt", json!(0));
            set(v, "/ItemList/0/TotItemVal", json!(820000));
            set(v, "/ValDtls/IgstVal", json!(0));
            set(v, "/ValDtls/TotInvVal", json!(820000));
        },
        &[("ItemList[0].IgstAmt", "IGST_MISMATCH")],
    );
    // …without payment (LUT), an IGST of 0 is not checked against the rate.
    broken("sez-without-payment", |v| set(v, "/ItemList/0/GstRt", json!(18)), &[]);
}

#[test]
fn notes_skip_rate_checks() {
    broken(
        "debit-note",
        |v| {
            set(v, "/ItemList/0/IgstAmt", json!(500));
            set(v, "/ItemList/0/TotItemVal", json!(4700));
            set(v, "/ValDtls/IgstVal", json!(500));
            set(v, "/ValDtls/TotInvVal", json!(4700));
        },
        &[],
    );
    // The same on an invoice is an error.
    broken(
        "debit-note",
        |v| {
            set(v, "/DocDtls/Typ", json!("INV"));
            set(v, "/ItemList/0/IgstAmt", json!(500));
            set(v, "/ItemList/0/TotItemVal", json!(4700));
            set(v, "/ValDtls/IgstVal", json!(500));
            set(v, "/ValDtls/TotInvVal", json!(4700));
        },
        &[("ItemList[0].IgstAmt", "IGST_MISMATCH")],
    );
}

#[test]
fn cgst_sgst_follow_half_rate() {
    broken(
        "b2b-intra-goods",
        |v| {
            set(v, "/ItemList/0/CgstAmt", json!(2000));
            set(v, "/ItemList/0/SgstAmt", json!(2000));
            set(v, "/ItemList/0/TotItemVal", json!(28050));
            set(v, "/ValDtls/CgstVal", json!(2843.75));
            set(v, "/ValDtls/SgstVal", json!(2843.75));
            set(v, "/ValDtls/TotInvVal", json!(39112.5));
        },
        &[("ItemList[0].CgstAmt", "CGST_MISMATCH"), ("ItemList[0].SgstAmt", "SGST_MISMATCH")],
    );
    broken(
        "b2b-intra-goods",
        |v| {
            set(v, "/ItemList/0/SgstAmt", json!(2170));
            set(v, "/ItemList/0/TotItemVal", json!(28384.5));
            set(v, "/ValDtls/SgstVal", json!(3013.75));
            set(v, "/ValDtls/TotInvVal", json!(39447));
        },
        &[("ItemList[0].SgstAmt", "SGST_MISMATCH")],
    );
}

#[test]
fn cgst_equals_sgst() {
    // Within the per-line tolerance of the rate, but still unequal.
    broken(
        "b2b-intra-goods",
        |v| set(v, "/ItemList/1/SgstAmt", json!(844.25)),
        &[("ItemList[1].SgstAmt", "CGST_SGST_UNEQUAL")],
    );
    // On a credit note (no rate check) the equality still holds.
    broken(
        "credit-note",
        |v| {
            set(v, "/ItemList/0/CgstAmt", json!(225));
            set(v, "/ItemList/0/TotItemVal", json!(2895.5));
            set(v, "/ValDtls/CgstVal", json!(225));
            set(v, "/ValDtls/TotInvVal", json!(2895.5));
        },
        &[("ItemList[0].SgstAmt", "CGST_SGST_UNEQUAL")],
    );
}

#[test]
fn cess_follows_rate() {
    let cess = |v: &mut Value, amt: &str| {
        let amt = money::parse(amt).unwrap();
        set(v, "/ItemList/1/CesRt", json!(1));
        set(v, "/ItemList/1/CesAmt", amount(amt));
        set(v, "/ItemList/1/TotItemVal", amount(money::parse("11062.5").unwrap() + amt));
        set(v, "/ValDtls/CesVal", amount(amt));
        set(v, "/ValDtls/TotInvVal", amount(money::parse("39441.5").unwrap() + amt));
    };
    broken("b2b-intra-goods", |v| cess(v, "50.0"), &[("ItemList[1].CesAmt", "CESS_MISMATCH")]);
    broken("b2b-intra-goods", |v| cess(v, "93.75"), &[]);
}

#[test]
fn item_total() {
    broken(
        "b2b-intra-goods",
        |v| {
            set(v, "/ItemList/0/TotItemVal", json!(28390));
            set(v, "/ValDtls/TotInvVal", json!(39452.5));
        },
        &[("ItemList[0].TotItemVal", "TOTITEMVAL_MISMATCH")],
    );
    // Other charges and state cess count towards the item total.
    broken(
        "b2b-intra-goods",
        |v| {
            set(v, "/ItemList/0/OthChrg", json!(11));
            set(v, "/ItemList/0/StateCesAmt", json!(10));
            set(v, "/ItemList/0/TotItemVal", json!(28400));
            set(v, "/ValDtls/StCesVal", json!(10));
            set(v, "/ValDtls/TotInvVal", json!(39462.5));
        },
        &[],
    );
    // Under reverse charge the item total may exclude tax.
    broken(
        "b2b-inter-services",
        |v| {
            set(v, "/TranDtls/RegRev", json!("Y"));
            set(v, "/ItemList/0/TotItemVal", json!(185000));
            set(v, "/ValDtls/TotInvVal", json!(185000));
        },
        &[],
    );
    broken(
        "b2b-inter-services",
        |v| {
            set(v, "/ItemList/0/TotItemVal", json!(185000));
            set(v, "/ValDtls/TotInvVal", json!(185000));
        },
        &[("ItemList[0].TotItemVal", "TOTITEMVAL_MISMATCH")],
    );
}

// ---- totals ------------------------------------------------------------------

#[test]
fn value_sums() {
    let cases: &[(&str, &str, &str)] = &[
        ("b2b-intra-goods", "AssVal", "ASSVAL_MISMATCH"),
        ("b2b-intra-goods", "CgstVal", "CGSTVAL_MISMATCH"),
        ("b2b-intra-goods", "SgstVal", "SGSTVAL_MISMATCH"),
        ("b2b-inter-goods-ewb", "IgstVal", "IGSTVAL_MISMATCH"),
        ("b2b-intra-goods", "CesVal", "CESVAL_MISMATCH"),
        ("b2b-intra-goods", "StCesVal", "STCESVAL_MISMATCH"),
    ];
    for (name, key, c) in cases {
        let ptr = format!("/ValDtls/{key}");
        let mut v = sample(name);
        let now = money::parse(&v.pointer(&ptr).unwrap().to_string()).unwrap();
        set(&mut v, &ptr, json!((now + Decimal::from(5)).to_string()));
        expect(&v, &[(&format!("ValDtls.{key}"), c)]);
        // Inside the tolerance is fine.
        set(&mut v, &ptr, json!((now + money::parse("0.99").unwrap()).to_string()));
        expect(&v, &[]);
    }
    // An absent total counts as 0.
    broken("b2b-intra-goods", |v| del(v, "/ValDtls/CgstVal"), &[("ValDtls.CgstVal", "CGSTVAL_MISMATCH")]);
}

#[test]
fn round_off_range() {
    broken(
        "b2b-intra-goods",
        |v| {
            set(v, "/ValDtls/RndOffAmt", json!(100));
            set(v, "/ValDtls/TotInvVal", json!(39541.5));
        },
        &[("ValDtls.RndOffAmt", "RNDOFF_RANGE")],
    );
    broken(
        "b2b-intra-goods",
        |v| {
            set(v, "/ValDtls/RndOffAmt", json!(-99.99));
            set(v, "/ValDtls/TotInvVal", json!(39341.51));
        },
        &[],
    );
}

#[test]
fn invoice_total() {
    broken(
        "b2b-intra-goods",
        |v| set(v, "/ValDtls/TotInvVal", json!(39446.5)),
        &[("ValDtls.TotInvVal", "TOTINVVAL_MISMATCH")],
    );
    broken("b2b-intra-goods", |v| set(v, "/ValDtls/TotInvVal", json!(39442.4)), &[]);
    broken(
        "b2b-intra-goods",
        |v| {
            set(v, "/ValDtls/OthChrg", json!(100));
            set(v, "/ValDtls/Discount", json!(50));
            set(v, "/ValDtls/TotInvVal", json!(39491.5));
        },
        &[],
    );
    let v = sample("b2b-intra-goods");
    let o = ValidationOptions { total_tolerance: Decimal::ZERO, ..opts() };
    expect_with(&v, None, &o, &[]);
}

// ---- many at once ------------------------------------------------------------

#[test]
fn reports_every_problem() {
    let mut v = sample("b2b-intra-goods");
    set(&mut v, "/Version", json!("1.0"));
    set(&mut v, "/DocDtls/No", json!("0SMP"));
    set(&mut v, "/DocDtls/Dt", json!("16/04/2025"));
    set(&mut v, "/SellerDtls/Pin", json!(400001));
    set(&mut v, "/BuyerDtls/Gstin", json!("29AADCT5519H1Z5"));
    set(&mut v, "/ItemList/0/HsnCd", json!("123"));
    set(&mut v, "/ItemList/0/Unit", json!("XYZ"));
    set(&mut v, "/ItemList/1/SlNo", json!("1"));
    set(&mut v, "/ItemList/1/Discount", json!(1));
    set(&mut v, "/ValDtls/TotInvVal", json!(1));
    expect_with(
        &v,
        Some("27AAKFU7303M1ZP"),
        &opts(),
        &[
            ("Version", "UNSUPPORTED_VERSION"),
            ("DocDtls.No", "DOC_NUMBER_START"),
            ("DocDtls.Dt", "DATE_IN_FUTURE"),
            ("SellerDtls.Pin", "PIN_STATE_MISMATCH"),
            ("SellerDtls.Gstin", "SELLER_GSTIN_MISMATCH"),
            ("BuyerDtls.Gstin", "GSTIN_CHECK_DIGIT"),
            ("ItemList[0].HsnCd", "HSN_FORMAT"),
            ("ItemList[0].Unit", "INVALID_UNIT"),
            ("ItemList[1].SlNo", "DUPLICATE_SLNO"),
            ("ItemList[1].AssAmt", "ASSAMT_MISMATCH"),
            ("ValDtls.TotInvVal", "TOTINVVAL_MISMATCH"),
        ],
    );
}

#[test]
fn messages_name_the_value_and_expectation() {
    let mut v = sample("b2b-intra-goods");
    set(&mut v, "/ItemList/0/Discount", json!(400));
    let p = validate_invoice(&v, None, &opts()).unwrap_err();
    assert_eq!(p.len(), 1);
    assert_eq!(
        p[0].message,
        "Assessable amount 24050.00 should be total amount 24500.00 minus discount 400.00 = 24100.00."
    );
    let mut v = sample("b2b-intra-goods");
    set(&mut v, "/SellerDtls/Pin", json!(400001));
    let p = validate_invoice(&v, None, &opts()).unwrap_err();
    assert!(p[0].message.contains("400001") && p[0].message.contains("Karnataka"), "{}", p[0].message);
}

// ---- cancel ------------------------------------------------------------------

#[test]
fn cancel_request() {
    for r in ["1", "2", "3", " 4 "] {
        assert!(validate_cancel(r, "Wrong buyer").is_empty(), "{r}");
    }
    assert!(validate_cancel("1", "").is_empty());
    assert!(validate_cancel("1", &"é".repeat(100)).is_empty());
    let codes = |r: &str, m: &str| -> Vec<(String, String)> {
        validate_cancel(r, m).into_iter().map(|p| (p.path, p.code)).collect()
    };
    assert_eq!(codes("5", "x"), vec![("reason".into(), "INVALID_CANCEL_REASON".into())]);
    assert_eq!(codes("", "x"), vec![("reason".into(), "REQUIRED".into())]);
    assert_eq!(
        codes("0", &"x".repeat(101)),
        vec![("reason".into(), "INVALID_CANCEL_REASON".into()), ("remark".into(), "REMARK_TOO_LONG".into())]
    );
}

#[test]
fn default_options() {
    let o = ValidationOptions::default();
    assert_eq!(o.einvoice_start, ymd(2020, 10, 1));
    assert_eq!(o.max_items, 1000);
    assert_eq!(o.reporting_window_days, None);
    assert!(!o.relaxed_gstin_check_digit);
    assert!(codes::is_allowed_rate(Decimal::from(40), &o.allowed_gst_rates));
    // India is never more than a day away from UTC.
    let utc = chrono::Utc::now().date_naive();
    assert!((o.today - utc).num_days().abs() <= 1);
}

// ---- robustness ----------------------------------------------------------------

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        "[ -~]{0,12}".prop_map(Value::String),
        "\\PC{0,6}".prop_map(Value::String),
        prop::sample::select(vec![
            json!("29"),
            json!("96"),
            json!("URP"),
            json!(""),
            json!("1e999"),
            json!("-0.5"),
            json!("99999999999999999999999"),
            json!(1e308),
            json!(-1e308),
            json!("Y"),
            json!("01/04/2025"),
            json!("31/02/2025"),
            json!("29AAGCP4821K1Z3"),
            json!(999999),
        ]),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[A-Za-z]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every JSON pointer inside `v` (not the root).
fn pointers(v: &Value, prefix: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                let p = format!("{prefix}/{k}");
                out.push(p.clone());
                pointers(c, p, out);
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                let p = format!("{prefix}/{i}");
                out.push(p.clone());
                pointers(c, p, out);
            }
        }
        _ => {}
    }
}

fn mutate(v: &mut Value, delete: bool, at: prop::sample::Index, new: Value) {
    let mut ps = Vec::new();
    pointers(v, String::new(), &mut ps);
    if ps.is_empty() {
        *v = new;
        return;
    }
    let p = &ps[at.index(ps.len())];
    let (parent, key) = p.rsplit_once('/').unwrap_or(("", p));
    match v.pointer_mut(parent) {
        Some(Value::Object(m)) => {
            if delete {
                m.shift_remove(key);
            } else {
                m.insert(key.to_string(), new);
            }
        }
        Some(Value::Array(a)) => {
            if let Ok(i) = key.parse::<usize>() {
                if i < a.len() {
                    if delete {
                        a.remove(i);
                    } else {
                        a[i] = new;
                    }
                }
            }
        }
        _ => {}
    }
}

fn run_all_modes(v: &Value) {
    for (relaxed, ship_to_rules) in [(false, ShipToRules::Off), (true, ShipToRules::On)] {
        let o = ValidationOptions {
            relaxed_gstin_check_digit: relaxed,
            reporting_window_days: Some(30),
            ship_to_rules,
            ..opts()
        };
        match validate_invoice(v, Some("29AAGCP4821K1Z3"), &o) {
            Ok(ok) => {
                // Whatever passed must still pass after normalization (idempotent).
                assert!(validate_invoice(&ok.irp_json(), None, &o).is_ok());
            }
            Err(p) => assert!(!p.is_empty()),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
            run_all_modes(&v);
        }
    }

    #[test]
    fn corrupted_sample_text_never_panics(
        which in 0..SAMPLES.len(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut bytes = SAMPLES[which].1.as_bytes().to_vec();
        for (at, b) in flips {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
            run_all_modes(&v);
        }
    }

    #[test]
    fn mutated_samples_never_panic(
        which in 0..SAMPLES.len(),
        edits in prop::collection::vec((any::<bool>(), any::<prop::sample::Index>(), arb_json()), 1..5),
    ) {
        let mut v: Value = serde_json::from_str(SAMPLES[which].1).unwrap();
        for (delete, at, new) in edits {
            mutate(&mut v, delete, at, new);
        }
        run_all_modes(&v);
    }

    /// Every field of the table (all present in `full_invoice`), replaced by number-like text
    /// or odd JSON: the readers and the decimal arithmetic never panic.
    #[test]
    fn every_table_field_mutated_never_panics(
        at in any::<prop::sample::Index>(),
        text in "-?[0-9]{0,32}(\\.[0-9]{0,32})?([eE]-?[0-9]{1,3})?",
        other in arb_json(),
        use_text in any::<bool>(),
    ) {
        let mut v = full_invoice();
        let f = &fields::FIELDS[at.index(fields::FIELDS.len())];
        let new = if use_text { json!(text) } else { other };
        if let Some(slot) = v.pointer_mut(&pointer(f.path)) {
            *slot = new;
        }
        run_all_modes(&v);
    }

    #[test]
    fn mutated_full_invoice_never_panics(
        edits in prop::collection::vec((any::<bool>(), any::<prop::sample::Index>(), arb_json()), 1..5),
    ) {
        let mut v = full_invoice();
        for (delete, at, new) in edits {
            mutate(&mut v, delete, at, new);
        }
        run_all_modes(&v);
    }

    #[test]
    fn random_json_never_panics(v in arb_json()) {
        run_all_modes(&v);
    }
}

// ---- the field table ---------------------------------------------------------------

/// `b2b-inter-goods-ewb` with every optional section and field of the table filled with a valid
/// value, so each field can be broken in place.
fn full_invoice() -> Value {
    let mut v = sample("b2b-inter-goods-ewb");
    set(&mut v, "/TranDtls/EcmGstin", json!("29AAGCP4821K1Z3"));
    set(&mut v, "/SellerDtls/Addr2", json!("Near Octroi Naka"));
    set(&mut v, "/SellerDtls/Ph", json!("9822012345"));
    set(&mut v, "/SellerDtls/Em", json!("accounts@unnati.example"));
    set(&mut v, "/BuyerDtls/TrdNm", json!("Ramanathan Foods"));
    set(&mut v, "/BuyerDtls/Addr2", json!("Second floor"));
    set(&mut v, "/BuyerDtls/Ph", json!("044123456"));
    set(&mut v, "/BuyerDtls/Em", json!("ap@ramanathan.example"));
    set(
        &mut v,
        "/DispDtls",
        json!({"Nm": "Unnati Godown", "Addr1": "Gala 4", "Addr2": "Dapode Road", "Loc": "Bhiwandi", "Pin": 421302, "Stcd": "27"}),
    );
    set(
        &mut v,
        "/ShipDtls",
        json!({"Gstin": "33AAFCR6612L1ZA", "LglNm": "Ramanathan Foods Pvt Ltd", "TrdNm": "Ramanathan Foods", "Addr1": "Unit 2, SIDCO", "Addr2": "Ambattur", "Loc": "Chennai", "Pin": 600058, "Stcd": "33"}),
    );
    for (k, val) in [
        ("Barcde", json!("8901234567890")),
        ("FreeQty", json!(10)),
        ("PreTaxVal", json!(177600)),
        ("CesNonAdvlAmt", json!(0)),
        ("StateCesRt", json!(0)),
        ("StateCesAmt", json!(0)),
        ("StateCesNonAdvlAmt", json!(0)),
        ("OrdLineRef", json!("PO-77/1")),
        ("OrgCntry", json!("IN")),
        ("PrdSlNo", json!("SN-1")),
        ("BchDtls", json!({"Nm": "B-2025-04", "ExpDt": "01/04/2027", "WrDt": "01/04/2026"})),
        ("AttribDtls", json!([{"Nm": "Width", "Val": "60in"}])),
    ] {
        set(&mut v, &format!("/ItemList/0/{k}"), val);
    }
    set(&mut v, "/ValDtls/Discount", json!(0));
    set(&mut v, "/ValDtls/OthChrg", json!(0));
    set(&mut v, "/ValDtls/RndOffAmt", json!(0));
    set(&mut v, "/ValDtls/TotInvValFc", json!(2500));
    set(
        &mut v,
        "/PayDtls",
        json!({"Nm": "Unnati Textiles LLP", "AccDet": "5010012345678", "Mode": "Direct Transfer", "FinInsBr": "HDFC0000123",
               "PayTerm": "30 days", "PayInstr": "NEFT", "CrTrn": "Credit transfer", "DirDr": "None", "CrDay": 30,
               "PaidAmt": 0, "PaymtDue": 1000}),
    );
    set(
        &mut v,
        "/RefDtls",
        json!({"InvRm": "Against PO 77", "DocPerdDtls": {"InvStDt": "01/03/2025", "InvEndDt": "31/03/2025"},
               "PrecDocDtls": [{"InvNo": "SMP/0001", "InvDt": "01/03/2025", "OthRefNo": "REF-1"}],
               "ContrDtls": [{"RecAdvRefr": "RA-1", "RecAdvDt": "01/03/2025", "TendRefr": "T-1", "ContrRefr": "C-1",
                              "ExtRefr": "E-1", "ProjRefr": "P-1", "PORefr": "PO-77", "PORefDt": "01/03/2025"}]}),
    );
    set(
        &mut v,
        "/AddlDocDtls",
        json!([{"Url": "https://erp.example/doc/77", "Docs": "UEsDBBQ=", "Info": "Packing list attached"}]),
    );
    set(
        &mut v,
        "/ExpDtls",
        json!({"ShipBNo": "7788123", "ShipBDt": "01/04/2025", "Port": "INNSA1", "RefClm": "N", "ForCur": "USD", "CntCode": "US", "ExpDuty": 0}),
    );
    v
}

/// JSON pointer of a table path in `full_invoice` (list elements at index 0).
fn pointer(path: &str) -> String {
    format!("/{}", path.replace("[]", "/0").replace('.', "/"))
}

/// Problem path of a table path in `full_invoice`.
fn concrete(path: &str) -> String {
    path.replace("[]", "[0]")
}

#[test]
fn field_table_is_well_formed() {
    let mut seen = std::collections::HashSet::new();
    for f in fields::FIELDS.iter() {
        assert!(seen.insert(f.path), "{} twice", f.path);
        if !f.parent().is_empty() {
            assert!(fields::get(f.parent()).is_some(), "{}: no parent {}", f.path, f.parent());
        }
        match f.ty {
            fields::Ty::Text => assert!(f.len.is_some(), "{}", f.path),
            fields::Ty::Number => {
                let (lo, hi) = f.range.unwrap_or_else(|| panic!("{} has no range", f.path));
                assert!(money::parse(lo).unwrap() < money::parse(hi).unwrap(), "{}", f.path);
                assert!(f.decimals.is_some(), "{}", f.path);
            }
            fields::Ty::Object | fields::Ty::List => {}
        }
        if let Some(p) = f.pattern {
            assert!(fields::matches(f, "") || !p.is_empty());
        }
    }
    // The differences the issue names, straight from the schema.
    assert_eq!(fields::get("SellerDtls.Loc").unwrap().len, Some((3, 50)));
    assert_eq!(fields::get("BuyerDtls.Loc").unwrap().len, Some((3, 100)));
    assert_eq!(fields::get("ItemList[].UnitPrice").unwrap().decimals, Some(3));
    assert_eq!(fields::get("ItemList[].UnitPrice").unwrap().range, Some(("0", "999999999999.999")));
    assert_eq!(fields::get("ItemList[].OthChrg").unwrap().range.unwrap().0, "0");
    assert_eq!(fields::get("ValDtls.OthChrg").unwrap().range.unwrap().0, "0");
    assert_eq!(fields::template("RefDtls.PrecDocDtls[12].InvNo"), "RefDtls.PrecDocDtls[].InvNo");
}

#[test]
fn full_invoice_is_valid() {
    let v = full_invoice();
    let ok = validate_invoice(&v, None, &opts()).unwrap_or_else(|p| panic!("{p:#?}"));
    assert_eq!(ok.irp_json(), v);
    // Every field of the table is present in it, so the next test reaches them all.
    for f in fields::FIELDS.iter() {
        assert!(v.pointer(&pointer(f.path)).is_some(), "full_invoice lacks {}", f.path);
    }
}

/// Every field's length, decimals, range and required-ness, broken one at a time in
/// `full_invoice`, gives exactly one problem at its path with the table's code.
#[test]
fn the_table_drives_every_format_check() {
    use fields::{Check, Req, Ty};
    let base = full_invoice();
    let mut checked = 0;
    for f in fields::FIELDS.iter() {
        let ptr = pointer(f.path);
        let path = concrete(f.path);
        let mut cases: Vec<(Value, &str)> = Vec::new();
        match (f.ty, f.check) {
            (Ty::Text, Check::Schema { .. }) => {
                let (min, max) = f.len.unwrap();
                cases.push((json!("A".repeat(max + 1)), code::TEXT_LENGTH));
                if min > 1 {
                    cases.push((json!("A".repeat(min - 1)), code::TEXT_LENGTH));
                }
            }
            (Ty::Number, Check::Schema { code: range_code }) => {
                let (lo, hi) = f.range.unwrap();
                let (lo, hi) = (money::parse(lo).unwrap(), money::parse(hi).unwrap());
                let places = f.decimals.unwrap();
                let too_precise = format!("1.{}", "1".repeat(places as usize + 1));
                cases.push((json!(too_precise), code::DECIMAL_PLACES));
                cases.push((json!((hi + Decimal::ONE).to_string()), range_code));
                let below = if lo.is_zero() { code::NEGATIVE_VALUE } else { range_code };
                cases.push((json!((lo - Decimal::ONE).to_string()), below));
            }
            _ => {}
        }
        if f.req == Req::Always {
            cases.push((Value::Null, code::REQUIRED));
        }
        for (bad, want) in cases {
            let mut v = base.clone();
            set(&mut v, &ptr, bad.clone());
            let got = problems_with(&v, None, &opts());
            assert_eq!(got, vec![(path.clone(), want.to_string())], "{} = {bad}", f.path);
            checked += 1;
        }
    }
    assert!(checked > 200, "only {checked} cases");
}

// ---- formats the table adds ------------------------------------------------------------

#[test]
fn email_phone_and_quotes() {
    for bad in ["accounts.example.com", "a b@example.com", "name@exa mple.com"] {
        broken("b2b-intra-goods", |v| set(v, "/SellerDtls/Em", json!(bad)), &[("SellerDtls.Em", "EMAIL_FORMAT")]);
    }
    broken("b2b-intra-goods", |v| set(v, "/BuyerDtls/Em", json!("a@b.c")), &[("BuyerDtls.Em", "TEXT_LENGTH")]);
    broken("b2b-intra-goods", |v| set(v, "/BuyerDtls/Em", json!("ap+in@tumkur-auto.co.in")), &[]);
    broken("b2b-intra-goods", |v| set(v, "/BuyerDtls/Ph", json!("080-2345")), &[("BuyerDtls.Ph", "PHONE_FORMAT")]);
    broken(
        "b2b-intra-goods",
        |v| set(v, "/BuyerDtls/LglNm", json!("Tumkur \"Auto\" Components")),
        &[("BuyerDtls.LglNm", "TEXT_CHARS")],
    );
}

#[test]
fn location_length_depends_on_the_party() {
    let loc = "B".repeat(51);
    broken("b2b-intra-goods", |v| set(v, "/SellerDtls/Loc", json!(loc)), &[("SellerDtls.Loc", "TEXT_LENGTH")]);
    broken("b2b-intra-goods", |v| set(v, "/BuyerDtls/Loc", json!(loc)), &[]);
    broken("b2b-intra-goods", |v| set(v, "/SellerDtls/Loc", json!("B".repeat(50))), &[]);
    broken(
        "b2b-intra-goods",
        |v| set(v, "/BuyerDtls/Loc", json!("B".repeat(101))),
        &[("BuyerDtls.Loc", "TEXT_LENGTH")],
    );
}

#[test]
fn unit_price_is_number_12_3() {
    broken("b2b-intra-goods", |v| set(v, "/ItemList/0/UnitPrice", json!(612.5)), &[]);
    broken("b2b-intra-goods", |v| set(v, "/ItemList/0/UnitPrice", json!(612.125)), &[]);
    broken(
        "b2b-intra-goods",
        |v| set(v, "/ItemList/0/UnitPrice", json!(612.1255)),
        &[("ItemList[0].UnitPrice", "DECIMAL_PLACES")],
    );
    broken(
        "b2b-intra-goods",
        |v| set(v, "/ItemList/0/UnitPrice", json!("1000000000000")),
        &[("ItemList[0].UnitPrice", "VALUE_RANGE")],
    );
    // Trailing zeros carry no precision.
    broken("b2b-intra-goods", |v| set(v, "/ItemList/0/UnitPrice", json!("612.50000")), &[]);
    // Amounts are Decimal(12,2).
    broken(
        "b2b-intra-goods",
        |v| set(v, "/ItemList/0/TotAmt", json!(24500.001)),
        &[("ItemList[0].TotAmt", "DECIMAL_PLACES")],
    );
}

#[test]
fn other_charges_are_never_negative() {
    broken(
        "b2b-intra-goods",
        |v| {
            set(v, "/ItemList/0/OthChrg", json!(-10));
        },
        &[("ItemList[0].OthChrg", "NEGATIVE_VALUE")],
    );
    broken(
        "b2b-intra-goods",
        |v| {
            set(v, "/ValDtls/OthChrg", json!(-10));
            set(v, "/ValDtls/TotInvVal", json!(39431.5));
        },
        &[("ValDtls.OthChrg", "NEGATIVE_VALUE")],
    );
}

#[test]
fn preceding_document_numbers() {
    for bad in ["0SMP/1", "/SMP1", "SMP 0001", "S", "SMP_0001"] {
        broken(
            "credit-note",
            |v| set(v, "/RefDtls/PrecDocDtls/0/InvNo", json!(bad)),
            &[("RefDtls.PrecDocDtls[0].InvNo", "DOC_NUMBER_FORMAT")],
        );
    }
    broken(
        "credit-note",
        |v| set(v, "/RefDtls/PrecDocDtls/0/InvNo", json!("SMP/0001/2025-26X")),
        &[("RefDtls.PrecDocDtls[0].InvNo", "TEXT_LENGTH")],
    );
    broken("credit-note", |v| del(v, "/RefDtls/PrecDocDtls/0/InvNo"), &[("RefDtls.PrecDocDtls[0].InvNo", "REQUIRED")]);
    broken(
        "credit-note",
        |v| set(v, "/RefDtls/PrecDocDtls/0", json!("SMP/1")),
        &[("RefDtls.PrecDocDtls[0]", "INVALID_TYPE")],
    );
    broken("credit-note", |v| set(v, "/RefDtls/PrecDocDtls", json!({})), &[("RefDtls.PrecDocDtls", "INVALID_TYPE")]);
    broken(
        "credit-note",
        |v| set(v, "/RefDtls/ContrDtls", json!([{"PORefr": "P".repeat(17), "PORefDt": "31/02/2025"}])),
        &[("RefDtls.ContrDtls[0].PORefDt", "DATE_INVALID"), ("RefDtls.ContrDtls[0].PORefr", "TEXT_LENGTH")],
    );
}

#[test]
fn payment_details() {
    let pay = |v: &mut Value, k: &str, val: Value| {
        set(v, "/PayDtls", json!({"Nm": "Prakash Engineering", "CrDay": 30}));
        set(v, &format!("/PayDtls/{k}"), val);
    };
    broken("b2b-intra-goods", |v| pay(v, "Mode", json!("Cash")), &[]);
    broken("b2b-intra-goods", |v| pay(v, "CrDay", json!(10000)), &[("PayDtls.CrDay", "VALUE_RANGE")]);
    broken("b2b-intra-goods", |v| pay(v, "CrDay", json!(30.5)), &[("PayDtls.CrDay", "DECIMAL_PLACES")]);
    broken("b2b-intra-goods", |v| pay(v, "PaidAmt", json!(-1)), &[("PayDtls.PaidAmt", "NEGATIVE_VALUE")]);
    broken("b2b-intra-goods", |v| pay(v, "AccDet", json!("1".repeat(19))), &[("PayDtls.AccDet", "TEXT_LENGTH")]);
    broken("b2b-intra-goods", |v| pay(v, "FinInsBr", json!("HDFC00001234")), &[("PayDtls.FinInsBr", "TEXT_LENGTH")]);
    broken("b2b-intra-goods", |v| pay(v, "Nm", json!(42)), &[("PayDtls.Nm", "INVALID_TYPE")]);
    broken("b2b-intra-goods", |v| set(v, "/PayDtls", json!("cash")), &[("PayDtls", "INVALID_TYPE")]);
}

// ---- export --------------------------------------------------------------------------

#[test]
fn export_country_is_required_and_iso() {
    broken("export-with-payment", |v| del(v, "/ExpDtls"), &[("ExpDtls.CntCode", "REQUIRED")]);
    broken("export-with-payment", |v| del(v, "/ExpDtls/CntCode"), &[("ExpDtls.CntCode", "REQUIRED")]);
    broken(
        "export-with-payment",
        |v| set(v, "/ExpDtls/CntCode", json!("ZZ")),
        &[("ExpDtls.CntCode", "INVALID_COUNTRY_CODE")],
    );
    broken(
        "export-with-payment",
        |v| set(v, "/ExpDtls/CntCode", json!("D1")),
        &[("ExpDtls.CntCode", "INVALID_COUNTRY_CODE")],
    );
    broken("export-with-payment", |v| set(v, "/ExpDtls/CntCode", json!("AE")), &[]);
    // Not required on a domestic supply.
    broken("b2b-intra-goods", |v| set(v, "/ExpDtls", json!({"Port": "INBLR4"})), &[]);
    broken(
        "b2b-intra-goods",
        |v| set(v, "/ItemList/0/OrgCntry", json!("XX")),
        &[("ItemList[0].OrgCntry", "INVALID_COUNTRY_CODE")],
    );
}

#[test]
fn export_port_code() {
    broken("export-with-payment", |v| set(v, "/ExpDtls/Port", json!("INNSA 1")), &[("ExpDtls.Port", "PORT_FORMAT")]);
    broken("export-with-payment", |v| set(v, "/ExpDtls/Port", json!("I")), &[("ExpDtls.Port", "TEXT_LENGTH")]);
    broken(
        "export-with-payment",
        |v| set(v, "/ExpDtls/Port", json!("INMAA1234567")),
        &[("ExpDtls.Port", "TEXT_LENGTH")],
    );
    broken("export-with-payment", |v| set(v, "/ExpDtls/Port", json!("inmaa1")), &[]);
}

#[test]
fn reverse_charge_only_on_b2b_and_sez() {
    broken(
        "export-with-payment",
        |v| set(v, "/TranDtls/RegRev", json!("Y")),
        &[("TranDtls.RegRev", "REVERSE_CHARGE_NOT_ALLOWED")],
    );
    broken("sez-without-payment", |v| set(v, "/TranDtls/RegRev", json!("Y")), &[]);
    broken("b2b-inter-services", |v| set(v, "/TranDtls/RegRev", json!("Y")), &[]);
}

// ---- e-way bill details ---------------------------------------------------------------

#[test]
fn ewb_transport_mode_and_distance() {
    let ewb = "b2b-inter-goods-ewb";
    for bad in [json!("5"), json!("0"), json!("Road"), json!(7), json!(1.5)] {
        broken(ewb, |v| set(v, "/EwbDtls/TransMode", bad.clone()), &[("EwbDtls.TransMode", "TRANS_MODE_INVALID")]);
    }
    let mut v = sample(ewb);
    set(&mut v, "/EwbDtls/TransMode", json!(3));
    let ok = validate_invoice(&v, None, &opts()).unwrap();
    assert_eq!(ok.irp_json()["EwbDtls"]["TransMode"], json!("3"), "written as the schema's text");
    broken(ewb, |v| set(v, "/EwbDtls/Distance", json!(4001)), &[("EwbDtls.Distance", "DISTANCE_OUT_OF_RANGE")]);
    broken(ewb, |v| set(v, "/EwbDtls/Distance", json!(-3)), &[("EwbDtls.Distance", "NEGATIVE_VALUE")]);
    broken(ewb, |v| set(v, "/EwbDtls/Distance", json!(12.5)), &[("EwbDtls.Distance", "DECIMAL_PLACES")]);
    broken(ewb, |v| del(v, "/EwbDtls/Distance"), &[("EwbDtls.Distance", "REQUIRED")]);
    broken(ewb, |v| set(v, "/EwbDtls/Distance", json!(0)), &[]);
    broken(ewb, |v| set(v, "/EwbDtls/Distance", json!(4000)), &[]);
}

#[test]
fn ewb_vehicle_and_document() {
    let ewb = "b2b-inter-goods-ewb";
    broken(ewb, |v| set(v, "/EwbDtls/VehNo", json!("MH 04 AB 1234")), &[("EwbDtls.VehNo", "VEHICLE_NO_INVALID")]);
    broken(ewb, |v| set(v, "/EwbDtls/VehNo", json!("MH-04-AB-1234")), &[("EwbDtls.VehNo", "VEHICLE_NO_INVALID")]);
    broken(ewb, |v| set(v, "/EwbDtls/VehNo", json!("MH4")), &[("EwbDtls.VehNo", "TEXT_LENGTH")]);
    broken(ewb, |v| set(v, "/EwbDtls/VehNo", json!("mh04ab1234")), &[]);
    // NIC's vehicle number formats, as the e-way bill commands check them (`domain::transport`).
    for ok in ["BP1234567", "ABC1234", "KA123A1234", "22BH1234AA", "TR0123456789"] {
        broken(ewb, |v| set(v, "/EwbDtls/VehNo", json!(ok)), &[]);
    }
    for bad in ["TN10AB12", "DL1CAB1234", "TR/12/A/1234"] {
        broken(ewb, |v| set(v, "/EwbDtls/VehNo", json!(bad)), &[("EwbDtls.VehNo", "VEHICLE_NO_INVALID")]);
    }
    broken(ewb, |v| set(v, "/EwbDtls/VehType", json!("X")), &[("EwbDtls.VehType", "VEHICLE_TYPE")]);
    broken(ewb, |v| set(v, "/EwbDtls/VehType", json!("o")), &[]);
    broken(ewb, |v| set(v, "/EwbDtls/TransDocNo", json!("LR-8821300000001")), &[("EwbDtls.TransDocNo", "TEXT_LENGTH")]);
    broken(ewb, |v| set(v, "/EwbDtls/TransDocNo", json!("LR#88213")), &[("EwbDtls.TransDocNo", "TRANS_DOC_NO_FORMAT")]);
    broken(ewb, |v| set(v, "/EwbDtls/TransName", json!("VR")), &[("EwbDtls.TransName", "TEXT_LENGTH")]);
    broken(ewb, |v| set(v, "/EwbDtls/TransId", json!("27AABCV9876P1Z8")), &[("EwbDtls.TransId", "GSTIN_CHECK_DIGIT")]);
}

// ---- state cess ----------------------------------------------------------------------

#[test]
fn state_cess_follows_rate() {
    // Item 1 of b2b-intra-goods: AssAmt 9375; 2 % state cess is 187.50.
    let st_cess = |v: &mut Value, amt: &str| {
        set(v, "/ItemList/1/StateCesRt", json!(2));
        set(v, "/ItemList/1/StateCesAmt", json!(amt));
        let amt = money::parse(amt).unwrap();
        let item = money::parse("11062.5").unwrap() + amt;
        let total = money::parse("39441.5").unwrap() + amt;
        set(v, "/ItemList/1/TotItemVal", json!(item.to_string()));
        set(v, "/ValDtls/StCesVal", json!(amt.to_string()));
        set(v, "/ValDtls/TotInvVal", json!(total.to_string()));
    };
    broken("b2b-intra-goods", |v| st_cess(v, "187.50"), &[]);
    broken("b2b-intra-goods", |v| st_cess(v, "188.50"), &[]);
    broken("b2b-intra-goods", |v| st_cess(v, "100"), &[("ItemList[1].StateCesAmt", "STATE_CESS_MISMATCH")]);
    // Credit and debit notes skip rate checks, as for the other taxes.
    let mut v = sample("credit-note");
    set(&mut v, "/ItemList/0/StateCesRt", json!(5));
    expect(&v, &[]);
}

// ---- decimal money ---------------------------------------------------------------------

#[test]
fn tolerances_are_exact_rupees() {
    // Exactly ₹1.00 off is within the IRP's ₹1; ₹1.01 is not. No float noise at the edge.
    broken("b2b-intra-goods", |v| set(v, "/ValDtls/TotInvVal", json!("39442.50")), &[]);
    broken("b2b-intra-goods", |v| set(v, "/ValDtls/TotInvVal", json!("39440.50")), &[]);
    broken(
        "b2b-intra-goods",
        |v| set(v, "/ValDtls/TotInvVal", json!("39442.51")),
        &[("ValDtls.TotInvVal", "TOTINVVAL_MISMATCH")],
    );
    // Thirty lines of 0.10 and 0.20 add up to exactly 9.00 with zero tolerance.
    let mut v = sample("b2b-30-items-roundoff");
    let o = ValidationOptions { total_tolerance: Decimal::ZERO, tax_tolerance: Decimal::ZERO, ..opts() };
    let n = v["ItemList"].as_array().unwrap().len();
    for i in 0..n {
        let a = if i % 2 == 0 { "0.10" } else { "0.20" };
        for k in ["TotAmt", "AssAmt", "TotItemVal", "UnitPrice"] {
            set(&mut v, &format!("/ItemList/{i}/{k}"), json!(a));
        }
        for k in ["Discount", "IgstAmt", "CgstAmt", "SgstAmt", "CesAmt", "OthChrg"] {
            set(&mut v, &format!("/ItemList/{i}/{k}"), json!(0));
        }
        set(&mut v, &format!("/ItemList/{i}/GstRt"), json!(0));
        set(&mut v, &format!("/ItemList/{i}/Qty"), json!(1));
    }
    set(&mut v, "/ValDtls", json!({"AssVal": 4.5, "TotInvVal": 4.5}));
    expect_with(&v, None, &o, &[]);
    assert_eq!(validate_invoice(&v, None, &o).unwrap().total_invoice_amount(), money::parse("4.5").unwrap());
}

// ---- ship-to rules (GSTN advisory of 17 Jun 2026), behind a switch ----------------------------

fn ship_to(on: ShipToRules) -> ValidationOptions {
    ValidationOptions { ship_to_rules: on, ..opts() }
}

/// A valid GSTIN of `state`: the buyer's PAN, second registration (check digit computed).
fn gstin_of(state: &str) -> String {
    let first14 = format!("{state}AAFCR6612L2Z");
    format!("{first14}{}", crate::domain::check_digit(&first14).unwrap())
}

#[test]
fn ship_to_rules_when_switched_on() {
    let on = ship_to(ShipToRules::On);
    let ship = json!({"Gstin": gstin_of("33"), "LglNm": "Ramanathan Foods Unit 2", "Addr1": "SIDCO", "Loc": "Chennai", "Pin": 600058, "Stcd": "33"});
    // Buyer 33AAFCR6612L1ZA; a different ship-to GSTIN of the same PAN and state is fine.
    let mut v = sample("b2b-inter-goods-ewb");
    set(&mut v, "/ShipDtls", ship.clone());
    expect_with(&v, None, &on, &[]);
    // 2323: the buyer's own GSTIN.
    set(&mut v, "/ShipDtls/Gstin", json!("33AAFCR6612L1ZA"));
    expect_with(&v, None, &on, &[("ShipDtls.Gstin", "SHIP_TO_SAME_AS_BUYER")]);
    expect_with(&v, None, &opts(), &[]);
    // 2325: a GSTIN of another state than ShipDtls.Stcd.
    set(&mut v, "/ShipDtls/Gstin", json!(gstin_of("29")));
    expect_with(&v, None, &on, &[("ShipDtls.Stcd", "SHIP_TO_STATE_MISMATCH")]);
    expect_with(&v, None, &opts(), &[]);
    // With an e-way bill, the ship-to GSTIN (or URP) is required.
    del(&mut v, "/ShipDtls/Gstin");
    expect_with(&v, None, &on, &[("ShipDtls.Gstin", "SHIP_TO_GSTIN_REQUIRED")]);
    expect_with(&v, None, &opts(), &[]);
    set(&mut v, "/ShipDtls/Gstin", json!("URP"));
    expect_with(&v, None, &on, &[]);
    // Without an e-way bill it may be left out.
    let mut v = sample("b2b-intra-goods");
    let mut s = ship.clone();
    s.as_object_mut().unwrap().remove("Gstin");
    set(&mut v, "/ShipDtls", s);
    set(&mut v, "/ShipDtls/Stcd", json!("29"));
    set(&mut v, "/ShipDtls/Pin", json!(572106));
    expect_with(&v, None, &on, &[]);
}

#[test]
fn ship_to_switch_is_dated() {
    let mut v = sample("b2b-inter-goods-ewb");
    set(
        &mut v,
        "/ShipDtls",
        json!({"Gstin": "33AAFCR6612L1ZA", "LglNm": "Ramanathan Foods", "Addr1": "SIDCO", "Loc": "Chennai", "Pin": 600058, "Stcd": "33"}),
    );
    let today = opts().today;
    let want = [("ShipDtls.Gstin", "SHIP_TO_SAME_AS_BUYER")];
    expect_with(&v, None, &ship_to(ShipToRules::From(today)), &want);
    expect_with(&v, None, &ship_to(ShipToRules::From(today - chrono::Days::new(1))), &want);
    expect_with(&v, None, &ship_to(ShipToRules::From(today + chrono::Days::new(1))), &[]);
    expect_with(&v, None, &ship_to(ShipToRules::Off), &[]);
    assert_eq!("off".parse::<ShipToRules>(), Ok(ShipToRules::Off));
    assert_eq!(" ON ".parse::<ShipToRules>(), Ok(ShipToRules::On));
    assert_eq!("2026-08-01".parse::<ShipToRules>().unwrap().to_string(), "2026-08-01");
    assert!("01/08/2026".parse::<ShipToRules>().is_err());
}
