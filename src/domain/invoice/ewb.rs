//! `EwbDtls`: the e-way bill details sent with a generate. The rules are `domain::transport`'s,
//! shared with the e-way bill commands: lengths and patterns (transport document number, vehicle
//! number and type) and the distance's range through the field table, the mode here.

use super::*;
use crate::domain::transport;

impl Ctx<'_> {
    pub(super) fn ewb_dtls(&mut self, m: &mut Map<String, Value>) {
        const B: &str = "EwbDtls";
        // The transporter ID is a GSTIN or a TRANSIN, which has the same layout and check digit.
        self.gstin(m, B, "TransId", false);
        self.transport_mode(m);
        // 0 asks the IRP to compute the PIN-to-PIN distance; at most 4000 km (`DISTANCE_OUT_OF_RANGE`).
        self.number(m, B, "Distance", true);
        self.date_field(m, B, "TransDocDt", false);
        self.text(m, B, "TransDocNo", false, Norm::Trim);
        self.text(m, B, "VehNo", false, Norm::Upper);
        self.text(m, B, "VehType", false, Norm::Upper);
    }

    /// `TransMode`: text "1" (road) to "4" (ship). ERPs often send the number; it is written back
    /// as the text the schema wants.
    fn transport_mode(&mut self, m: &mut Map<String, Value>) {
        const PATH: &str = "EwbDtls.TransMode";
        if let Some(Value::Number(n)) = m.get("TransMode") {
            if let Some(i) = n.as_u64().filter(|i| (1..=4).contains(i)) {
                m.insert("TransMode".into(), Value::String(i.to_string()));
            }
        }
        if matches!(m.get("TransMode"), Some(Value::Number(_))) {
            let given = m.get("TransMode").map(Value::to_string).unwrap_or_default();
            self.seen.insert(PATH.into());
            self.p.push(
                PATH,
                code::TRANS_MODE_INVALID,
                format!("{PATH} is {}; expected {}.", shorten(&given), transport::TRANS_MODES),
            );
            return;
        }
        if let Some(t) = self.text(m, "EwbDtls", "TransMode", false, Norm::Trim) {
            if transport::TransMode::parse(&t).is_none() {
                self.p.push(
                    PATH,
                    code::TRANS_MODE_INVALID,
                    format!("{PATH} is '{}'; expected {}.", shorten(&t), transport::TRANS_MODES),
                );
            }
        }
    }
}
