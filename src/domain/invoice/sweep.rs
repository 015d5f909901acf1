//! The sweep: after the rules, every field of the table that no rule read is read here, with
//! the table's type, required-ness, length, pattern, decimals and range. Payment details,
//! references, supporting documents, batch and attribute details, names, addresses and contact
//! fields have no business rule, so the table is all there is to check.

use super::fields::{Check, FieldSpec, Req, Ty};
use super::*;

impl Ctx<'_> {
    pub(super) fn sweep(&mut self, root: &mut Map<String, Value>, is_export: Option<bool>) {
        self.sweep_in(root, "", "", is_export);
    }

    fn sweep_in(&mut self, map: &mut Map<String, Value>, template: &str, base: &str, is_export: Option<bool>) {
        let specs: Vec<&'static FieldSpec> = fields::children(template).collect();
        for spec in specs {
            let key = spec.key();
            let path = join(base, key);
            let seen = self.seen.contains(&path);
            let required = match spec.req {
                Req::Always => true,
                Req::Export => is_export == Some(true),
                // Goods lines and the ship-to GSTIN are the rules' business.
                Req::Optional | Req::Goods | Req::WithEwb => false,
            };
            match spec.ty {
                Ty::Object => {
                    let m = if seen {
                        map.get_mut(key).and_then(Value::as_object_mut)
                    } else {
                        self.object(map, base, key, required)
                    };
                    if let Some(m) = m {
                        self.sweep_in(m, spec.path, &path, is_export);
                    }
                }
                Ty::List => {
                    let list = if seen {
                        map.get_mut(key).and_then(Value::as_array_mut)
                    } else {
                        self.list(map, base, key, required)
                    };
                    // A list longer than the IRP accepts is refused whole (ITEM_COUNT, or the
                    // schema's maxItems): its elements are not read, so the work stays bounded.
                    if list.as_ref().is_some_and(|l| l.len() > self.opts.max_items) {
                        continue;
                    }
                    for (i, v) in list.into_iter().flatten().enumerate() {
                        let at = format!("{path}[{i}]");
                        match v {
                            Value::Object(m) => self.sweep_in(m, spec.path, &at, is_export),
                            // The rules reported the elements of the lists they read.
                            other if !seen => self.wrong_type(at, "an object", other),
                            _ => {}
                        }
                    }
                }
                _ if seen => {}
                Ty::Number => {
                    let _ = self.number(map, base, key, required);
                }
                Ty::Text => match spec.check {
                    Check::Date => {
                        self.date_field(map, base, key, required);
                    }
                    Check::Flag => {
                        let _ = self.flag(map, base, key, required);
                    }
                    Check::Gstin => {
                        self.gstin(map, base, key, required);
                    }
                    Check::Country => self.country(map, base, key, required),
                    Check::Schema { .. } | Check::Rule(_) => {
                        self.text(map, base, key, required, Norm::Keep);
                    }
                },
            }
        }
    }
}
