//! A diagnosis: what `diagnose` found for a name and port, per address
//! (the findings, the host's profile, the verdicts, the trace), as the
//! reports and the JSON document show it.

use super::findings::{DropLocation, Finding, HostProfile};
use crate::model::{AfterHandshake, PortTrace, ScanInfo, Verdict};
use crate::resolve::Resolution;
use serde::Serialize;
use std::net::IpAddr;

#[derive(Debug, Clone, Serialize)]
pub struct Route {
    pub source: IpAddr,
    pub device: String,
}

#[derive(Debug, Serialize)]
pub struct AddressDiagnosis {
    pub address: IpAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<Route>,
    pub findings: Vec<Finding>,
    pub host: HostProfile,
    pub results: Vec<Verdict>,
    /// Completed handshakes with the open ports (the asked one first), held
    /// to see what the server does.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub after_handshake: Vec<AfterHandshake>,
    /// TTL-limited probes, when the port was silent and another answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<Vec<PortTrace>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_location: Option<DropLocation>,
}

#[derive(Debug, Serialize)]
pub struct Diagnosis {
    pub schema_version: u32,
    /// When the diagnosis ran (UTC, RFC 3339) and on which machine (its
    /// host name): for a ticket, where it matters whence one probed.
    pub generated_at: String,
    pub generated_on: String,
    pub host: String,
    pub port: u16,
    pub resolution: Resolution,
    pub resolution_summary: String,
    pub addresses: Vec<AddressDiagnosis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scan: Option<ScanInfo>,
}
