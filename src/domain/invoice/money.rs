//! Money, rates and quantities as exact decimals.
//!
//! Every number of the invoice is read as a [`Decimal`] from its JSON text, so `0.1 + 0.2` is
//! `0.3` and a finance reader can check each comparison by hand: the tolerances below are plain
//! rupee amounts, compared with `>` on exact values.

use rust_decimal::prelude::*;
pub use rust_decimal::Decimal;

/// ₹0.10: allowed gap between `AssAmt` and `TotAmt − Discount` (rounding of the two inputs).
pub const ASSAMT_TOLERANCE: Decimal = Decimal::from_parts(10, 0, 0, false, 2);
/// ₹1: the IRP's allowance per line for tax amounts and `TotItemVal`, and for invoice totals
/// against the item sums (IRP error 2189 reports a `TotInvVal` more than ₹1 off).
pub const RUPEE: Decimal = Decimal::ONE;
/// ₹0.01: CGST and SGST of one line must agree to the paisa.
pub const PAISA: Decimal = Decimal::from_parts(1, 0, 0, false, 2);
/// ₹99.99: `RndOffAmt` must lie within ± this.
pub const RNDOFF_LIMIT: Decimal = Decimal::from_parts(9999, 0, 0, false, 2);

const HUNDRED: Decimal = Decimal::ONE_HUNDRED;

/// Parses the text of a JSON number or a numeric string. `None` when it is not a number or does
/// not fit a decimal (far beyond any range the schema allows).
pub fn parse(text: &str) -> Option<Decimal> {
    if text.contains(['e', 'E']) {
        Decimal::from_scientific(text).ok()
    } else {
        Decimal::from_str_exact(text).ok()
    }
}

/// Digits after the decimal point that carry a value (`12.50` has 1).
pub fn decimals(v: Decimal) -> u32 {
    v.normalize().scale()
}

/// `amount × rate / 100`, the tax at a percentage rate. Inputs are range-checked by the field
/// table (amounts ≤ 10¹⁴, rates < 1000), so this cannot overflow.
pub fn percent(amount: Decimal, rate: Decimal) -> Decimal {
    amount * rate / HUNDRED
}

/// Rupees with two decimals, rounded half away from zero as invoices are.
pub fn rupees(v: Decimal) -> String {
    format!("{:.2}", v.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero))
}

/// True when `a` and `b` differ by more than `tolerance` rupees.
pub fn differs(a: Decimal, b: Decimal, tolerance: Decimal) -> bool {
    (a - b).abs() > tolerance
}

/// The sum of a column, `None` if any value is missing (broken).
pub fn sum<T>(rows: &[T], f: impl Fn(&T) -> Option<Decimal>) -> Option<Decimal> {
    rows.iter().map(f).try_fold(Decimal::ZERO, |acc, v| v.map(|v| acc + v))
}

/// An amount in whole paise, rounded to two places half away from zero as invoices are. `None`
/// only beyond ±₹92 233 720 368 547 758.07, far outside any amount the schema allows.
pub fn paise(v: Decimal) -> Option<i64> {
    v.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero).checked_mul(HUNDRED)?.to_i64()
}

/// True when `a` and `b`, each rounded to the paisa, are at most one paisa apart.
pub fn within_paisa(a: Decimal, b: Decimal) -> bool {
    matches!((paise(a), paise(b)), (Some(a), Some(b)) if a.abs_diff(b) <= 1)
}

/// An amount the IRP sent as a JSON number or a numeric string, read from its text (never
/// through a binary float): `1180.5`, `"1180.50"`.
pub fn from_json(v: &serde_json::Value) -> Option<Decimal> {
    match v {
        serde_json::Value::Number(n) => parse(&n.to_string()),
        serde_json::Value::String(s) => parse(s.trim()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        parse(s).unwrap()
    }

    #[test]
    fn exact_arithmetic_and_rupee_tolerances() {
        assert_eq!(d("0.1") + d("0.2"), d("0.3"));
        assert!(!differs(d("100.00"), d("101.00"), RUPEE), "exactly ₹1 apart is within ₹1");
        assert!(differs(d("100.00"), d("101.01"), RUPEE));
        assert_eq!(percent(d("24050"), d("18")), d("4329"));
        assert_eq!(rupees(d("2164.5")), "2164.50");
        assert_eq!(rupees(d("0.005")), "0.01");
        assert_eq!(rupees(d("-0.005")), "-0.01");
    }

    #[test]
    fn parsing() {
        assert_eq!(decimals(d("12.500")), 1);
        assert_eq!(decimals(d("12")), 0);
        assert_eq!(d("1e3"), d("1000"));
        assert!(parse("1e999").is_none());
        assert!(parse("abc").is_none());
        assert_eq!(sum(&[Some(d("1.1")), Some(d("2.2"))], |v| *v), Some(d("3.3")));
        assert_eq!(sum(&[Some(d("1")), None], |v| *v), None);
    }

    #[test]
    fn paise_and_json_amounts() {
        assert_eq!(paise(d("39441.5")), Some(3_944_150));
        assert_eq!(paise(d("0.005")), Some(1));
        assert_eq!(paise(d("-0.005")), Some(-1));
        assert_eq!(paise(Decimal::MAX), None);
        assert!(within_paisa(d("100.00"), d("100.01")), "one paisa apart is the same total");
        assert!(within_paisa(d("100.004"), d("100.01")), "rounded to 100.00 and 100.01");
        assert!(!within_paisa(d("100.00"), d("100.02")));
        assert!(!within_paisa(d("100"), Decimal::MAX));
        use serde_json::json;
        assert_eq!(from_json(&json!(1180.5)), Some(d("1180.50")));
        assert_eq!(from_json(&json!(" 1180.50 ")), Some(d("1180.5")));
        assert_eq!(from_json(&json!(0.1)), Some(d("0.1")), "from the number's text, not its binary value");
        assert_eq!(from_json(&json!(true)), None);
        assert_eq!(from_json(&json!("abc")), None);
    }
}
