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
