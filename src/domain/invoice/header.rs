//! `TranDtls` and `DocDtls`: supply type, reverse charge, document type, number and date rules.

use super::*;

impl Ctx<'_> {
    // ---- sections ------------------------------------------------------------

    pub(super) fn tran_dtls(&mut self, m: &mut Map<String, Value>) -> Tran {
        const B: &str = "TranDtls";
        if let Some(s) = self.text(m, B, "TaxSch", true, Norm::Upper) {
            if s != "GST" {
                self.p.push(
                    join(B, "TaxSch"),
                    code::INVALID_TAX_SCHEME,
                    format!("Tax scheme '{s}' is not valid; e-invoices use GST."),
                );
            }
        }
        let sup = self.text(m, B, "SupTyp", true, Norm::Upper).and_then(|s| {
            let parsed = SupplyType::parse(&s);
            if parsed.is_none() {
                self.p.push(
                    join(B, "SupTyp"),
                    code::INVALID_SUPPLY_TYPE,
                    format!(
                        "Supply type '{s}' is not valid; expected one of {} (B2C invoices are not e-invoiced).",
                        codes::SUPPLY_TYPES.join(", ")
                    ),
                );
            }
            parsed
        });
        let reg_rev = self.flag_default_no(m, B, "RegRev");
        let igst_on_intra = self.flag_default_no(m, B, "IgstOnIntra");
        self.gstin(m, B, "EcmGstin", false);
        Tran { sup, reg_rev, igst_on_intra }
    }

    pub(super) fn doc_dtls(&mut self, m: &mut Map<String, Value>) -> Doc {
        const B: &str = "DocDtls";
        let typ = self.text(m, B, "Typ", true, Norm::Upper).and_then(|t| match DocType::parse(&t) {
            Ok(d) => Some(d),
            Err(e) => {
                self.p.push(join(B, "Typ"), e.code(), format!("The {e}."));
                None
            }
        });
        let no = self.text(m, B, "No", true, Norm::Trim).and_then(|t| match DocNumber::parse(&t) {
            Ok(n) => Some(n),
            Err(e) => {
                self.p.push(join(B, "No"), e.code(), format!("The {e}."));
                None
            }
        });
        let date = self.date_field(m, B, "Dt", true);
        if let Some(d) = date {
            self.doc_date_rules(d);
        }
        Doc { typ, no, date }
    }

    pub(super) fn doc_date_rules(&mut self, d: DocDate) {
        const P: &str = "DocDtls.Dt";
        let today = DocDate::new(self.opts.today);
        let start = DocDate::new(self.opts.einvoice_start);
        if d > today {
            self.p.push(
                P,
                code::DATE_IN_FUTURE,
                format!("Document date {d} is after today ({today}, India time); future-dated documents are rejected."),
            );
        }
        if d < start {
            self.p.push(
                P,
                code::DATE_BEFORE_EINVOICE_START,
                format!("Document date {d} is before e-invoicing started on {start}."),
            );
        }
        if let Some(days) = self.opts.reporting_window_days {
            if let Some(earliest) = self.opts.today.checked_sub_days(Days::new(days.into())) {
                let earliest = DocDate::new(earliest);
                if d < earliest {
                    self.p.push(
                        P,
                        code::DATE_OUTSIDE_REPORTING_WINDOW,
                        format!("Document date {d} is more than {days} days before today ({today}); the IRP only accepts documents dated {earliest} or later."),
                    );
                }
            }
        }
    }

    /// Reverse charge only where NIC allows it: B2B and SEZ supplies, not exports or deemed exports.
    pub(super) fn reverse_charge(&mut self, tran: &Tran) {
        if let (Some(true), Some(sup)) = (tran.reg_rev, tran.sup) {
            if !matches!(sup, SupplyType::B2b | SupplyType::SezWithPayment | SupplyType::SezWithoutPayment) {
                self.p.push(
                    "TranDtls.RegRev",
                    code::REVERSE_CHARGE_NOT_ALLOWED,
                    format!("Reverse charge (RegRev=Y) is not allowed on a {} supply; the IRP accepts it only for B2B, SEZWP and SEZWOP.", sup.as_str()),
                );
            }
        }
    }
}
