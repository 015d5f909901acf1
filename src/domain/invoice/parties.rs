//! Seller, buyer, dispatch-from and ship-to: GSTINs, states, PINs, and the rules between parties,
//! including the ship-to rules of GSTN's advisory of 17 Jun 2026 behind [`ShipToRules`].

use std::str::FromStr;

use super::*;

/// The switch for the ship-to rules of GSTN's advisory of 17 Jun 2026 (ship-to GSTIN ≠ buyer's,
/// IRP error 2323; ship-to GSTIN's state = `ShipDtls.Stcd`, 2325; a ship-to GSTIN, or `URP`, when
/// the invoice carries `EwbDtls`). One source reported them put on hold on 30 Jul 2026
/// (`field-2026-11.md` §2.3), so they are off unless configured: `off`, `on`, or a date
/// (`2026-08-01`) from which they apply (judged by today's date in India, as the IRP would).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShipToRules {
    #[default]
    Off,
    On,
    From(NaiveDate),
}

impl ShipToRules {
    /// Are the rules in force on `today`?
    pub fn active(self, today: NaiveDate) -> bool {
        match self {
            ShipToRules::Off => false,
            ShipToRules::On => true,
            ShipToRules::From(d) => today >= d,
        }
    }
}

impl FromStr for ShipToRules {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" | "false" | "no" => Ok(ShipToRules::Off),
            "on" | "true" | "yes" => Ok(ShipToRules::On),
            t => NaiveDate::parse_from_str(t, "%Y-%m-%d").map(ShipToRules::From).map_err(|_| {
                format!("'{s}' is not a ship-to rules setting; expected off, on, or a date such as 2026-08-01")
            }),
        }
    }
}

impl std::fmt::Display for ShipToRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShipToRules::Off => f.write_str("off"),
            ShipToRules::On => f.write_str("on"),
            ShipToRules::From(d) => write!(f, "{}", d.format("%Y-%m-%d")),
        }
    }
}

impl<'de> serde::Deserialize<'de> for ShipToRules {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Flag(bool),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Flag(true) => Ok(ShipToRules::On),
            Raw::Flag(false) => Ok(ShipToRules::Off),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl serde::Serialize for ShipToRules {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Ctx<'_> {
    pub(super) fn party(
        &mut self,
        m: &mut Map<String, Value>,
        base: &str,
        role: PartyRole,
        is_export: Option<bool>,
    ) -> Party {
        let mut party = Party::default();
        // GSTIN: mandatory for seller and buyer; URP (unregistered) only for
        // an export buyer or a ship-to address.
        if role != PartyRole::Dispatch {
            let required = matches!(role, PartyRole::Seller | PartyRole::Buyer);
            if let Some(t) = self.text(m, base, "Gstin", required, Norm::Upper) {
                let path = join(base, "Gstin");
                if t == "URP" && role == PartyRole::Ship {
                    // Goods may be delivered to an unregistered place on any supply.
                    party.gstin_text = Some(t);
                } else if t == "URP" && role == PartyRole::Buyer {
                    match is_export {
                        Some(true) => party.gstin_text = Some(t),
                        Some(false) => self.p.push(
                            path,
                            code::URP_NOT_ALLOWED,
                            format!("{base}.Gstin is URP (unregistered person), which is only allowed for exports (EXPWP/EXPWOP); a B2B, SEZ or deemed-export buyer needs a GSTIN."),
                        ),
                        // SupTyp unknown: that problem is already reported.
                        None => {}
                    }
                } else if let Some(g) = self.parse_gstin(path, &t) {
                    party.gstin_text = Some(g.as_str().to_string());
                    party.gstin = Some(g);
                }
            }
        }
        party.gstin_broken = party.gstin_text.is_none()
            && matches!(m.get("Gstin"), Some(v) if !v.is_null() && v.as_str().is_none_or(|s| !s.trim().is_empty()));
        // Names, addresses, `Loc` (50 characters for the seller, 100 for the others), phone and
        // e-mail are checked from the field table by the sweep.
        let pin = self.pin(m, base);
        if role == PartyRole::Buyer {
            party.pos = self.state_code(m, base, "Pos", true);
        }
        party.stcd = self.state_code(m, base, "Stcd", true);

        if let (Some(pin), Some(st)) = (pin, &party.stcd) {
            if !codes::pin_matches_state(pin, st) {
                let name = codes::state_name(st).unwrap_or("that state");
                self.p.push(
                    join(base, "Pin"),
                    code::PIN_STATE_MISMATCH,
                    format!("PIN {pin} does not belong to state {st} ({name}) given in {base}.Stcd."),
                );
            }
        }
        // The GSTIN's state must be the party's state, except for an export
        // buyer, whose address is abroad.
        let check_state = match role {
            PartyRole::Seller => true,
            PartyRole::Buyer => is_export == Some(false),
            PartyRole::Dispatch | PartyRole::Ship => false,
        };
        if let (true, Some(g), Some(st)) = (check_state, &party.gstin, &party.stcd) {
            if g.state_code() != st {
                self.p.push(
                    join(base, "Stcd"),
                    code::GSTIN_STATE_MISMATCH,
                    format!("{base}.Stcd is {st} but GSTIN {g} belongs to state {}; they must match.", g.state_code()),
                );
            }
        }
        party
    }

    pub(super) fn cross_party(&mut self, seller: &Party, buyer: &Party, hint: Option<&str>) {
        if let (Some(hint), Some(s)) = (hint, &seller.gstin_text) {
            let hint = hint.trim().to_ascii_uppercase();
            if &hint != s {
                self.p.push(
                    "SellerDtls.Gstin",
                    code::SELLER_GSTIN_MISMATCH,
                    format!("Seller GSTIN {s} differs from GSTIN {hint} this request was sent for; an invoice can only be registered under its own seller's GSTIN."),
                );
            }
        }
        if let (Some(s), Some(b)) = (&seller.gstin, &buyer.gstin) {
            if s == b {
                self.p.push(
                    "BuyerDtls.Gstin",
                    code::SAME_SELLER_BUYER,
                    format!("Buyer GSTIN {b} is the seller's own GSTIN; a supply to yourself is not e-invoiced."),
                );
            }
        }
    }

    /// The ship-to rules of GSTN's advisory of 17 Jun 2026, when [`ShipToRules`] says they apply.
    pub(super) fn ship_to_rules(&mut self, buyer: &Party, ship: Option<&Party>, has_ewb: bool) {
        if !self.opts.ship_to_rules.active(self.opts.today) {
            return;
        }
        let Some(ship) = ship else { return };
        match (&ship.gstin_text, &ship.gstin) {
            // Absent (or broken, already reported): an e-way bill needs it.
            (None, None) if has_ewb && !ship.gstin_broken => self.p.push(
                "ShipDtls.Gstin",
                code::SHIP_TO_GSTIN_REQUIRED,
                "ShipDtls.Gstin is required when the invoice carries EwbDtls (GSTN advisory of 17 Jun 2026): give the ship-to party's GSTIN, or URP if it is unregistered.",
            ),
            (_, Some(g)) => {
                if buyer.gstin.as_ref() == Some(g) {
                    self.p.push(
                        "ShipDtls.Gstin",
                        code::SHIP_TO_SAME_AS_BUYER,
                        format!("Ship-to GSTIN {g} is the buyer's GSTIN; the IRP rejects this (error 2323). Leave ShipDtls out when goods go to the buyer's own address."),
                    );
                }
                if let Some(st) = ship.stcd.as_deref().filter(|st| *st != g.state_code()) {
                    self.p.push(
                        "ShipDtls.Stcd",
                        code::SHIP_TO_STATE_MISMATCH,
                        format!("ShipDtls.Stcd is {st} but ship-to GSTIN {g} belongs to state {}; the IRP rejects this (error 2325).", g.state_code()),
                    );
                }
            }
            _ => {}
        }
    }
}
