//! What a node's containerd holds, asked with `ctr` through `exec`.
//!
//! Before a load: the snapshotter kind's import uses, the blobs already in the
//! content store (so that only missing ones are sent), and which image the
//! requested name points at (so that a node that has it is skipped). After a
//! load: that the name points at the manifest we sent and that all of its
//! content is there.

use crate::archive::Digest;
use crate::engine::{Engine, EngineError, ExecSession};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Duration;

/// The containerd namespace Kubernetes (the CRI plugin) uses.
pub const NAMESPACE: &str = "k8s.io";

/// What one node holds before a load.
#[derive(Clone, Debug)]
pub struct Inventory {
    /// The snapshotter the CRI plugin unpacks images with.
    pub snapshotter: String,
    /// Every blob in the node's content store.
    pub blobs: BTreeSet<Digest>,
    /// Compressed blobs and the diff ID containerd recorded for each when it
    /// unpacked them (label `containerd.io/uncompressed`): layers that came
    /// in through a registry push rather than a `save` archive.
    pub uncompressed: BTreeMap<Digest, Digest>,
    /// containerd's root directory (`root` in its config).
    pub root: String,
    /// Exact sizes of the blobs the current image's manifest lists (`ctr`
    /// lists sizes only rounded).
    pub sizes: BTreeMap<Digest, u64>,
    /// The image the requested name points at now, if any.
    pub current: Option<CurrentImage>,
}

/// The image a name points at on a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrentImage {
    pub manifest: Digest,
    /// None when the name points at an index (a multi-platform image).
    pub config: Option<Digest>,
    /// All content present and unpacked.
    pub complete: bool,
}

/// An `exec` into a node that has answered with the node's [`Inventory`]
/// and waits to be told whether to import: [`Session::import`] or
/// [`Session::close`]. Dropped without either, the exec is killed.
pub struct Session {
    exec: ExecSession,
}

/// Opens a node's session for a load of `reference` (a normalized name) and
/// reads its inventory.
///
/// One exec does everything a load needs in the node (an exec costs
/// 60-130 ms on docker and more on podman, as much as the import of a small
/// changed layer): the containerd config, the content store's listing, the
/// image the name points at and that image's manifest; then, when told, the
/// import of what stdin carries and the check of the name after it
/// ([`SESSION_SCRIPT`]).
pub fn open(
    engine: &Engine,
    node: &str,
    reference: &str,
) -> Result<(Inventory, Session), EngineError> {
    let argv = ["sh", "-c", SESSION_SCRIPT, "sh", reference];
    let shown = ["sh", "-c", SESSION_SHOWN, "sh", reference];
    let (answer, exec) = engine.exec_answering(node, &argv, &shown, INVENTORY_END)?;
    let parts: Vec<&str> = answer.split(INVENTORY_SEPARATOR).collect();
    let [config, listing, check, manifest_json] = parts[..] else {
        return Err(EngineError::UnexpectedAnswer {
            command: format!("{} exec -i {node} sh -c {SESSION_SHOWN}", engine.kind()),
            detail: format!("expected 4 sections, got {}", parts.len()),
        });
    };
    let (blobs, uncompressed) = parse_content_list(listing);
    let current = parse_check(check, reference).map(|row| CurrentImage {
        config: config_of_manifest(manifest_json),
        manifest: row.manifest,
        complete: row.complete,
    });
    let inventory = Inventory {
        snapshotter: snapshotter(config),
        root: containerd_root(config),
        sizes: descriptor_sizes(manifest_json),
        blobs,
        uncompressed,
        current,
    };
    Ok((inventory, Session { exec }))
}

impl Session {
    /// Starts the import: everything written to the returned exec from here
    /// on is the OCI layout tar `ctr images import` reads, unpacking with
    /// `snapshotter`. When it succeeded, the exec prints the check of the
    /// name after it ([`check_after_import`]).
    pub fn import(mut self, snapshotter: &str) -> Result<ExecSession, EngineError> {
        let command = format!("import {snapshotter}\n");
        match self.exec.stdin().write_all(command.as_bytes()) {
            Ok(()) => Ok(self.exec),
            // The exec is gone: what it said is the error.
            Err(error) => {
                let node = self.exec.container().to_string();
                self.exec.finish(Duration::from_secs(30))?;
                Err(EngineError::Io {
                    command: format!("the import in {node}"),
                    source: error,
                })
            }
        }
    }

    /// Ends the session without an import.
    pub fn close(self) -> Result<(), EngineError> {
        self.exec.finish(Duration::from_secs(30)).map(drop)
    }
}

const INVENTORY_SEPARATOR: &str = "\n@@loadmaster-inventory@@\n";
const INVENTORY_END: &str = "@@loadmaster-inventory-end@@";
const CHECK_SEPARATOR: &str = "@@loadmaster-check@@\n";

/// `sh -c` script of a [`Session`], the reference as `$1`. It prints the
/// inventory in sections split by [`INVENTORY_SEPARATOR`] and ended by a
/// line [`INVENTORY_END`], then reads one line from stdin (the shell reads
/// a pipe byte by byte, so the tar that follows stays for `ctr`):
/// `import SNAPSHOTTER` imports the rest of stdin and prints the check of
/// the name after [`CHECK_SEPARATOR`]; anything else, or the end of
/// input, ends the session. Only POSIX sh and busybox-level tools
/// (`tail`), which kind nodes and the test nodes have.
/// [`SESSION_SCRIPT`] as errors show it: one line that says what it runs.
const SESSION_SHOWN: &str = "'<inventory>; ctr --namespace k8s.io images import --all-platforms --digests - && ctr --namespace k8s.io images check name==$1'";

const SESSION_SCRIPT: &str = r#"set -e
name=$1
sep='
@@loadmaster-inventory@@'
containerd config dump
echo "$sep"
ctr --namespace k8s.io content ls
echo "$sep"
check=$(ctr --namespace k8s.io images check "name==$name")
echo "$check"
echo "$sep"
set -- $(echo "$check" | tail -n +2)
if [ -n "$3" ]; then ctr --namespace k8s.io content get "$3"; fi
echo
echo '@@loadmaster-inventory-end@@'
read -r action snapshotter || exit 0
[ "$action" = import ] || exit 0
ctr --namespace k8s.io images import --all-platforms --digests "--snapshotter=$snapshotter" - &&
  echo '@@loadmaster-check@@' &&
  ctr --namespace k8s.io images check "name==$name"
"#;

/// The label containerd's unpacker puts on a compressed layer: its diff ID.
pub const UNCOMPRESSED_LABEL: &str = "containerd.io/uncompressed";

/// Reads `ctr content ls`: `DIGEST SIZE AGE LABELS`, where AGE has spaces
/// ("Less than a second") and LABELS is `k=v,k=v` or `-`, always last.
/// Returns every digest, and the compressed → diff ID pairs.
fn parse_content_list(listing: &str) -> (BTreeSet<Digest>, BTreeMap<Digest, Digest>) {
    let mut blobs = BTreeSet::new();
    let mut uncompressed = BTreeMap::new();
    for line in listing.lines() {
        let mut fields = line.split_whitespace();
        let Some(digest) = fields.next().and_then(|d| d.parse::<Digest>().ok()) else {
            continue;
        };
        blobs.insert(digest);
        let labels = fields.last().unwrap_or("-");
        let diff_id = labels
            .split(',')
            .filter_map(|label| label.split_once('='))
            .find(|(key, _)| *key == UNCOMPRESSED_LABEL)
            .and_then(|(_, value)| value.parse::<Digest>().ok());
        // An uncompressed layer is labelled with its own digest.
        if let Some(diff_id) = diff_id.filter(|d| *d != digest) {
            uncompressed.insert(digest, diff_id);
        }
    }
    (blobs, uncompressed)
}

/// containerd's `root` from a `containerd config dump`; its default when unset.
fn containerd_root(config_dump: &str) -> String {
    config_dump
        .parse::<toml::Table>()
        .ok()
        .and_then(|config| config.get("root")?.as_str().map(str::to_string))
        .filter(|root| !root.is_empty())
        .unwrap_or_else(|| "/var/lib/containerd".to_string())
}

/// The check a [`Session`] printed after its import: the manifest
/// `reference` points at and whether all its content is there and
/// unpacked. None when the name is not there.
pub fn check_after_import(import_output: &str, reference: &str) -> Option<CheckRow> {
    let (_, check) = import_output.rsplit_once(CHECK_SEPARATOR)?;
    parse_check(check, reference)
}

/// The snapshotter in a `containerd config dump`: the CRI plugin's setting
/// (config version 2: `plugins."io.containerd.grpc.v1.cri".containerd`;
/// version 3: `plugins."io.containerd.cri.v1.images"`), as kind reads it.
/// containerd's own default, overlayfs, when neither is set.
pub fn snapshotter(config_dump: &str) -> String {
    let Ok(config) = config_dump.parse::<toml::Table>() else {
        return DEFAULT_SNAPSHOTTER.to_string();
    };
    let plugins = config.get("plugins");
    let v2 = plugins
        .and_then(|p| p.get("io.containerd.grpc.v1.cri"))
        .and_then(|cri| cri.get("containerd"))
        .and_then(|c| c.get("snapshotter"));
    let v3 = plugins
        .and_then(|p| p.get("io.containerd.cri.v1.images"))
        .and_then(|images| images.get("snapshotter"));
    v3.or(v2)
        .and_then(|s| s.as_str())
        .filter(|s| !s.is_empty())
        .unwrap_or(DEFAULT_SNAPSHOTTER)
        .to_string()
}

const DEFAULT_SNAPSHOTTER: &str = "overlayfs";

/// One row of `ctr images check`.
#[derive(Debug, PartialEq, Eq)]
pub struct CheckRow {
    pub manifest: Digest,
    /// All content present and unpacked.
    pub complete: bool,
}

/// Finds `reference`'s row in `ctr images check` output:
/// `REF TYPE DIGEST STATUS SIZE UNPACKED`, where STATUS reads
/// `complete (2/2)` or `incomplete (1/2)` and UNPACKED `true`/`false`.
fn parse_check(output: &str, reference: &str) -> Option<CheckRow> {
    output.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.first() != Some(&reference) || fields.len() < 4 {
            return None;
        }
        let manifest = fields[2].parse::<Digest>().ok()?;
        let complete = fields[3] == "complete" && fields.last() == Some(&"true");
        Some(CheckRow { manifest, complete })
    })
}

/// The digest and size of every blob a manifest names (config and layers).
fn descriptor_sizes(manifest_json: &str) -> BTreeMap<Digest, u64> {
    let Ok(manifest) = serde_json::from_str::<serde_json::Value>(manifest_json) else {
        return BTreeMap::new();
    };
    let layers = manifest["layers"].as_array().into_iter().flatten();
    layers
        .chain([&manifest["config"]])
        .filter_map(|d| Some((d["digest"].as_str()?.parse().ok()?, d["size"].as_u64()?)))
        .collect()
}

/// The config digest a manifest names; None for an index or unreadable JSON.
fn config_of_manifest(manifest_json: &str) -> Option<Digest> {
    let manifest: serde_json::Value = serde_json::from_str(manifest_json).ok()?;
    manifest["config"]["digest"]
        .as_str()?
        .parse::<Digest>()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // `containerd config dump` of containerd 1.6 with kind's config (trimmed).
    const DUMP_V2: &str = r#"
version = 2
root = "/var/lib/containerd"

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.6"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "runc"
      snapshotter = "native"
"#;

    // containerd 2.x writes config version 3 with single-quoted keys.
    const DUMP_V3: &str = r#"
version = 3
[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
"#;

    #[test]
    fn reads_containerds_root() {
        assert_eq!(containerd_root(DUMP_V2), "/var/lib/containerd");
        assert_eq!(
            containerd_root("root = \"/data/containerd\"\n"),
            "/data/containerd"
        );
        assert_eq!(containerd_root("version = 2\n"), "/var/lib/containerd");
    }

    // `ctr -n k8s.io content ls` of ctr 1.6.20: a pushed (gzip) layer with
    // the unpacker's label, an uncompressed one labelled with itself, a
    // config without labels.
    const CONTENT_LS: &str = "DIGEST\t\t\t\t\t\t\t\t\tSIZE\tAGE\t\t\tLABELS\n\
sha256:dcdf54a0abab4e28178106b50ccab4288902878b5ff39719c9df3c25e5330965\t3MB\tLess than a second\tcontainerd.io/uncompressed=sha256:4b30e5539391f807fab1f039e2d916f07467eba4f987f279ebd0b3a4cfbc6897,containerd.io/gc.root=x\n\
sha256:4b30e5539391f807fab1f039e2d916f07467eba4f987f279ebd0b3a4cfbc6897\t3MB\t2 minutes\tcontainerd.io/uncompressed=sha256:4b30e5539391f807fab1f039e2d916f07467eba4f987f279ebd0b3a4cfbc6897\n\
sha256:761d9b27f438e14cd4304bd6646e19271cbfbb750a201eb3ed0e2d218d8deee8\t957B\t2 minutes\t-\n";

    #[test]
    fn reads_blobs_and_their_diff_ids() {
        let (blobs, uncompressed) = parse_content_list(CONTENT_LS);
        assert_eq!(blobs.len(), 3);
        let gzip: Digest =
            "sha256:dcdf54a0abab4e28178106b50ccab4288902878b5ff39719c9df3c25e5330965"
                .parse()
                .unwrap();
        let diff_id: Digest =
            "sha256:4b30e5539391f807fab1f039e2d916f07467eba4f987f279ebd0b3a4cfbc6897"
                .parse()
                .unwrap();
        assert_eq!(
            uncompressed.into_iter().collect::<Vec<_>>(),
            vec![(gzip, diff_id)]
        );
    }

    #[test]
    fn reads_the_cri_snapshotter_of_both_config_versions() {
        assert_eq!(snapshotter(DUMP_V2), "native");
        assert_eq!(snapshotter(DUMP_V3), "overlayfs");
        assert_eq!(snapshotter("version = 2\n"), "overlayfs");
        assert_eq!(snapshotter("not toml ["), "overlayfs");
    }

    // Recorded from ctr 1.6.20 in a test node.
    const CHECK: &str = "REF                              TYPE                                                 DIGEST                                                                  STATUS         SIZE              UNPACKED \n\
localhost/loadmaster-test-node:1 application/vnd.docker.distribution.manifest.v2+json sha256:761d9b27f438e14cd4304bd6646e19271cbfbb750a201eb3ed0e2d218d8deee8 complete (2/2) 91.6 MiB/91.6 MiB true\n\
docker.io/library/app:1 application/vnd.docker.distribution.manifest.v2+json sha256:761d9b27f438e14cd4304bd6646e19271cbfbb750a201eb3ed0e2d218d8deee8 incomplete (1/2) 1.6 MiB/91.6 MiB false\n";

    #[test]
    fn finds_the_row_of_the_reference() {
        let row = parse_check(CHECK, "localhost/loadmaster-test-node:1").unwrap();
        assert_eq!(
            row.manifest.to_string(),
            "sha256:761d9b27f438e14cd4304bd6646e19271cbfbb750a201eb3ed0e2d218d8deee8"
        );
        assert!(row.complete);
        assert!(
            !parse_check(CHECK, "docker.io/library/app:1")
                .unwrap()
                .complete
        );
        assert_eq!(parse_check(CHECK, "docker.io/library/other:1"), None);
    }

    #[test]
    fn reads_the_config_digest_of_a_manifest() {
        let manifest = r#"{"schemaVersion":2,"config":{"digest":"sha256:4b30e5539391f807fab1f039e2d916f07467eba4f987f279ebd0b3a4cfbc6897","size":957}}"#;
        assert_eq!(
            config_of_manifest(manifest).unwrap().to_string(),
            "sha256:4b30e5539391f807fab1f039e2d916f07467eba4f987f279ebd0b3a4cfbc6897"
        );
        assert_eq!(config_of_manifest(r#"{"manifests":[]}"#), None);
        let sizes = descriptor_sizes(
            r#"{"config":{"digest":"sha256:4b30e5539391f807fab1f039e2d916f07467eba4f987f279ebd0b3a4cfbc6897","size":957},"layers":[{"digest":"sha256:761d9b27f438e14cd4304bd6646e19271cbfbb750a201eb3ed0e2d218d8deee8","size":1048576}]}"#,
        );
        assert_eq!(
            sizes.values().copied().collect::<Vec<_>>(),
            vec![957, 1048576]
        );
        assert!(descriptor_sizes("").is_empty());
    }
}
