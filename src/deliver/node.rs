//! What a node's containerd holds, asked with `ctr` through `exec`.
//!
//! Before a load: the snapshotter kind's import uses, the blobs already in the
//! content store and the layers already unpacked (so that only what is
//! missing is sent), and which image the requested name points at (so that a
//! node that has it is skipped). After a load: that the name points at the
//! manifest we sent and that the node can run it (unpacked with its
//! snapshotter).
//!
//! A layer can be unpacked without its blob: the CRI plugin's pulls with
//! kind's `discard_unpacked_layers = true` (every 1.x pull; on 2.x the
//! pulls with `use_local_image_pull`, and `ctr images import --local
//! --discard-unpacked-layers`) let the garbage collector remove each layer
//! blob once its snapshot exists. Imports through the Transfer service and
//! ctr's default import keep the blobs. Containers run from the snapshots,
//! so such an image is usable as it is, and an import skips a layer whose
//! snapshot exists without reading its blob.
//!
//! Nodes run containerd 1.6 to 2.x (kind v0.27+ ships 2.x). What differs is
//! read from the node, not assumed: its `ctr version` picks the import
//! ([`ImportMode`]), its config the snapshotter and what the transfer
//! service can unpack.

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
    /// The committed snapshots of the CRI snapshotter, by key: an unpacked
    /// layer's key is its chain ID.
    pub snapshots: BTreeSet<Digest>,
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
    /// Unpacked with the node's snapshotter: what a container runs from
    /// (the layer blobs may have been discarded).
    pub usable: bool,
}

impl Inventory {
    /// The bottom layers of an image with these diff IDs that need no blob
    /// on this node: those whose chain's snapshot is committed (then so are
    /// the ones below it). containerd's unpacker skips such a layer without
    /// reading its blob.
    pub fn unpacked_layers(&self, diff_ids: &[Digest]) -> BTreeSet<Digest> {
        let chain = chain_ids(diff_ids);
        let unpacked = chain
            .iter()
            .rposition(|id| self.snapshots.contains(id))
            .map_or(0, |top| top + 1);
        diff_ids[..unpacked].iter().copied().collect()
    }
}

/// The chain ID of each layer of a stack (OCI image spec): the bottom
/// layer's is its diff ID, each next one is the digest of
/// `"<chain ID below> <diff ID>"`.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut chain: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match chain.last() {
            None => *diff_id,
            Some(below) => Digest::of(format!("{below} {diff_id}").as_bytes()),
        };
        chain.push(next);
    }
    chain
}

/// An `exec` into a node that has answered with the node's [`Inventory`]
/// and waits to be told whether to import: [`Session::import`] or
/// [`Session::close`]. Dropped without either, the exec is killed.
pub struct Session {
    exec: ExecSession,
    /// How this node's `ctr` imports (from its version and config).
    mode: ImportMode,
}

/// How a node's `ctr images import` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportMode {
    /// containerd 2.x's default: through the daemon's Transfer service,
    /// which tags the image only once it is unpacked.
    Transfer,
    /// `--local` (ctr 1.7+): the client-side import, for what the Transfer
    /// service gets wrong. It tags before it unpacks, so a failed unpack
    /// is rolled back by the script.
    Local,
    /// ctr 1.6, which knows no `--local`: its only import is the
    /// client-side one, rolled back the same way.
    Classic,
}

impl ImportMode {
    /// The mode for a node whose `ctr version` and `containerd config
    /// dump` read so, unpacking with `snapshotter`:
    /// - ctr before 1.7 has only the client-side import;
    /// - 1.7 has `--local` but its Transfer import is new: local;
    /// - 2.0.0 and 2.0.1 fail Transfer imports with `--all-platforms`
    ///   (containerd #11228): local;
    /// - a snapshotter the Transfer service has no `unpack_config` entry
    ///   for fails with "no unpack platforms defined" (#11606, what a
    ///   `native` node meets): local;
    /// - otherwise Transfer, as `kind load` runs it.
    pub fn choose(ctr: Option<Version>, config_dump: &str, snapshotter: &str) -> ImportMode {
        let Some(ctr) = ctr else {
            // A version we cannot read: the import every ctr has.
            return ImportMode::Classic;
        };
        match (ctr.major, ctr.minor, ctr.patch) {
            (0 | 1, minor, _) if minor < 7 || ctr.major == 0 => ImportMode::Classic,
            (1, _, _) | (2, 0, 0 | 1) => ImportMode::Local,
            _ if !transfer_unpacks(config_dump, snapshotter) => ImportMode::Local,
            _ => ImportMode::Transfer,
        }
    }

    fn word(self) -> &'static str {
        match self {
            ImportMode::Transfer => "transfer",
            ImportMode::Local => "local",
            ImportMode::Classic => "classic",
        }
    }
}

/// A containerd release number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

/// The client's version in `ctr version` output (`  Version:  v2.3.4`
/// under `Client:`; Debian's reads `1.6.20~ds1`).
pub fn ctr_version(output: &str) -> Option<Version> {
    let line = output
        .lines()
        .find_map(|line| line.trim().strip_prefix("Version:"))?;
    let text = line.trim().trim_start_matches('v');
    let mut numbers = text
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().ok());
    Some(Version {
        major: numbers.next()??,
        minor: numbers.next()??,
        patch: numbers.next().flatten().unwrap_or(0),
    })
}

/// Whether the Transfer service unpacks for `snapshotter`: its
/// `unpack_config` (plugin `io.containerd.transfer.v1.local`) names it.
/// containerd's default, when the dump has none, is its default
/// snapshotter for the host platform.
fn transfer_unpacks(config_dump: &str, snapshotter: &str) -> bool {
    let Ok(config) = config_dump.parse::<toml::Table>() else {
        return snapshotter == DEFAULT_SNAPSHOTTER;
    };
    let entries = config
        .get("plugins")
        .and_then(|p| p.get("io.containerd.transfer.v1.local"))
        .and_then(|t| t.get("unpack_config"))
        .and_then(|u| u.as_array());
    match entries {
        Some(entries) => entries
            .iter()
            .any(|entry| entry.get("snapshotter").and_then(|s| s.as_str()) == Some(snapshotter)),
        None => snapshotter == DEFAULT_SNAPSHOTTER,
    }
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
    let script = session_script();
    let wait = CONTAINERD_TRIES.to_string();
    let argv = ["sh", "-c", &script, "sh", reference, &wait];
    let shown = ["sh", "-c", SESSION_SHOWN, "sh", reference, &wait];
    let (answer, exec) = engine.exec_answering(node, &argv, &shown, INVENTORY_END)?;
    let parts: Vec<&str> = answer.split(INVENTORY_SEPARATOR).collect();
    let [
        version,
        config,
        snapshotter,
        listing,
        snapshots,
        check,
        manifest_json,
    ] = parts[..]
    else {
        return Err(EngineError::UnexpectedAnswer {
            command: format!("{} exec -i {node} sh -c {SESSION_SHOWN}", engine.kind()),
            detail: format!("expected 7 sections, got {}", parts.len()),
        });
    };
    let snapshotter = match snapshotter.trim() {
        "" => DEFAULT_SNAPSHOTTER,
        named => named,
    };
    let mode = ImportMode::choose(ctr_version(version), config, snapshotter);
    let (blobs, uncompressed) = parse_content_list(listing);
    let current = parse_check(check, reference).map(|row| CurrentImage {
        config: config_of_manifest(manifest_json),
        manifest: row.manifest,
        usable: row.usable,
    });
    let inventory = Inventory {
        snapshotter: snapshotter.to_string(),
        root: containerd_root(config),
        sizes: descriptor_sizes(manifest_json),
        blobs,
        snapshots: parse_snapshots(snapshots),
        uncompressed,
        current,
    };
    Ok((inventory, Session { exec, mode }))
}

impl Session {
    /// Starts the import: everything written to the returned exec from here
    /// on is the OCI layout tar `ctr images import` reads, unpacking with
    /// `snapshotter`. When it succeeded, the exec prints the check of the
    /// name after it ([`check_after_import`]).
    pub fn import(mut self, snapshotter: &str) -> Result<ExecSession, EngineError> {
        let command = format!("import {snapshotter} {}\n", self.mode.word());
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

    /// How this node imports.
    pub fn mode(&self) -> ImportMode {
        self.mode
    }

    /// Ends the session without an import.
    pub fn close(self) -> Result<(), EngineError> {
        self.exec.finish(Duration::from_secs(30)).map(drop)
    }
}

const INVENTORY_SEPARATOR: &str = "\n@@loadmaster-inventory@@\n";
const INVENTORY_END: &str = "@@loadmaster-inventory-end@@";
const CHECK_SEPARATOR: &str = "@@loadmaster-check@@\n";

/// `sh -c` script of a [`Session`], the reference as `$1`. It waits for
/// containerd (a new node's takes a moment to come up: about 1 s on 2.x),
/// bounded by [`CONTAINERD_TRIES`]; then it prints the inventory in sections
/// split by [`INVENTORY_SEPARATOR`] and ended by a line [`INVENTORY_END`]:
/// `ctr version`, `containerd config dump`, the CRI snapshotter
/// ([`SNAPSHOTTER_OF_CONFIG`]), the content store, that snapshotter's
/// snapshots, the check of the name with it, and the manifest the name
/// points at. Then it reads
/// one line from stdin (the shell reads a pipe byte by byte, so the tar that
/// follows stays for `ctr`): `import SNAPSHOTTER MODE` imports the rest of
/// stdin and prints the check of the name after [`CHECK_SEPARATOR`];
/// anything else, or the end of input, ends the session.
///
/// No `--digests`: on 2.3+ it adds an `import-DATE@sha256:` record on every
/// import, each pinning its content (and kind turns image GC off); the
/// index names the image. Modes that tag before they unpack (`local`,
/// `classic`, see [`ImportMode`]) put back what the name pointed at when the
/// import fails, and remove the `sha256:<image ID>` record that the CRI
/// plugin adds for every new image (1.6 does it as soon as the name is
/// tagged). ctr 2.x's `DEPRECATION:` warnings are turned off, so that
/// nothing but ctr's answers is parsed. Only POSIX sh and tools that kind
/// nodes and the test nodes' busybox have (`tail`).
const SESSION_SCRIPT: &str = r#"set -e
SNAPSHOTTER_OF_CONFIG
export CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1
name=$1
sep='
@@loadmaster-inventory@@'
tries=0
until version=$(ctr --connect-timeout 1s version 2>&1); do
  tries=$((tries + 1))
  if [ "$tries" -ge "$2" ]; then
    echo "containerd in this node did not answer after $2 tries (it is still starting, or it stopped): $version" >&2
    exit 1
  fi
  sleep 0.2
done
echo "$version"
echo "$sep"
config=$(containerd config dump)
echo "$config"
echo "$sep"
snapshotter=$(echo "$config" | cri_snapshotter)
echo "${snapshotter:-overlayfs}"
echo "$sep"
ctr --namespace k8s.io content ls
echo "$sep"
ctr --namespace k8s.io snapshots "--snapshotter=${snapshotter:-overlayfs}" ls
echo "$sep"
check=$(ctr --namespace k8s.io images check "--snapshotter=${snapshotter:-overlayfs}" "name==$name")
echo "$check"
echo "$sep"
set -- $(echo "$check" | tail -n +2)
previous=$3
if [ -n "$previous" ]; then ctr --namespace k8s.io content get "$previous"; fi
echo
echo '@@loadmaster-inventory-end@@'
read -r action snapshotter mode || exit 0
[ "$action" = import ] || exit 0
local=
[ "$mode" = local ] && local=--local
keep=
records=
if [ "$mode" != transfer ]; then
  records=$(ctr --namespace k8s.io images ls -q)
  if [ -n "$previous" ]; then
    keep=localhost/loadmaster-rollback:$$
    ctr --namespace k8s.io images tag --force "$name" "$keep" >/dev/null
  fi
fi
if ctr --namespace k8s.io images import $local --all-platforms "--snapshotter=$snapshotter" -; then
  [ -z "$keep" ] || ctr --namespace k8s.io images rm "$keep" >/dev/null || true
  echo '@@loadmaster-check@@'
  ctr --namespace k8s.io images check "--snapshotter=$snapshotter" "name==$name"
else
  failed=$?
  if [ -n "$keep" ]; then
    ctr --namespace k8s.io images tag --force "$keep" "$name" >/dev/null &&
      ctr --namespace k8s.io images rm "$keep" >/dev/null || true
  elif [ "$mode" != transfer ]; then
    ctr --namespace k8s.io images rm "$name" >/dev/null 2>&1 || true
  fi
  if [ "$mode" != transfer ]; then
    for record in $(ctr --namespace k8s.io images ls -q 2>/dev/null); do
      case $record in
        sha256:*) echo "$records" | grep -qxF "$record" ||
          ctr --namespace k8s.io images rm "$record" >/dev/null 2>&1 || true ;;
      esac
    done
  fi
  exit "$failed"
fi
"#;

/// [`SESSION_SCRIPT`] as errors show it: one line that says what it runs.
const SESSION_SHOWN: &str = "'<inventory>; ctr --namespace k8s.io images import [--local] --all-platforms --snapshotter=S - && ctr --namespace k8s.io images check --snapshotter=S name==$1'";

/// How often [`SESSION_SCRIPT`] asks a node's containerd before it gives up
/// (its `$2`; a try takes 0.2 s, or 1.2 s while the socket is not there
/// yet, so 5 to 30 s): a node just started, or whose containerd is being
/// restarted. Within the engine's 60 s wait for the inventory.
pub const CONTAINERD_TRIES: u32 = 25;

/// [`SESSION_SCRIPT`] with [`SNAPSHOTTER_OF_CONFIG`] in its place.
fn session_script() -> String {
    SESSION_SCRIPT.replace("SNAPSHOTTER_OF_CONFIG", SNAPSHOTTER_OF_CONFIG)
}

/// The shell function `cri_snapshotter` that reads the CRI plugin's
/// snapshotter out of a `containerd config dump` on stdin, as kind reads
/// it: config version 2 (containerd 1.x, and what kind writes) keeps it in
/// `[plugins."io.containerd.grpc.v1.cri".containerd]`, versions 3 and 4
/// (what containerd 2.x dumps) in `[plugins.'io.containerd.cri.v1.images']`,
/// and the `snapshotter` keys of other sections are not it. Prints nothing
/// when neither sets it (containerd's default: overlayfs). It runs in the
/// node, before the check that needs it, so that the inventory stays one
/// exec; plain POSIX sh (no awk or sed, which a minimal node may lack),
/// `?` in the patterns standing for either quote.
const SNAPSHOTTER_OF_CONFIG: &str = r#"cri_snapshotter() {
  section= found=
  while IFS= read -r line; do
    line=${line#"${line%%[! ]*}"}
    case $line in
      '['*) section=$line ;;
      snapshotter*=*)
        case $section in
          *'io.containerd.grpc.v1.cri'?.containerd']' | *'io.containerd.cri.v1.images'?']')
            found=${line#*=}
            found=${found#"${found%%[! ]*}"}
            found=${found#[\"\']}
            found=${found%%[\"\']*}
            ;;
        esac
        ;;
    esac
  done
  echo "$found"
}"#;

/// The label containerd's unpacker puts on a compressed layer: its diff ID.
pub const UNCOMPRESSED_LABEL: &str = "containerd.io/uncompressed";

/// The label that keeps a blob from containerd's garbage collector.
const GC_ROOT_LABEL: &str = "containerd.io/gc.root";

/// The labels by which a blob (a manifest, an index) references its
/// children for the garbage collector: `containerd.io/gc.ref.content.l.0`,
/// `...config`, `...m.0`.
const GC_REF_PREFIX: &str = "containerd.io/gc.ref.content";

/// Reads `ctr content ls`: `DIGEST SIZE AGE LABELS`, where AGE has spaces
/// ("Less than a second") and LABELS is `k=v,k=v` or `-`, always last (in
/// any order: 2.x sorts them, 1.6 does not).
///
/// Returns the blobs the node keeps, and the compressed → diff ID pairs. A
/// blob is kept when another blob references it or it is a GC root: an
/// import that was aborted leaves the blobs it had committed unreferenced,
/// listed until the next collection (about a second later on 2.x), and a
/// load that counted them would skip sending what the import then misses
/// (`content digest ...: not found`). The blobs at the top (manifests,
/// indexes: referenced by image records, not by blobs) are not counted,
/// and are sent again (a few KiB).
fn parse_content_list(listing: &str) -> (BTreeSet<Digest>, BTreeMap<Digest, Digest>) {
    let mut listed = BTreeSet::new();
    let mut kept = BTreeSet::new();
    let mut uncompressed = BTreeMap::new();
    for line in listing.lines() {
        let mut fields = line.split_whitespace();
        let Some(digest) = fields.next().and_then(|d| d.parse::<Digest>().ok()) else {
            continue;
        };
        listed.insert(digest);
        let labels = fields.last().unwrap_or("-");
        for (key, value) in labels.split(',').filter_map(|label| label.split_once('=')) {
            if key == GC_ROOT_LABEL {
                kept.insert(digest);
            } else if key.starts_with(GC_REF_PREFIX) {
                kept.extend(value.parse::<Digest>().ok());
            } else if key == UNCOMPRESSED_LABEL {
                // An uncompressed layer is labelled with its own digest.
                let diff_id = value.parse::<Digest>().ok().filter(|d| *d != digest);
                uncompressed.extend(diff_id.map(|d| (digest, d)));
            }
        }
    }
    // A reference to a blob that is not there is no blob.
    kept.retain(|digest| listed.contains(digest));
    uncompressed.retain(|digest, _| kept.contains(digest));
    (kept, uncompressed)
}

/// Reads `ctr snapshots ls`: `KEY PARENT KIND`; the committed snapshots'
/// keys (chain IDs). Active ones (a container's, an unpack under way) are
/// not layers.
fn parse_snapshots(listing: &str) -> BTreeSet<Digest> {
    listing
        .lines()
        .filter(|line| line.split_whitespace().last() == Some("Committed"))
        .filter_map(|line| line.split_whitespace().next()?.parse().ok())
        .collect()
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

const DEFAULT_SNAPSHOTTER: &str = "overlayfs";

/// One row of `ctr images check`.
#[derive(Debug, PartialEq, Eq)]
pub struct CheckRow {
    pub manifest: Digest,
    /// Unpacked: config and manifest there, the top layer's snapshot
    /// committed. STATUS is not read: it says `incomplete` when layer blobs
    /// were discarded after their unpack, and such an image runs.
    pub usable: bool,
}

/// Finds `reference`'s row in `ctr images check` output:
/// `REF TYPE DIGEST STATUS SIZE UNPACKED`, where STATUS reads
/// `complete (2/2)` or `incomplete (1/2)` and UNPACKED `true`/`false`
/// (true only when ctr could read the config, so the config is there).
fn parse_check(output: &str, reference: &str) -> Option<CheckRow> {
    output.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.first() != Some(&reference) || fields.len() < 4 {
            return None;
        }
        let manifest = fields[2].parse::<Digest>().ok()?;
        let usable = fields.last() == Some(&"true");
        Some(CheckRow { manifest, usable })
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
    // the unpacker's label, protected while a push runs; an uncompressed
    // layer labelled with itself; the manifest that references it and a
    // config; a blob an aborted import left, referenced by nothing.
    const CONTENT_LS: &str = "DIGEST\t\t\t\t\t\t\t\t\tSIZE\tAGE\t\t\tLABELS\n\
sha256:dcdf54a0abab4e28178106b50ccab4288902878b5ff39719c9df3c25e5330965\t3MB\tLess than a second\tcontainerd.io/uncompressed=sha256:4b30e5539391f807fab1f039e2d916f07467eba4f987f279ebd0b3a4cfbc6897,containerd.io/gc.root=x\n\
sha256:4b30e5539391f807fab1f039e2d916f07467eba4f987f279ebd0b3a4cfbc6897\t3MB\t2 minutes\tcontainerd.io/uncompressed=sha256:4b30e5539391f807fab1f039e2d916f07467eba4f987f279ebd0b3a4cfbc6897\n\
sha256:761d9b27f438e14cd4304bd6646e19271cbfbb750a201eb3ed0e2d218d8deee8\t957B\t2 minutes\t-\n\
sha256:0b7e6e4b0b5f1e5bcbbd8a7f0e2f3a8d0c4b6a3e1f2d5c7b9a8e6f4d2c1b0a99\t1kB\t2 minutes\tcontainerd.io/gc.ref.content.config=sha256:761d9b27f438e14cd4304bd6646e19271cbfbb750a201eb3ed0e2d218d8deee8,containerd.io/gc.ref.content.l.0=sha256:4b30e5539391f807fab1f039e2d916f07467eba4f987f279ebd0b3a4cfbc6897,containerd.io/gc.ref.content.l.1=sha256:1111111111111111111111111111111111111111111111111111111111111111\n\
sha256:2ffd99eaec0b166c12994e9c7b498aa0b21c874ab05cf1a7414ebf46292ceee0\t2kB\tLess than a second\t-\n";

    #[test]
    fn reads_the_blobs_the_node_keeps_and_their_diff_ids() {
        let (blobs, uncompressed) = parse_content_list(CONTENT_LS);
        let digest = |hex: &str| format!("sha256:{hex}").parse::<Digest>().unwrap();
        let gzip = digest("dcdf54a0abab4e28178106b50ccab4288902878b5ff39719c9df3c25e5330965");
        let diff_id = digest("4b30e5539391f807fab1f039e2d916f07467eba4f987f279ebd0b3a4cfbc6897");
        let config = digest("761d9b27f438e14cd4304bd6646e19271cbfbb750a201eb3ed0e2d218d8deee8");
        // The GC root and what the manifest references (of it, what is
        // there); not the manifest, not the leftover.
        assert_eq!(
            blobs.into_iter().collect::<Vec<_>>(),
            vec![diff_id, config, gzip]
        );
        assert_eq!(
            uncompressed.into_iter().collect::<Vec<_>>(),
            vec![(gzip, diff_id)]
        );
    }

    /// The node's function, run by this machine's sh on `dump`.
    fn snapshotter_in_node(dump: &str) -> String {
        let script = format!("{SNAPSHOTTER_OF_CONFIG}\ncri_snapshotter");
        let mut child = std::process::Command::new("sh")
            .args(["-c", &script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("sh runs");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(dump.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    }

    // containerd 2.3's dump (config version 4) of kind's config with the
    // snapshotter set to native (trimmed): other `snapshotter` keys, in the
    // transfer service's and the runtime's sections, are not the CRI's.
    const DUMP_V4: &str = r#"
version = 4
[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'native'
    discard_unpacked_layers = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
    snapshotter = ''
  [plugins.'io.containerd.transfer.v1.local']
    [[plugins.'io.containerd.transfer.v1.local'.unpack_config]]
      differ = ''
      platform = 'linux/amd64'
      snapshotter = 'overlayfs'
"#;

    #[test]
    fn reads_the_cri_snapshotter_of_every_config_version() {
        assert_eq!(snapshotter_in_node(DUMP_V2), "native");
        assert_eq!(snapshotter_in_node(DUMP_V3), "overlayfs");
        assert_eq!(snapshotter_in_node(DUMP_V4), "native");
        assert_eq!(snapshotter_in_node("version = 2\n"), "");
        assert_eq!(snapshotter_in_node("not toml ["), "");
    }

    #[test]
    fn reads_the_client_version_of_ctr() {
        let debian = "Client:\n  Version:  1.6.20~ds1\n  Revision: 1.6.20~ds1-1+deb12u3\n\nServer:\n  Version:  1.6.20~ds1\n";
        let v = |major, minor, patch| Version {
            major,
            minor,
            patch,
        };
        assert_eq!(ctr_version(debian), Some(v(1, 6, 20)));
        let built = "Client:\n  Version:  v2.3.4\n  Revision: \n  Go version: go1.26.8\n";
        assert_eq!(ctr_version(built), Some(v(2, 3, 4)));
        assert_eq!(ctr_version("ctr: failed to dial"), None);
    }

    #[test]
    fn picks_the_import_each_ctr_supports() {
        let v = |major, minor, patch| {
            Some(Version {
                major,
                minor,
                patch,
            })
        };
        let choose = ImportMode::choose;
        assert_eq!(
            choose(v(1, 6, 20), DUMP_V2, "overlayfs"),
            ImportMode::Classic
        );
        assert_eq!(choose(None, "", "overlayfs"), ImportMode::Classic);
        assert_eq!(choose(v(1, 7, 24), DUMP_V2, "overlayfs"), ImportMode::Local);
        assert_eq!(choose(v(2, 0, 1), DUMP_V4, "overlayfs"), ImportMode::Local);
        assert_eq!(
            choose(v(2, 0, 2), DUMP_V4, "overlayfs"),
            ImportMode::Transfer
        );
        assert_eq!(
            choose(v(2, 3, 4), DUMP_V4, "overlayfs"),
            ImportMode::Transfer
        );
        // The transfer service unpacks only for overlayfs here.
        assert_eq!(choose(v(2, 3, 4), DUMP_V4, "native"), ImportMode::Local);
        // No unpack_config in the dump: containerd's default, overlayfs.
        assert_eq!(
            choose(v(2, 1, 4), DUMP_V3, "overlayfs"),
            ImportMode::Transfer
        );
        assert_eq!(choose(v(2, 1, 4), DUMP_V3, "native"), ImportMode::Local);
    }

    // Recorded from ctr 1.6.20 in a test node; the last row from ctr 2.3.4
    // after `ctr images import --local --discard-unpacked-layers`.
    const CHECK: &str = "REF                              TYPE                                                 DIGEST                                                                  STATUS         SIZE              UNPACKED \n\
localhost/loadmaster-test-node:1 application/vnd.docker.distribution.manifest.v2+json sha256:761d9b27f438e14cd4304bd6646e19271cbfbb750a201eb3ed0e2d218d8deee8 complete (2/2) 91.6 MiB/91.6 MiB true\n\
docker.io/library/app:1 application/vnd.docker.distribution.manifest.v2+json sha256:761d9b27f438e14cd4304bd6646e19271cbfbb750a201eb3ed0e2d218d8deee8 incomplete (1/2) 1.6 MiB/91.6 MiB false\n\
docker.io/library/discarded:1 application/vnd.docker.distribution.manifest.v2+json sha256:f8a766397ea3c4b232fd0ea567e53864571e44ffa0d368a174d550a43af85205 incomplete (1/3) 1.7 KiB/2.9 MiB true\n";

    #[test]
    fn finds_the_row_of_the_reference() {
        let row = parse_check(CHECK, "localhost/loadmaster-test-node:1").unwrap();
        assert_eq!(
            row.manifest.to_string(),
            "sha256:761d9b27f438e14cd4304bd6646e19271cbfbb750a201eb3ed0e2d218d8deee8"
        );
        assert!(row.usable);
        assert!(
            !parse_check(CHECK, "docker.io/library/app:1")
                .unwrap()
                .usable
        );
        // Layer blobs discarded after the unpack: incomplete, and it runs.
        let discarded = parse_check(CHECK, "docker.io/library/discarded:1").unwrap();
        assert!(discarded.usable);
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

    // `ctr snapshots ls` of ctr 2.3.4 after that import (two layers) and a
    // container's active snapshot.
    const SNAPSHOTS: &str = "KEY                                                                     PARENT                                                                  KIND      \n\
sha256:0e12da02d8d7a18aea53f7accf6576eb3c7528f7907eb2001e8776dc3749bc74                                                                         Committed \n\
sha256:7a77fde6c6b059bf21e2c3647166f97cae02cc7b53dfa1539e0e6075840d5f26 sha256:0e12da02d8d7a18aea53f7accf6576eb3c7528f7907eb2001e8776dc3749bc74 Committed \n\
runner sha256:7a77fde6c6b059bf21e2c3647166f97cae02cc7b53dfa1539e0e6075840d5f26 Active \n";

    #[test]
    fn layers_whose_chain_is_unpacked_need_no_blob() {
        let digest = |hex: &str| format!("sha256:{hex}").parse::<Digest>().unwrap();
        let base = digest("0e12da02d8d7a18aea53f7accf6576eb3c7528f7907eb2001e8776dc3749bc74");
        let top = digest("8964242de2f7ab72e86682332ff7bcc241c7658a63a87da054ccf9128264b4f1");
        let other_top = digest("d459f49c58b7e73c67979ce1e7e3c8aa7dedc74026f7e052c26526678e492735");
        // The chain ID containerd gave that stack (its snapshot key).
        assert_eq!(
            chain_ids(&[base, top])[1],
            digest("7a77fde6c6b059bf21e2c3647166f97cae02cc7b53dfa1539e0e6075840d5f26")
        );
        let inventory = Inventory {
            snapshotter: "overlayfs".to_string(),
            blobs: BTreeSet::new(),
            snapshots: parse_snapshots(SNAPSHOTS),
            uncompressed: BTreeMap::new(),
            root: "/var/lib/containerd".to_string(),
            sizes: BTreeMap::new(),
            current: None,
        };
        assert_eq!(inventory.snapshots.len(), 2);
        assert_eq!(
            inventory.unpacked_layers(&[base, top]),
            BTreeSet::from([base, top])
        );
        // Another top on the same base: only the base is there.
        assert_eq!(
            inventory.unpacked_layers(&[base, other_top]),
            BTreeSet::from([base])
        );
        // The same layer higher up another stack is another chain.
        assert!(inventory.unpacked_layers(&[other_top, base]).is_empty());
        assert!(inventory.unpacked_layers(&[]).is_empty());
    }
}
