//! What a load reports as it goes: the hooks [`Progress`] the delivery
//! code calls. They print nothing: the events layer (`LoadEvents`) turns
//! them into events for its sinks (the renderers, and the journal, which
//! keeps each node's report as a `delivery`).

use super::{DeliveryPath, NodeReport};

/// Receives a load's progress. Implementations must be cheap: `streaming`
/// is called several times a second.
pub trait Progress: Sync {
    /// A load of `image` into `nodes` starts; `total` is the image's size.
    fn begin(&self, image: &str, nodes: &[String], total: Option<u64>);
    /// What a node holds was read.
    fn inventory(&self, node: &str, blobs: usize, already_present: bool);
    /// Bytes read from the source so far, and sent to each node.
    fn streaming(&self, read: u64, sent: &[(&str, u64)]);
    /// A node is done (loaded, skipped or failed).
    fn node_done(&self, report: &NodeReport);
    /// The image goes by `path`, for `reason` (before `begin`).
    fn path(&self, _image: &str, _path: DeliveryPath, _reason: &str) {}
}

/// Nothing at all (for library users and tests).
pub struct Silent;

impl Progress for Silent {
    fn begin(&self, _: &str, _: &[String], _: Option<u64>) {}
    fn inventory(&self, _: &str, _: usize, _: bool) {}
    fn streaming(&self, _: u64, _: &[(&str, u64)]) {}
    fn node_done(&self, _: &NodeReport) {}
}

/// Passes every hook on but `node_done`, which the caller says later: a
/// push attempt that may still fall back to save must not report the nodes
/// it skipped before it knows the push went through, or the save reports
/// them a second time.
pub struct HoldingDone<'a>(pub &'a dyn Progress);

impl Progress for HoldingDone<'_> {
    fn begin(&self, image: &str, nodes: &[String], total: Option<u64>) {
        self.0.begin(image, nodes, total);
    }
    fn inventory(&self, node: &str, blobs: usize, already_present: bool) {
        self.0.inventory(node, blobs, already_present);
    }
    fn streaming(&self, read: u64, sent: &[(&str, u64)]) {
        self.0.streaming(read, sent);
    }
    fn node_done(&self, _: &NodeReport) {}
    fn path(&self, image: &str, path: DeliveryPath, reason: &str) {
        self.0.path(image, path, reason);
    }
}
