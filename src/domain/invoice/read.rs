//! Field readers: each records `REQUIRED`/`INVALID_TYPE` (and, from the field table, the
//! schema's length, pattern, decimals and range) and returns `None` for a value rules must skip.

use super::*;

impl Ctx<'_> {
    // ---- field readers -----------------------------------------------------

    pub(super) fn required(&mut self, path: String) {
        self.p.push(path.clone(), code::REQUIRED, format!("{path} is required but is missing or blank."));
    }

    pub(super) fn wrong_type(&mut self, path: String, expected: &str, found: &Value) {
        self.p.push(
            path.clone(),
            code::INVALID_TYPE,
            format!("{path} must be {expected}, but {} was given.", describe(found)),
        );
    }

    /// The table's spec for `base.key` (`base` concrete: `ItemList[3]`). Every field a rule reads
    /// is in the table; a miss is a bug caught by the tests (debug builds).
    pub(super) fn spec(&self, base: &str, key: &str) -> Option<&'static fields::FieldSpec> {
        let s = fields::get_child(&fields::template(base), key);
        debug_assert!(s.is_some(), "{base}.{key} is not in the field table");
        s
    }

    pub(super) fn object<'m>(
        &mut self,
        parent: &'m mut Map<String, Value>,
        base: &str,
        key: &str,
        required: bool,
    ) -> Option<&'m mut Map<String, Value>> {
        let path = join(base, key);
        self.seen.insert(path.clone());
        match parent.get_mut(key) {
            None | Some(Value::Null) => {
                if required {
                    self.required(path);
                }
                None
            }
            Some(Value::Object(m)) => Some(m),
            Some(other) => {
                self.wrong_type(path, "an object (a group of fields)", other);
                None
            }
        }
    }

    pub(super) fn list<'m>(
        &mut self,
        parent: &'m mut Map<String, Value>,
        base: &str,
        key: &str,
        required: bool,
    ) -> Option<&'m mut Vec<Value>> {
        let path = join(base, key);
        self.seen.insert(path.clone());
        match parent.get_mut(key) {
            None | Some(Value::Null) => {
                if required {
                    self.required(path);
                }
                None
            }
            Some(Value::Array(a)) => Some(a),
            Some(other) => {
                self.wrong_type(path, "a list", other);
                None
            }
        }
    }

    /// Reads text (trimmed for checking; normalized in the payload per `norm`), then applies the
    /// field table's length and pattern when the table owns the field's format.
    pub(super) fn text(
        &mut self,
        map: &mut Map<String, Value>,
        base: &str,
        key: &str,
        required: bool,
        norm: Norm,
    ) -> Option<String> {
        let path = join(base, key);
        self.seen.insert(path.clone());
        let t = match map.get_mut(key) {
            None | Some(Value::Null) => {
                if required {
                    self.required(path);
                }
                return None;
            }
            Some(Value::String(s)) => {
                let t = match norm {
                    Norm::Upper => s.trim().to_ascii_uppercase(),
                    Norm::Keep | Norm::Trim => s.trim().to_string(),
                };
                if t.is_empty() {
                    if required {
                        self.required(path);
                    }
                    return None;
                }
                if norm != Norm::Keep && *s != t {
                    s.clone_from(&t);
                }
                t
            }
            Some(other) => {
                self.wrong_type(path, "text", other);
                return None;
            }
        };
        match self.spec(base, key) {
            Some(spec @ fields::FieldSpec { check: fields::Check::Schema { code: c }, .. }) => {
                self.text_format(&path, &t, spec, c).then_some(t)
            }
            _ => Some(t),
        }
    }

    /// Length (in characters, after trimming), then pattern; one problem at most.
    fn text_format(&mut self, path: &str, t: &str, spec: &fields::FieldSpec, pattern_code: &'static str) -> bool {
        if let Some((min, max)) = spec.len {
            let n = t.chars().count();
            if n < min || n > max {
                self.p.push(
                    path,
                    code::TEXT_LENGTH,
                    format!("'{}' has {n} characters; {path} must have {min} to {max}.", shorten(t)),
                );
                return false;
            }
        }
        if !fields::matches(spec, t) {
            let why = match (crate::domain::transport::by_code(pattern_code), pattern_code) {
                (Some(rule), _) => format!("must be {}", rule.expected),
                (None, code::TEXT_CHARS) => "must not contain a double quote (\")".to_string(),
                (None, code::EMAIL_FORMAT) => "must be an e-mail address such as accounts@example.com".to_string(),
                (None, code::PHONE_FORMAT) => "must be 6 to 12 digits, without spaces or signs".to_string(),
                (None, code::PORT_FORMAT) => {
                    "must be a port code of 2 to 10 letters and digits, such as INNSA1".to_string()
                }
                (None, code::DOC_NUMBER_FORMAT) => {
                    "must be 2 to 16 letters, digits, '/' or '-', not starting with 0, '/' or '-'".to_string()
                }
                _ => format!("must match the schema's pattern {}", spec.pattern.unwrap_or_default()),
            };
            self.p.push(path, pattern_code, format!("{path} is '{}' but {why}.", shorten(t)));
            return false;
        }
        true
    }

    /// Reads a number as an exact decimal, accepting numeric strings and rewriting them as JSON
    /// numbers (integers stay integers so `Pin` doesn't become `560058.0`). The field table's
    /// range and decimal places apply unless a rule owns the field's format.
    pub(super) fn number(
        &mut self,
        map: &mut Map<String, Value>,
        base: &str,
        key: &str,
        required: bool,
    ) -> Field<Decimal> {
        let path = join(base, key);
        self.seen.insert(path.clone());
        let slot = match map.get_mut(key) {
            None | Some(Value::Null) => {
                if required {
                    self.required(path);
                    return Field::Bad;
                }
                return Field::Absent;
            }
            Some(v) => v,
        };
        let v = match slot {
            Value::Number(n) => number_value(n),
            Value::String(s) => {
                let t = s.trim();
                if t.is_empty() {
                    if required {
                        self.required(path);
                        return Field::Bad;
                    }
                    // A blank optional number means "no value"; drop it so
                    // the IRP's schema check doesn't trip on "".
                    map.remove(key);
                    return Field::Absent;
                }
                if !NUMERIC.is_match(t) {
                    self.p.push(
                        path.clone(),
                        code::INVALID_TYPE,
                        format!("{path} must be a number, but '{}' was given.", shorten(t)),
                    );
                    return Field::Bad;
                }
                let value = money::parse(t);
                // Written back as the JSON number of the decimal's own text (`007.50` → 7.50), so an
                // integer stays an integer and nothing passes through a float of ours.
                if let Some(n) = value.and_then(|d| d.to_string().parse::<Number>().ok()) {
                    *slot = Value::Number(n);
                }
                value
            }
            other => {
                self.wrong_type(path, "a number", other);
                return Field::Bad;
            }
        };
        let spec = self.spec(base, key);
        let (min, max) = fields::range(spec);
        let owned_by_rule = matches!(spec, Some(fields::FieldSpec { check: fields::Check::Rule(_), .. }));
        let range_code = match spec {
            Some(fields::FieldSpec { check: fields::Check::Schema { code: c }, .. }) => c,
            _ => code::VALUE_RANGE,
        };
        let Some(v) = v else {
            // Not representable as a decimal: far outside every range of the schema.
            if owned_by_rule {
                self.p.push(path.clone(), code::INVALID_TYPE, format!("{path} is not a usable number."));
                return Field::Bad;
            }
            self.p.push(
                path.clone(),
                range_code,
                format!("{path} is far outside the allowed range of {min} to {max}."),
            );
            return Field::Bad;
        };
        if owned_by_rule {
            return Field::Ok(v);
        }
        if v < min || v > max {
            if v.is_sign_negative() && min.is_zero() {
                self.p.push(
                    path.clone(),
                    code::NEGATIVE_VALUE,
                    format!("{path} is {v}, but it cannot be negative (credit notes also use positive amounts)."),
                );
            } else {
                self.p.push(path.clone(), range_code, format!("{path} is {v}; it must lie between {min} and {max}."));
            }
            return Field::Bad;
        }
        if let Some(places) = spec.and_then(|s| s.decimals) {
            if money::decimals(v) > places {
                let what = match places {
                    0 => "a whole number".to_string(),
                    1 => "at most 1 digit after the decimal point".to_string(),
                    n => format!("at most {n} digits after the decimal point"),
                };
                self.p.push(path.clone(), code::DECIMAL_PLACES, format!("{path} is {v}; the schema allows {what}."));
                return Field::Bad;
            }
        }
        Field::Ok(v)
    }

    /// Mandatory number: `None` if missing or broken.
    pub(super) fn req_num(&mut self, map: &mut Map<String, Value>, base: &str, key: &str) -> Option<Decimal> {
        match self.number(map, base, key, true) {
            Field::Ok(v) => Some(v),
            Field::Absent | Field::Bad => None,
        }
    }

    /// Optional number that counts as 0 when absent: `None` only if broken.
    pub(super) fn opt_num(&mut self, map: &mut Map<String, Value>, base: &str, key: &str) -> Option<Decimal> {
        match self.number(map, base, key, false) {
            Field::Ok(v) => Some(v),
            Field::Absent => Some(Decimal::ZERO),
            Field::Bad => None,
        }
    }

    /// A `Y`/`N` flag; absent is `Field::Absent`.
    pub(super) fn flag(&mut self, map: &mut Map<String, Value>, base: &str, key: &str, required: bool) -> Field<bool> {
        let before = self.p.len();
        match self.text(map, base, key, required, Norm::Upper).as_deref() {
            Some("Y") => Field::Ok(true),
            Some("N") => Field::Ok(false),
            Some(other) => {
                self.p.push(
                    join(base, key),
                    code::INVALID_FLAG,
                    format!("{base}.{key} is '{other}'; expected Y or N."),
                );
                Field::Bad
            }
            // A problem was recorded (missing, blank or wrong type)…
            None if self.p.len() > before => Field::Bad,
            // …or an optional flag was simply not given.
            None => Field::Absent,
        }
    }

    /// An optional flag that defaults to `N`: `None` only if broken.
    pub(super) fn flag_default_no(&mut self, map: &mut Map<String, Value>, base: &str, key: &str) -> Option<bool> {
        match self.flag(map, base, key, false) {
            Field::Ok(b) => Some(b),
            Field::Absent => Some(false),
            Field::Bad => None,
        }
    }

    pub(super) fn gstin(
        &mut self,
        map: &mut Map<String, Value>,
        base: &str,
        key: &str,
        required: bool,
    ) -> Option<Gstin> {
        let t = self.text(map, base, key, required, Norm::Upper)?;
        self.parse_gstin(join(base, key), &t)
    }

    pub(super) fn parse_gstin(&mut self, path: String, text: &str) -> Option<Gstin> {
        match Gstin::parse(text, self.opts.relaxed_gstin_check_digit) {
            Ok(g) => Some(g),
            Err(e) => {
                self.p.push(path, e.code(), format!("{e}."));
                None
            }
        }
    }

    pub(super) fn state_code(
        &mut self,
        map: &mut Map<String, Value>,
        base: &str,
        key: &str,
        required: bool,
    ) -> Option<String> {
        let t = self.text(map, base, key, required, Norm::Upper)?;
        if codes::is_valid_state_code(&t) {
            Some(t)
        } else {
            self.p.push(
                join(base, key),
                code::INVALID_STATE_CODE,
                format!("State code '{t}' in {base}.{key} is not a GST state code; expected two digits such as 29 (Karnataka) or 96 (Other Countries)."),
            );
            None
        }
    }

    pub(super) fn pin(&mut self, map: &mut Map<String, Value>, base: &str) -> Option<u32> {
        let v = match self.number(map, base, "Pin", true) {
            Field::Ok(v) => v,
            _ => return None,
        };
        match v.to_u32().filter(|p| Decimal::from(*p) == v && codes::is_valid_pin(*p)) {
            Some(p) => Some(p),
            None => {
                self.p.push(
                    join(base, "Pin"),
                    code::PIN_FORMAT,
                    format!("PIN {v} in {base} is not valid; a PIN has six digits and does not start with 0."),
                );
                None
            }
        }
    }

    /// A date field that only needs to be well-formed.
    pub(super) fn date_field(
        &mut self,
        map: &mut Map<String, Value>,
        base: &str,
        key: &str,
        required: bool,
    ) -> Option<DocDate> {
        let t = self.text(map, base, key, required, Norm::Trim)?;
        match DocDate::parse(&t) {
            Ok(d) => Some(d),
            Err(e) => {
                let msg = format!("{base}.{key}: {e}.");
                self.p.push(join(base, key), e.code(), msg);
                None
            }
        }
    }
}

/// A JSON number as a decimal: integers directly, others through their shortest text (what a
/// reader of the JSON sees), as `money::parse` would.
fn number_value(n: &Number) -> Option<Decimal> {
    match (n.as_i64(), n.as_u64()) {
        (Some(i), _) => Some(Decimal::from(i)),
        (None, Some(u)) => Some(Decimal::from(u)),
        _ => money::parse(&n.to_string()),
    }
}
