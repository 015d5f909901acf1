//! Items and totals: the tax split, every amount against its rate, and the sums (all in decimals).

use super::*;

impl Ctx<'_> {
    pub(super) fn item_list(&mut self, root: &mut Map<String, Value>, tax: &TaxContext) -> Option<Vec<Item>> {
        self.seen.insert("ItemList".into());
        let list = match root.get_mut("ItemList") {
            None | Some(Value::Null) => {
                self.required("ItemList".into());
                return None;
            }
            Some(Value::Array(a)) => a,
            Some(other) => {
                self.wrong_type("ItemList".into(), "a list of items", other);
                return None;
            }
        };
        let n = list.len();
        if n == 0 {
            self.p.push("ItemList", code::ITEM_COUNT, "The invoice has no items; at least one is required.");
            return None;
        }
        if n > self.opts.max_items {
            self.p.push(
                "ItemList",
                code::ITEM_COUNT,
                format!(
                    "The invoice has {n} items; the IRP accepts at most {}. Split it into several invoices.",
                    self.opts.max_items
                ),
            );
            // Its items are not read: the work (and the answer) stays bounded whatever the size.
            return None;
        }
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut items = Vec::with_capacity(n);
        let mut all_ok = true;
        for (i, v) in list.iter_mut().enumerate() {
            let base = format!("ItemList[{i}]");
            match v {
                Value::Object(m) => items.push(self.item(m, i, &base, tax, &mut seen)),
                other => {
                    self.wrong_type(base, "an object (one item)", other);
                    all_ok = false;
                }
            }
        }
        all_ok.then_some(items)
    }

    pub(super) fn item(
        &mut self,
        m: &mut Map<String, Value>,
        index: usize,
        base: &str,
        tax: &TaxContext,
        seen: &mut HashMap<String, usize>,
    ) -> Item {
        let opts = self.opts;
        if let Some(sl) = self.text(m, base, "SlNo", true, Norm::Trim) {
            if !SLNO.is_match(&sl) {
                self.p.push(
                    join(base, "SlNo"),
                    code::SLNO_FORMAT,
                    format!("Serial number '{sl}' must be a number of 1 to 6 digits."),
                );
            } else if let Some(first) = seen.get(&sl) {
                self.p.push(
                    join(base, "SlNo"),
                    code::DUPLICATE_SLNO,
                    format!("Serial number {sl} is already used by ItemList[{first}]; each item needs its own."),
                );
            } else {
                seen.insert(sl, index);
            }
        }
        self.text(m, base, "PrdDesc", false, Norm::Keep);
        let is_servc = match self.flag(m, base, "IsServc", true) {
            Field::Ok(b) => Some(b),
            _ => None,
        };
        let hsn = self.text(m, base, "HsnCd", true, Norm::Trim).and_then(|h| {
            if !HSN.is_match(&h) {
                self.p.push(
                    join(base, "HsnCd"),
                    code::HSN_FORMAT,
                    format!("HSN/SAC code '{h}' must be 4, 6 or 8 digits."),
                );
                return None;
            }
            let service_code = h.starts_with("99");
            match is_servc {
                Some(true) if !service_code => self.p.push(
                    join(base, "HsnCd"),
                    code::HSN_SERVICE_MISMATCH,
                    format!("The item is marked as a service (IsServc=Y) but '{h}' is a goods HSN; service (SAC) codes start with 99."),
                ),
                Some(false) if service_code => self.p.push(
                    join(base, "HsnCd"),
                    code::HSN_SERVICE_MISMATCH,
                    format!("The item is marked as goods (IsServc=N) but '{h}' is a service (SAC) code; set IsServc=Y or use a goods HSN."),
                ),
                _ => {}
            }
            Some(h)
        });

        // Goods need quantity and unit; services may leave them out.
        let goods = is_servc == Some(false);
        let _ = self.number(m, base, "Qty", goods);
        self.number(m, base, "FreeQty", false);
        if let Some(u) = self.text(m, base, "Unit", goods, Norm::Upper) {
            if !codes::is_valid_unit(&u) {
                self.p.push(
                    join(base, "Unit"),
                    code::INVALID_UNIT,
                    format!("Unit '{u}' is not a NIC unit code (UQC); use one such as NOS, PCS, KGS, MTR, LTR or OTH."),
                );
            }
        }
        self.req_num(m, base, "UnitPrice");
        let tot_amt = self.req_num(m, base, "TotAmt");
        let discount = self.opt_num(m, base, "Discount");
        self.number(m, base, "PreTaxVal", false);
        let ass = self.req_num(m, base, "AssAmt");
        let rate = self.req_num(m, base, "GstRt").and_then(|r| {
            if codes::is_allowed_rate(r, &opts.allowed_gst_rates) {
                Some(r)
            } else {
                let list: Vec<String> = opts.allowed_gst_rates.iter().map(|r| r.normalize().to_string()).collect();
                self.p.push(
                    join(base, "GstRt"),
                    code::INVALID_GST_RATE,
                    format!("GST rate {r}% is not in the GST rate master ({}).", list.join(", ")),
                );
                None
            }
        });
        let igst = self.opt_num(m, base, "IgstAmt");
        let cgst = self.opt_num(m, base, "CgstAmt");
        let sgst = self.opt_num(m, base, "SgstAmt");
        let ces_rt = self.opt_num(m, base, "CesRt");
        let ces_amt = self.opt_num(m, base, "CesAmt");
        let ces_non_advl = self.opt_num(m, base, "CesNonAdvlAmt");
        let st_ces_rt = self.opt_num(m, base, "StateCesRt");
        let st_ces = self.opt_num(m, base, "StateCesAmt");
        let st_ces_non_advl = self.opt_num(m, base, "StateCesNonAdvlAmt");
        // Other charges are zero or more (schema minimum 0); an adjustment goes in Discount.
        let oth = self.opt_num(m, base, "OthChrg");
        let tot_item_val = self.req_num(m, base, "TotItemVal");

        // AssAmt = TotAmt − Discount.
        if let (Some(t), Some(d), Some(a)) = (tot_amt, discount, ass) {
            if money::differs(a, t - d, ASSAMT_TOLERANCE) {
                self.p.push(
                    join(base, "AssAmt"),
                    code::ASSAMT_MISMATCH,
                    format!(
                        "Assessable amount {} should be total amount {} minus discount {} = {}.",
                        money::rupees(a),
                        money::rupees(t),
                        money::rupees(d),
                        money::rupees(t - d)
                    ),
                );
            }
        }

        self.tax_split(base, tax, ass, rate, igst, cgst, sgst);

        // Cess = AssAmt × CesRt / 100, and state cess = AssAmt × StateCesRt / 100 (the ad
        // valorem parts; the non-advalorem amounts are per quantity and not checked).
        for (key, what, rate, amount, c) in [
            ("CesAmt", "Cess", ces_rt, ces_amt, code::CESS_MISMATCH),
            ("StateCesAmt", "State cess", st_ces_rt, st_ces, code::STATE_CESS_MISMATCH),
        ] {
            if let (true, Some(a), Some(r), Some(v)) = (tax.rate_checks, ass, rate, amount) {
                let expected = money::percent(a, r);
                if r > Decimal::ZERO && money::differs(v, expected, opts.tax_tolerance) {
                    self.p.push(
                        join(base, key),
                        c,
                        format!(
                            "{what} amount {} should be {} ({r}% of assessable amount {}).",
                            money::rupees(v),
                            money::rupees(expected),
                            money::rupees(a)
                        ),
                    );
                }
            }
        }

        let cess = ces_amt.zip(ces_non_advl).map(|(a, b)| a + b);
        let state_cess = st_ces.zip(st_ces_non_advl).map(|(a, b)| a + b);
        // TotItemVal = AssAmt + GST + cess + state cess + other charges. Under
        // reverse charge and for EXPWP the IRP also accepts it without tax.
        if let (Some(a), Some(i), Some(c), Some(s), Some(ce), Some(sc), Some(o), Some(tv)) =
            (ass, igst, cgst, sgst, cess, state_cess, oth, tot_item_val)
        {
            let with_tax = a + i + c + s + ce + sc + o;
            let tol = opts.tax_tolerance;
            let ok = !money::differs(tv, with_tax, tol)
                || (tax.tax_may_be_excluded
                    && (!money::differs(tv, a + ce + sc + o, tol) || !money::differs(tv, a + o, tol)));
            if !ok {
                self.p.push(
                    join(base, "TotItemVal"),
                    code::TOTITEMVAL_MISMATCH,
                    format!(
                        "Item total {} should be assessable amount {} + taxes {} + cess {} + other charges {} = {}.",
                        money::rupees(tv),
                        money::rupees(a),
                        money::rupees(i + c + s),
                        money::rupees(ce + sc),
                        money::rupees(o),
                        money::rupees(with_tax)
                    ),
                );
            }
        }

        Item { hsn, ass, igst, cgst, sgst, cess, state_cess, tot_item_val }
    }

    /// IGST vs CGST+SGST for one line, and the amounts against the rate.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn tax_split(
        &mut self,
        base: &str,
        tax: &TaxContext,
        ass: Option<Decimal>,
        rate: Option<Decimal>,
        igst: Option<Decimal>,
        cgst: Option<Decimal>,
        sgst: Option<Decimal>,
    ) {
        let tol = self.opts.tax_tolerance;
        let Some(mode) = tax.mode else { return };
        // The full rate on IGST; half of it each on CGST and SGST.
        let expected = |half: bool| match (tax.rate_checks, ass, rate) {
            (true, Some(a), Some(r)) if half => Some(money::percent(a, r) / Decimal::TWO),
            (true, Some(a), Some(r)) => Some(money::percent(a, r)),
            _ => None,
        };
        match mode {
            TaxMode::IgstOnly => {
                for (key, amt) in [("CgstAmt", cgst), ("SgstAmt", sgst)] {
                    if let Some(v) = amt.filter(|v| !v.is_zero()) {
                        self.p.push(
                            join(base, key),
                            code::CGST_SGST_NOT_ALLOWED,
                            format!("{key} is {} but this supply is inter-state, SEZ or export (or IgstOnIntra=Y), so it takes IGST only; CGST and SGST must be 0.", money::rupees(v)),
                        );
                    }
                }
                // Under bond/LUT (EXPWOP/SEZWOP) a zero IGST is expected.
                let zero_without_payment =
                    tax.sup.is_some_and(SupplyType::is_without_payment) && igst.is_some_and(|v| v.is_zero());
                if let (Some(i), Some(e), false) = (igst, expected(false), zero_without_payment) {
                    if money::differs(i, e, tol) {
                        self.p.push(
                            join(base, "IgstAmt"),
                            code::IGST_MISMATCH,
                            format!(
                                "IGST {} should be {} ({}% of assessable amount {}).",
                                money::rupees(i),
                                money::rupees(e),
                                rate.unwrap_or_default(),
                                money::rupees(ass.unwrap_or_default())
                            ),
                        );
                    }
                }
            }
            TaxMode::Intra => {
                if let Some(i) = igst.filter(|v| !v.is_zero()) {
                    self.p.push(
                        join(base, "IgstAmt"),
                        code::IGST_NOT_ALLOWED,
                        format!("IGST {} is charged on an intra-state supply (seller state = place of supply); charge CGST + SGST instead, or set TranDtls.IgstOnIntra=Y if IGST is really due.", money::rupees(i)),
                    );
                }
                let mut mismatch = false;
                if let Some(e) = expected(true) {
                    for (key, name, amt, c) in
                        [("CgstAmt", "CGST", cgst, code::CGST_MISMATCH), ("SgstAmt", "SGST", sgst, code::SGST_MISMATCH)]
                    {
                        if let Some(v) = amt.filter(|v| money::differs(*v, e, tol)) {
                            mismatch = true;
                            self.p.push(
                                join(base, key),
                                c,
                                format!(
                                    "{name} {} should be {} (half of the {}% rate on assessable amount {}).",
                                    money::rupees(v),
                                    money::rupees(e),
                                    rate.unwrap_or_default(),
                                    money::rupees(ass.unwrap_or_default())
                                ),
                            );
                        }
                    }
                }
                // Reported only when the rate checks didn't already explain it.
                if let (false, Some(c), Some(s)) = (mismatch, cgst, sgst) {
                    if money::differs(c, s, money::PAISA) {
                        self.p.push(
                            join(base, "SgstAmt"),
                            code::CGST_SGST_UNEQUAL,
                            format!(
                                "SGST {} differs from CGST {}; on an intra-state supply they are always equal.",
                                money::rupees(s),
                                money::rupees(c)
                            ),
                        );
                    }
                }
            }
        }
    }

    /// Invoice totals; returns `TotInvVal` when it could be read.
    pub(super) fn val_dtls(&mut self, m: &mut Map<String, Value>, items: Option<&[Item]>) -> Option<Decimal> {
        const B: &str = "ValDtls";
        let tol = self.opts.total_tolerance;
        let ass_val = self.req_num(m, B, "AssVal");
        let cgst_val = self.opt_num(m, B, "CgstVal");
        let sgst_val = self.opt_num(m, B, "SgstVal");
        let igst_val = self.opt_num(m, B, "IgstVal");
        let ces_val = self.opt_num(m, B, "CesVal");
        let st_ces_val = self.opt_num(m, B, "StCesVal");
        let discount = self.opt_num(m, B, "Discount");
        let oth = self.opt_num(m, B, "OthChrg");
        // Its ±99.99 range (RNDOFF_RANGE) comes from the field table.
        let rnd = self.opt_num(m, B, "RndOffAmt");
        let tot = self.req_num(m, B, "TotInvVal");
        self.number(m, B, "TotInvValFc", false);

        let Some(items) = items else { return tot };
        let sums = [
            ("AssVal", "assessable amounts", ass_val, money::sum(items, |i| i.ass), code::ASSVAL_MISMATCH),
            ("CgstVal", "CGST amounts", cgst_val, money::sum(items, |i| i.cgst), code::CGSTVAL_MISMATCH),
            ("SgstVal", "SGST amounts", sgst_val, money::sum(items, |i| i.sgst), code::SGSTVAL_MISMATCH),
            ("IgstVal", "IGST amounts", igst_val, money::sum(items, |i| i.igst), code::IGSTVAL_MISMATCH),
            ("CesVal", "cess amounts", ces_val, money::sum(items, |i| i.cess), code::CESVAL_MISMATCH),
            (
                "StCesVal",
                "state cess amounts",
                st_ces_val,
                money::sum(items, |i| i.state_cess),
                code::STCESVAL_MISMATCH,
            ),
        ];
        for (key, what, given, expected, c) in sums {
            if let (Some(g), Some(e)) = (given, expected) {
                if money::differs(g, e, tol) {
                    self.p.push(
                        join(B, key),
                        c,
                        format!(
                            "{B}.{key} is {} but the items' {what} add up to {}.",
                            money::rupees(g),
                            money::rupees(e)
                        ),
                    );
                }
            }
        }
        if let (Some(t), Some(items_total), Some(o), Some(d), Some(r)) =
            (tot, money::sum(items, |i| i.tot_item_val), oth, discount, rnd)
        {
            let expected = items_total + o - d + r;
            if money::differs(t, expected, tol) {
                self.p.push(
                    join(B, "TotInvVal"),
                    code::TOTINVVAL_MISMATCH,
                    format!("Invoice total {} should be item totals {} + other charges {} − discount {} + round-off {} = {}.", money::rupees(t), money::rupees(items_total), money::rupees(o), money::rupees(d), money::rupees(r), money::rupees(expected)),
                );
            }
        }
        tot
    }
}
