//! How a live scan went: the JSON report's `scan` object.

/// How the scan went (the JSON report's `scan` object).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScanInfo {
    /// Interrupted (SIGINT/SIGTERM), or the capture failed: the verdicts so
    /// far; probes still waiting were not given their full time.
    pub partial: bool,
    /// Why the capture stopped, if it failed mid-scan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture_error: Option<String>,
    /// The uid the scan ran as after opening its handles.
    pub ran_as_uid: u32,
    pub engine: EngineStats,
    pub captures: Vec<(String, CaptureStats)>,
    /// Probes whose SYN the capture never saw (reported filtered, with a
    /// warning: the capture, not the network, lost them).
    pub not_captured: u64,
    pub send_errors: u64,
    pub seed: u64,
    pub source_port: u16,
    pub duration_s: f64,
    pub warnings: Vec<String>,
}

/// The scheduler's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct EngineStats {
    /// Probes sent the first time.
    pub sent: u64,
    pub retransmitted: u64,
    pub answered: u64,
    /// Of those, answered only after a retransmission: loss on the path.
    pub answered_after_retry: u64,
    /// Probes given up after every retry.
    pub unanswered: u64,
    /// Timing pings: SYNs sent again to a port of a mostly-silent target
    /// that answered before (round trips and loss while little answers).
    pub pings: u64,
}

/// Kernel counters at the end of a capture.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, PartialEq, Eq)]
pub struct CaptureStats {
    pub received: u64,
    /// Dropped by the kernel because the buffer was full.
    pub dropped: u64,
    /// Dropped by the interface or its driver.
    pub if_dropped: u64,
}
