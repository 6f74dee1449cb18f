//! What an environment needs: memory, disk where the engine stores images,
//! and temp space, each figure with where it came from.
//!
//! The doctor fills [`Requirements`] from the command line (`--image`,
//! the kind config's nodes); the plan runner will fill it from the plan and
//! from peaks recorded in earlier runs. Either way the arithmetic is here, and
//! every number carries its source, so that the output never shows a figure
//! nobody can trace.

use crate::engine::EngineKind;
use crate::units::bytes;
use serde::Serialize;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Memory a kind node needs to run Kubernetes before any workload. A stated
/// default until runs are recorded: kind's control plane (etcd, API server,
/// controllers, kubelet, containerd) commonly settles at 500-700 MiB.
pub const NODE_MEMORY_DEFAULT: u64 = 768 * MIB;

/// Memory headroom per node while `ctr images import` runs. FIELD-NOTES
/// measured ctr at 28 MB peak RSS and containerd at 45 MB importing a 300 MB
/// image, and the node's page cache is reclaimable; the import is streamed,
/// so this does not grow with the image. 256 MiB is that measurement with
/// a margin of three.
pub const IMPORT_HEADROOM: u64 = 256 * MIB;

/// The size assumed for an image that does not exist yet, when no earlier run
/// recorded one. Stated, never silently used: the source says so.
pub const UNKNOWN_IMAGE_DEFAULT: u64 = GIB;

/// A size and where it came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Estimate {
    pub bytes: u64,
    /// "docker image inspect app:1 (Size)", "recorded peak of run 12",
    /// "stated default: ...".
    pub source: String,
}

impl Estimate {
    pub fn new(bytes: u64, source: impl Into<String>) -> Estimate {
        Estimate {
            bytes,
            source: source.into(),
        }
    }
}

/// One image the environment delivers to its nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImageNeed {
    pub image: String,
    /// Its uncompressed size.
    pub size: Estimate,
    /// False when the image is still to be built or pulled: then it also
    /// takes room in the engine's storage.
    pub present: bool,
}

/// The inputs: what the environment consists of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Requirements {
    /// Kubernetes nodes that receive every image (kind's load balancer is not one).
    pub nodes: u32,
    /// The nodes run already (a cluster reused): their own memory is in
    /// use, not still needed.
    pub nodes_running: bool,
    pub images: Vec<ImageNeed>,
    /// Builds that run at the same time, and the peak memory of one.
    pub parallel_builds: u32,
    /// None when nothing is built.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_peak: Option<Estimate>,
    /// Where the engine writes a whole image before its `save` streams;
    /// None when it streams from its store (or no engine answers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staging: Option<Staging>,
}

/// The directory on the engine's side where `save` stages an image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Staging {
    pub engine: EngineKind,
    pub dir: String,
}

impl Requirements {
    /// A cluster of `nodes` nodes receiving `images`, with no builds.
    pub fn new(nodes: u32, images: Vec<ImageNeed>) -> Requirements {
        Requirements {
            nodes,
            nodes_running: false,
            images,
            parallel_builds: 0,
            build_peak: None,
            staging: None,
        }
    }

    /// The figures, line by line.
    pub fn needs(&self) -> Needs {
        let nodes = u64::from(self.nodes);
        let mut memory = Vec::new();
        if !self.nodes_running {
            memory.push(Need::new(
                "kind nodes running Kubernetes",
                nodes * NODE_MEMORY_DEFAULT,
                format!(
                    "{} node(s) x {} (stated default: no run recorded yet)",
                    self.nodes,
                    bytes(NODE_MEMORY_DEFAULT)
                ),
            ));
        }
        memory.push(Need::new(
                "image import headroom",
                nodes * IMPORT_HEADROOM,
                format!(
                    "{} node(s) importing at once x {}: ctr 28 MB + containerd 45 MB peak RSS measured importing 300 MB (FIELD-NOTES), times 3; streamed, so not proportional to image size",
                    self.nodes,
                    bytes(IMPORT_HEADROOM)
                ),
        ));
        if let Some(peak) = &self.build_peak
            && self.parallel_builds > 0
        {
            memory.push(Need::new(
                "parallel image builds",
                u64::from(self.parallel_builds) * peak.bytes,
                format!(
                    "{} build(s) at once x {} ({})",
                    self.parallel_builds,
                    bytes(peak.bytes),
                    peak.source
                ),
            ));
        }
        let mut storage = Vec::new();
        let mut temp = Vec::new();
        for image in &self.images {
            storage.push(Need::new(
                format!("{} on every node", image.image),
                2 * image.size.bytes * nodes,
                format!(
                    "{} node(s) x 2 x {}: content plus unpacked snapshot; size from {}",
                    self.nodes,
                    bytes(image.size.bytes),
                    image.size.source
                ),
            ));
            if !image.present {
                storage.push(Need::new(
                    format!("{} in the engine once built", image.image),
                    image.size.bytes,
                    image.size.source.clone(),
                ));
            }
            temp.push(Need::new(
                format!("{} saved by `kind load docker-image`", image.image),
                image.size.bytes,
                format!(
                    "kind writes `save` of the image to $TMPDIR before importing ({}); `loadmaster load` streams and needs none",
                    image.size.source
                ),
            ));
        }
        // Images are delivered one at a time and each staged copy is
        // removed once streamed, so the largest one is what must fit.
        let largest = self.images.iter().max_by_key(|image| image.size.bytes);
        let staging = match (&self.staging, largest) {
            (Some(staging), Some(image)) => vec![Need::new(
                format!("{} staged by `{} save`", image.image, staging.engine),
                image.size.bytes,
                format!(
                    "`{} save` writes the whole image to {} on the engine's side before it streams; images are loaded one at a time, so the largest counts ({})",
                    staging.engine, staging.dir, image.size.source
                ),
            )],
            _ => Vec::new(),
        };
        Needs {
            memory,
            storage,
            temp,
            staging,
        }
    }
}

/// One line of a requirement: what, how much, and why that much.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Need {
    pub what: String,
    pub bytes: u64,
    pub source: String,
}

impl Need {
    fn new(what: impl Into<String>, bytes: u64, source: impl Into<String>) -> Need {
        Need {
            what: what.into(),
            bytes,
            source: source.into(),
        }
    }
}

/// Everything the environment needs, by resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Needs {
    /// Memory of the engine's host or VM.
    pub memory: Vec<Need>,
    /// Disk where the engine stores images and containers (node volumes too).
    pub storage: Vec<Need>,
    /// Temp space, for tools that write image archives there.
    pub temp: Vec<Need>,
    /// Where the engine stages a `save` (on the engine's side).
    pub staging: Vec<Need>,
}

impl Needs {
    pub fn memory_bytes(&self) -> u64 {
        self.memory.iter().map(|n| n.bytes).sum()
    }

    pub fn storage_bytes(&self) -> u64 {
        self.storage.iter().map(|n| n.bytes).sum()
    }

    pub fn temp_bytes(&self) -> u64 {
        self.temp.iter().map(|n| n.bytes).sum()
    }

    pub fn staging_bytes(&self) -> u64 {
        self.staging.iter().map(|n| n.bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(name: &str, size: u64, present: bool) -> ImageNeed {
        ImageNeed {
            image: name.into(),
            size: Estimate::new(size, "test"),
            present,
        }
    }

    #[test]
    fn memory_does_not_grow_with_image_size() {
        let small = Requirements::new(2, vec![image("a", 100 * MIB, true)]).needs();
        let huge = Requirements::new(2, vec![image("a", 3 * GIB, true)]).needs();
        assert_eq!(small.memory_bytes(), huge.memory_bytes());
        assert_eq!(
            small.memory_bytes(),
            2 * (NODE_MEMORY_DEFAULT + IMPORT_HEADROOM)
        );
    }

    #[test]
    fn every_node_holds_content_and_snapshot() {
        let needs = Requirements::new(3, vec![image("a", GIB, true)]).needs();
        assert_eq!(needs.storage_bytes(), 3 * 2 * GIB);
        assert_eq!(needs.temp_bytes(), GIB);
    }

    #[test]
    fn an_image_still_to_build_also_takes_engine_storage() {
        let needs = Requirements::new(1, vec![image("a", GIB, false)]).needs();
        assert_eq!(needs.storage_bytes(), 2 * GIB + GIB);
        assert_eq!(needs.storage.len(), 2);
    }

    #[test]
    fn an_engine_that_stages_saves_needs_room_for_the_largest_image() {
        let images = vec![image("a", GIB, true), image("b", 3 * GIB, true)];
        let mut requirements = Requirements::new(1, images);
        assert_eq!(requirements.needs().staging_bytes(), 0);
        requirements.staging = Some(Staging {
            engine: EngineKind::Podman,
            dir: "/var/tmp".into(),
        });
        let needs = requirements.needs();
        assert_eq!(needs.staging_bytes(), 3 * GIB);
        assert!(needs.staging[0].what.starts_with("b staged"), "{needs:?}");
        assert!(needs.staging[0].source.contains("/var/tmp"));
    }

    #[test]
    fn parallel_builds_add_their_peaks() {
        let mut requirements = Requirements::new(1, Vec::new());
        requirements.parallel_builds = 3;
        requirements.build_peak = Some(Estimate::new(GIB, "recorded peak"));
        let needs = requirements.needs();
        assert_eq!(
            needs.memory_bytes(),
            NODE_MEMORY_DEFAULT + IMPORT_HEADROOM + 3 * GIB
        );
        assert!(needs.memory[2].source.contains("recorded peak"));
    }
}
