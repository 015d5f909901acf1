//! `ewaybill.update_vehicle`: Part B, a new vehicle (or transport document) for an e-way bill.
use super::ewaybill::{parse_update_vehicle, EwbTarget, VehicleUpdate};
use super::{CommandBody, ParseOptions, Reader};
use crate::domain::Gstin;

#[derive(Debug, Clone)]
pub struct EwaybillUpdateVehicle {
    pub gstin: Gstin,
    pub target: EwbTarget,
    pub update: VehicleUpdate,
}

impl CommandBody for EwaybillUpdateVehicle {
    fn parse(r: &mut Reader<'_>, opts: &ParseOptions) -> Option<Self> {
        let gstin = r.gstin("gstin", true);
        let (target, update) = parse_update_vehicle(
            r,
            opts.validation.today,
            opts.validation.rail_doc_rules.active(opts.validation.today),
        );
        Some(EwaybillUpdateVehicle { gstin: gstin?, target: target?, update: update? })
    }

    fn gstin(&self) -> Option<&Gstin> {
        Some(&self.gstin)
    }
}
