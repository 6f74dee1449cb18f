//! Tests of reading whole archives: the three layouts, the checks against
//! hostile or broken input, bounded memory, and the path from a source
//! archive to a node's layout stream.

use super::fixtures::{self, Image, Node, OciStyle, file, layer, tar_of};
use super::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{self, Read};

/// Records every visitor call, and the bytes of each blob.
#[derive(Default, Debug)]
struct Recorder {
    starts: Vec<(usize, String, u64, Option<Digest>)>,
    ends: Vec<BlobEnd>,
    data: Vec<Vec<u8>>,
}

impl BlobVisitor for Recorder {
    fn blob_start(&mut self, start: &BlobStart<'_>) -> io::Result<()> {
        assert_eq!(start.index, self.starts.len(), "indexes count up from 0");
        assert_eq!(
            self.starts.len(),
            self.ends.len(),
            "the previous blob ended"
        );
        self.starts.push((
            start.index,
            start.path.to_string(),
            start.size,
            start.digest,
        ));
        self.data.push(Vec::new());
        Ok(())
    }
    fn blob_data(&mut self, chunk: &[u8]) -> io::Result<()> {
        assert!(!chunk.is_empty() && chunk.len() <= CHUNK_SIZE);
        self.data.last_mut().unwrap().extend_from_slice(chunk);
        Ok(())
    }
    fn blob_end(&mut self, end: &BlobEnd) -> io::Result<()> {
        let data = self.data.last().unwrap();
        assert_eq!(end.size, data.len() as u64);
        assert_eq!(end.digest, Digest::of(data));
        self.ends.push(*end);
        Ok(())
    }
}

impl Recorder {
    fn paths(&self) -> Vec<&str> {
        self.starts.iter().map(|s| s.1.as_str()).collect()
    }
    fn digest_of(&self, path: &str) -> Digest {
        let i = self.starts.iter().position(|s| s.1 == path).unwrap();
        self.ends[i].digest
    }
}

fn read(bytes: &[u8]) -> Result<(ImageArchive, Recorder), ArchiveError> {
    read_with(bytes, &Limits::default())
}

fn read_with(bytes: &[u8], limits: &Limits) -> Result<(ImageArchive, Recorder), ArchiveError> {
    let mut recorder = Recorder::default();
    let archive = read_archive(bytes, &mut recorder, limits)?;
    Ok((archive, recorder))
}

fn two_layer_image() -> Image {
    Image::new(
        &["app:1", "app:latest"],
        vec![layer(1, 3000), layer(2, 70_000)],
    )
}

#[test]
fn reads_a_legacy_docker_archive() {
    let image = two_layer_image();
    let bytes = fixtures::legacy_docker(std::slice::from_ref(&image));
    let (archive, recorder) = read(&bytes).unwrap();

    assert_eq!(archive.format, ArchiveFormat::LegacyDockerArchive);
    let [found] = &archive.images[..] else {
        panic!("{archive:?}")
    };
    assert_eq!(found.repo_tags, image.tags);
    assert_eq!(found.config.digest, image.config_digest());
    assert_eq!(found.config.bytes, image.config());
    assert_eq!(found.manifest, None);
    let diff_ids: Vec<Digest> = found.layers.iter().map(|l| l.diff_id).collect();
    assert_eq!(diff_ids, image.diff_ids());
    for (layer, bytes) in found.layers.iter().zip(&image.layers) {
        assert_eq!(layer.digest, Digest::of(bytes));
        assert_eq!(layer.size, bytes.len() as u64);
        assert_eq!(
            layer.media_type,
            "application/vnd.docker.image.rootfs.diff.tar"
        );
    }

    // Visited in archive (lexical) order: layers with no digest known yet,
    // the config with its digest from the name; v1 metadata not at all.
    let mut expected: Vec<(String, Option<Digest>)> = image
        .layers
        .iter()
        .enumerate()
        .map(|(i, _)| (format!("{}/layer.tar", v1_dir_of(&bytes, i, &image)), None))
        .collect();
    expected.push((
        format!("{}.json", image.config_digest().hex()),
        Some(image.config_digest()),
    ));
    expected.sort();
    let visited: Vec<(String, Option<Digest>)> = recorder
        .starts
        .iter()
        .map(|(_, path, _, digest)| (path.clone(), *digest))
        .collect();
    assert_eq!(visited, expected);
    for (i, layer) in image.layers.iter().enumerate() {
        let path = format!("{}/layer.tar", v1_dir_of(&bytes, i, &image));
        assert_eq!(recorder.digest_of(&path), Digest::of(layer));
    }
}

/// The v1 directory holding layer `index` of `image`, read back from the
/// archive's manifest.json with the tar crate.
fn v1_dir_of(archive: &[u8], index: usize, image: &Image) -> String {
    let mut tar = tar::Archive::new(archive);
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_str() == Some("manifest.json") {
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            let manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
            let config = format!("{}.json", image.config_digest().hex());
            let entry = manifest
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["Config"] == config)
                .unwrap();
            let path = entry["Layers"][index].as_str().unwrap();
            return path.strip_suffix("/layer.tar").unwrap().to_string();
        }
    }
    panic!("no manifest.json")
}

#[test]
fn follows_symlinked_legacy_layers() {
    // Docker stores an identical layer once and links the other v1 directory to it.
    let image = Image::new(
        &["dup:1"],
        vec![layer(7, 5000), layer(8, 100), layer(7, 5000)],
    );
    let bytes = fixtures::legacy_docker(std::slice::from_ref(&image));
    let listing = entry_kinds(&bytes);
    assert_eq!(
        listing
            .iter()
            .filter(|(p, k)| p.ends_with("layer.tar") && *k == tar::EntryType::Symlink)
            .count(),
        1,
        "{listing:?}"
    );
    let (archive, recorder) = read(&bytes).unwrap();
    let layers = &archive.images[0].layers;
    assert_eq!(layers.len(), 3);
    assert_eq!(layers[0].digest, layers[2].digest);
    assert_eq!(layers[0].size, image.layers[0].len() as u64);
    assert_eq!(
        layers.iter().map(|l| l.diff_id).collect::<Vec<_>>(),
        image.diff_ids()
    );
    // Only the two real layer files and the config were visited.
    assert_eq!(recorder.starts.len(), 3, "{:?}", recorder.paths());
}

fn entry_kinds(bytes: &[u8]) -> Vec<(String, tar::EntryType)> {
    tar::Archive::new(bytes)
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.path().unwrap().to_string_lossy().into_owned(),
                e.header().entry_type(),
            )
        })
        .collect()
}

#[test]
fn reads_several_images_sharing_layers() {
    let base = layer(1, 4000);
    let first = Image::new(&["one:1"], vec![base.clone(), layer(2, 10)]);
    let second = Image::new(&["two:1"], vec![base.clone(), layer(3, 20)]);
    let bytes = fixtures::legacy_docker(&[first.clone(), second.clone()]);
    let (archive, _) = read(&bytes).unwrap();
    assert_eq!(archive.images.len(), 2);
    assert_eq!(archive.images[0].layers[0].digest, Digest::of(&base));
    assert_eq!(archive.images[1].layers[0].digest, Digest::of(&base));
    assert_eq!(
        archive.image_for("two:1").unwrap().config.digest,
        second.config_digest()
    );
    assert_eq!(
        archive
            .image_for("docker.io/library/one:1")
            .unwrap()
            .config
            .digest,
        first.config_digest()
    );
    let err = archive.image_for("three:1").unwrap_err();
    assert_eq!(
        err.to_string(),
        "image docker.io/library/three:1 is not in the archive, which holds one:1; two:1: save the image you want to load, or ask for one of these"
    );
}

#[test]
fn reads_a_podman_docker_archive() {
    let image = two_layer_image();
    let bytes = fixtures::podman_docker_archive(&image);
    let (archive, recorder) = read(&bytes).unwrap();
    assert_eq!(archive.format, ArchiveFormat::DockerArchive);
    let found = &archive.images[0];
    assert_eq!(found.repo_tags, image.tags);
    assert_eq!(
        found.layers.iter().map(|l| l.digest).collect::<Vec<_>>(),
        image.diff_ids()
    );
    assert_eq!(
        found.layers.iter().map(|l| l.diff_id).collect::<Vec<_>>(),
        image.diff_ids()
    );
    // Layers, then the config, in the order podman writes them, each with
    // its digest known from the name before a byte was read.
    let mut expected: Vec<(String, Option<Digest>)> = image
        .diff_ids()
        .iter()
        .map(|d| (format!("{}.tar", d.hex()), Some(*d)))
        .collect();
    expected.push((
        format!("{}.json", image.config_digest().hex()),
        Some(image.config_digest()),
    ));
    let visited: Vec<(String, Option<Digest>)> =
        recorder.starts.iter().map(|s| (s.1.clone(), s.3)).collect();
    assert_eq!(visited, expected);
    assert_eq!(archive.image_for("app:1").unwrap(), found);
}

#[test]
fn reads_a_podman_oci_archive() {
    let image = Image::new(&["localhost/app:1"], vec![layer(1, 3000), layer(2, 70_000)]);
    let bytes = fixtures::oci_archive(&image, OciStyle::Podman);
    let parts = fixtures::oci_parts(&image, OciStyle::Podman);
    let (archive, recorder) = read(&bytes).unwrap();
    assert_eq!(archive.format, ArchiveFormat::OciLayout);
    let found = &archive.images[0];
    assert_eq!(found.repo_tags, ["localhost/app:1"]);
    let manifest = found.manifest.as_ref().unwrap();
    assert_eq!(manifest.digest, parts.manifest);
    assert_eq!(
        manifest.media_type,
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(found.manifest_blob(), *manifest);
    for (found, layer) in found.layers.iter().zip(&image.layers) {
        let compressed = fixtures::gzip(layer);
        assert_eq!(found.digest, Digest::of(&compressed));
        assert_eq!(found.size, compressed.len() as u64);
        assert_eq!(found.diff_id, Digest::of(layer));
        assert_eq!(
            found.media_type,
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
    }
    assert_eq!(found.layers.len(), 2);
    // Every blob (layers, config, manifest) was visited, in archive order,
    // named by its digest.
    let mut blobs: Vec<Digest> = parts.blobs.iter().map(|(d, _)| *d).collect();
    blobs.sort();
    let visited: Vec<Option<Digest>> = recorder.starts.iter().map(|s| s.3).collect();
    assert_eq!(visited, blobs.into_iter().map(Some).collect::<Vec<_>>());
}

#[test]
fn reads_a_docker_25_archive() {
    let image = two_layer_image();
    let bytes = fixtures::oci_archive(&image, OciStyle::Docker25);
    let (archive, recorder) = read(&bytes).unwrap();
    assert_eq!(archive.format, ArchiveFormat::OciLayout);
    // Two index entries (one per tag) for one manifest: one image, whose
    // names come from index.json and from docker's manifest.json.
    let [found] = &archive.images[..] else {
        panic!("{archive:?}")
    };
    assert_eq!(
        found.repo_tags,
        [
            "docker.io/library/app:1",
            "docker.io/library/app:latest",
            "app:1",
            "app:latest"
        ]
    );
    assert_eq!(
        found.layers.iter().map(|l| l.digest).collect::<Vec<_>>(),
        image.diff_ids()
    );
    assert_eq!(
        found.layers[0].media_type,
        "application/vnd.oci.image.layer.v1.tar"
    );
    assert_eq!(recorder.starts.len(), 4);
    assert_eq!(archive.image_for("app:latest").unwrap(), found);
}

/// Docker 29's containerd store (kind #3795): an index naming every
/// platform, only the host's blobs inside, layers compressed as stored.
/// The host's image is found under both names, its layers kept as they are
/// (containerd checks their diff IDs when it unpacks), and only the blobs
/// that are there are visited.
#[test]
fn reads_a_docker_29_archive_with_only_the_hosts_platform_inside() {
    use fixtures::StoredCompression;
    let image = two_layer_image();
    for (compression, media_type) in [
        (StoredCompression::Gzip, spec::OCI_LAYER_GZIP),
        (StoredCompression::Zstd, spec::OCI_LAYER_ZSTD),
    ] {
        let bytes = fixtures::docker29_archive(&image, compression);
        let (archive, recorder) = read(&bytes).unwrap();
        let [found] = &archive.images[..] else {
            panic!("{compression:?}: {archive:?}")
        };
        assert_eq!(
            found.repo_tags,
            [
                "docker.io/library/app:1",
                "docker.io/library/app:latest",
                "app:1",
                "app:latest"
            ],
            "{compression:?}"
        );
        assert_eq!(found.config.digest, image.config_digest());
        assert_eq!(
            found.layers.iter().map(|l| l.diff_id).collect::<Vec<_>>(),
            image.diff_ids()
        );
        for layer in &found.layers {
            assert_eq!(layer.media_type, media_type);
            assert!(!image.diff_ids().contains(&layer.digest), "kept compressed");
        }
        // Two layers, the config, the host's manifest and the index.
        assert_eq!(recorder.starts.len(), 5, "{compression:?}");
        assert_eq!(archive.image_for("app:latest").unwrap(), found);
    }
}

/// The hand-written zstd frames of the fixtures are real zstd: checked with
/// Debian's `zstd` where it is installed.
#[test]
fn stored_zstd_frames_decode() {
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let frame = fixtures::zstd_stored(&data);
    let decoder = std::process::Command::new("zstd")
        .args(["-d", "-c", "-q"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn();
    let Ok(mut decoder) = decoder else {
        eprintln!("skipped: zstd is not installed (apt-get install zstd)");
        return;
    };
    let mut stdin = decoder.stdin.take().unwrap();
    let writer = std::thread::spawn(move || io::Write::write_all(&mut stdin, &frame));
    let output = decoder.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(output.status.success());
    assert_eq!(output.stdout, data);
}

/// An OCI layout whose index holds one image for two platforms, both
/// saved (as `docker save --platform` of two, or buildx's OCI output).
fn two_platform_archive(image: &Image) -> Vec<u8> {
    let layer = &image.layers[0];
    let mut blobs = vec![(Digest::of(layer), layer.clone())];
    let mut manifests = Vec::new();
    for (architecture, variant) in [("amd64", None), ("arm64", Some("v8"))] {
        let mut config: serde_json::Value = serde_json::from_slice(&image.config()).unwrap();
        config["architecture"] = architecture.into();
        if let Some(variant) = variant {
            config["variant"] = variant.into();
        }
        let config = serde_json::to_vec(&config).unwrap();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": spec::OCI_MANIFEST,
            "config": {"mediaType": spec::OCI_CONFIG, "digest": Digest::of(&config), "size": config.len()},
            "layers": [{"mediaType": spec::OCI_LAYER, "digest": Digest::of(layer), "size": layer.len()}],
        }))
        .unwrap();
        let mut platform = serde_json::json!({"os": "linux", "architecture": architecture});
        if let Some(variant) = variant {
            platform["variant"] = variant.into();
        }
        manifests.push(serde_json::json!({"mediaType": spec::OCI_MANIFEST,
            "digest": Digest::of(&manifest), "size": manifest.len(), "platform": platform}));
        blobs.push((Digest::of(&config), config));
        blobs.push((Digest::of(&manifest), manifest));
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": spec::OCI_INDEX, "manifests": manifests,
    }))
    .unwrap();
    let mut entries: Vec<(String, Node)> = blobs
        .iter()
        .map(|(d, b)| file(&format!("blobs/sha256/{}", d.hex()), b.clone()))
        .collect();
    entries.push(file(
        &format!("blobs/sha256/{}", Digest::of(&index).hex()),
        index.clone(),
    ));
    let top = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": spec::OCI_INDEX, "digest": Digest::of(&index), "size": index.len(),
        "annotations": {spec::CONTAINERD_NAME: "docker.io/library/multi:1", spec::OCI_REF_NAME: "1"}}]});
    entries.push(file("index.json", serde_json::to_vec(&top).unwrap()));
    entries.push(file("oci-layout", r#"{"imageLayoutVersion":"1.0.0"}"#));
    tar_of(&entries)
}

#[test]
fn the_platform_asked_for_is_picked_and_an_absent_one_is_an_error_naming_those_held() {
    let image = Image::new(&["multi:1"], vec![layer(6, 200)]);
    let (archive, _) = read(&two_platform_archive(&image)).unwrap();
    assert_eq!(archive.images.len(), 2, "{archive:?}");
    let arm = archive
        .image_for_platform("multi:1", Some("linux/arm64"))
        .unwrap();
    assert_eq!(arm.platform.as_deref(), Some("linux/arm64/v8"));
    let exact = archive
        .image_for_platform("multi:1", Some("linux/arm64/v8"))
        .unwrap();
    assert_eq!(exact, arm);
    let amd = archive
        .image_for_platform("multi:1", Some("linux/amd64"))
        .unwrap();
    assert_eq!(amd.platform.as_deref(), Some("linux/amd64"));
    let error = archive
        .image_for_platform("multi:1", Some("linux/s390x"))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("linux/s390x") && error.contains("linux/amd64, linux/arm64/v8"),
        "{error}"
    );
    // Unasked, this machine's (the tests run on amd64 or arm64 Linux).
    let host = archive.image_for("multi:1").unwrap();
    assert_eq!(
        host.platform
            .as_deref()
            .map(|p| p.starts_with(&resolve::host_platform())),
        Some(true)
    );

    // Docker 29 saves only the host's platform: another one is absent.
    let saved = fixtures::docker29_archive(&two_layer_image(), fixtures::StoredCompression::Gzip);
    let (archive, _) = read(&saved).unwrap();
    let error = archive
        .image_for_platform("app:1", Some("linux/arm64"))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("for linux/amd64, not for linux/arm64"),
        "{error}"
    );
}

#[test]
fn picks_the_saved_platform_of_a_nested_index() {
    let image = Image::new(&["multi:1"], vec![layer(5, 100)]);
    let bytes = fixtures::oci_archive(&image, OciStyle::NestedIndex);
    let parts = fixtures::oci_parts(&image, OciStyle::NestedIndex);
    let (archive, _) = read(&bytes).unwrap();
    let found = &archive.images[0];
    assert_eq!(found.manifest.as_ref().unwrap().digest, parts.manifest);
    assert_eq!(found.repo_tags, ["docker.io/library/multi:1", "multi:1"]);
    assert_eq!(found.layers[0].diff_id, Digest::of(&image.layers[0]));
}

#[test]
fn a_blob_that_does_not_match_its_name_is_an_error() {
    let image = two_layer_image();
    let mut entries = vec![];
    let wrong = Digest::of(b"something else");
    entries.push(file(
        &format!("blobs/sha256/{}", wrong.hex()),
        image.layers[0].clone(),
    ));
    entries.push(file("blobs/sha256/after", "never read"));
    let mut recorder = Recorder::default();
    let err = read_archive(&tar_of(&entries)[..], &mut recorder, &Limits::default()).unwrap_err();
    let ArchiveError::DigestMismatch {
        entry,
        expected,
        actual,
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(entry, &format!("blobs/sha256/{}", wrong.hex()));
    assert_eq!(*expected, wrong);
    assert_eq!(*actual, Digest::of(&image.layers[0]));
    assert!(
        err.to_string()
            .contains("re-create it with `docker save IMAGE`"),
        "{err}"
    );
    // The consumer saw the data but no end: it must abort its import.
    assert_eq!(recorder.starts.len(), 1);
    assert!(recorder.ends.is_empty());

    // The same for a podman layer named by its diff ID.
    let mut bytes = fixtures::podman_docker_archive(&image);
    let at = find(&bytes, &image.layers[1][1000..1100]);
    bytes[at] ^= 0xff;
    let err = read(&bytes).unwrap_err();
    assert!(matches!(err, ArchiveError::DigestMismatch { .. }), "{err}");
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap()
}

#[test]
fn truncation_anywhere_is_reported_as_such() {
    for bytes in [
        fixtures::legacy_docker(&[two_layer_image()]),
        fixtures::oci_archive(&two_layer_image(), OciStyle::Podman),
    ] {
        // Everything before the end marker: headers, data, padding, and
        // exactly at entry boundaries.
        let end = bytes.len() - 1024;
        let mut cuts: Vec<usize> = (0..end).step_by(997).collect();
        cuts.extend((0..end).step_by(512));
        cuts.extend([1, 511, 513, end - 1]);
        for cut in cuts {
            match read(&bytes[..cut]) {
                Err(ArchiveError::Truncated { offset, .. }) => assert_eq!(offset, cut as u64),
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
    }
    let bytes = fixtures::legacy_docker(&[two_layer_image()]);
    let in_layer = find(&bytes, &two_layer_image().layers[1][..600]) + 5000;
    let err = read(&bytes[..in_layer]).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "the archive is truncated: it ends after {} ({in_layer} bytes) in ",
            crate::units::bytes(in_layer as u64)
        )),
        "{message}"
    );
    assert!(
        message.contains("/layer.tar, before its end marker"),
        "{message}"
    );
}

#[test]
fn metadata_beyond_the_limits_is_refused() {
    let image = two_layer_image();
    let config_size = image.config().len() as u64;
    let small = Limits {
        max_metadata_entry: config_size - 1,
        max_metadata_total: 1 << 20,
    };
    // A docker-archive config is metadata by its name: refused before reading.
    let err = read_with(&fixtures::podman_docker_archive(&image), &small).unwrap_err();
    let ArchiveError::MetadataTooLarge { entry, size, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(
        (entry.as_str(), *size),
        (
            format!("{}.json", image.config_digest().hex()).as_str(),
            config_size
        )
    );
    // An OCI blob is known to be a config only at the end.
    let err = read_with(&fixtures::oci_archive(&image, OciStyle::Podman), &small).unwrap_err();
    assert!(
        matches!(err, ArchiveError::MetadataTooLarge { .. }),
        "{err}"
    );

    // Many entries add up: the record of each counts.
    let entries: Vec<(String, Node)> = (0..2000)
        .map(|i| {
            file(
                &format!("{}.tar", Digest::of(&[i as u8, (i >> 8) as u8]).hex()),
                vec![i as u8, (i >> 8) as u8],
            )
        })
        .collect();
    let tight = Limits {
        max_metadata_entry: 1 << 20,
        max_metadata_total: 100_000,
    };
    let err = read_with(&tar_of(&entries), &tight).unwrap_err();
    assert!(
        matches!(err, ArchiveError::MetadataBudgetExceeded { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("raise the limit"), "{err}");

    // A JSON-looking blob past the total is an error only if it is needed.
    let tight = Limits {
        max_metadata_entry: 1 << 20,
        max_metadata_total: 3000,
    };
    let mut entries = vec![file(
        &format!("blobs/sha256/{}", Digest::of(&[b'{'; 4000]).hex()),
        vec![b'{'; 4000],
    )];
    entries.push(file("index.json", r#"{"manifests":[]}"#));
    let err = read_with(&tar_of(&entries), &tight).unwrap_err();
    assert!(
        err.to_string()
            .contains("index.json is not valid: it lists no image"),
        "{err}"
    );
}

#[test]
fn unsafe_paths_are_refused() {
    let cases: Vec<(&str, Node)> = vec![
        ("../etc/passwd", Node::File(b"x".to_vec())),
        ("a/../../etc/passwd", Node::File(b"x".to_vec())),
        ("blobs/sha256/../../x", Node::File(b"x".to_vec())),
        ("abc/layer.tar", Node::Symlink("../../outside".to_string())),
        ("abc/layer.tar", Node::Symlink("/etc/shadow".to_string())),
        ("abc/layer.tar", Node::Hardlink("../x".to_string())),
        ("abc/layer.tar", Node::Hardlink("/x".to_string())),
    ];
    for (path, node) in cases {
        let err = read(&raw_tar(path, &node)).unwrap_err();
        assert!(
            matches!(err, ArchiveError::UnsafePath { .. }),
            "{path} {node:?}: {err}"
        );
        assert!(err.to_string().contains("unsafe path"), "{err}");
    }
    let mut bytes = raw_tar("xetc/passwd", &Node::File(b"x".to_vec()));
    bytes[0] = b'/';
    fix_checksum(&mut bytes);
    let err = read(&bytes).unwrap_err();
    assert!(err.to_string().contains("(absolute path)"), "{err}");

    for name in [
        "blobs/sha256/ABCDEF",
        "blobs/sha512/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "blobs/sha256/E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
        "blobs/x",
    ] {
        let err = read(&tar_of(&[file(name, "{}")])).unwrap_err();
        assert!(
            matches!(err, ArchiveError::InvalidBlobName { .. }),
            "{name}: {err}"
        );
    }
}

/// A tar with one entry whose name is written raw (the tar crate refuses
/// to write `..`, as a careful writer would).
fn raw_tar(path: &str, node: &Node) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
    header.set_mode(0o644);
    let data: &[u8] = match node {
        Node::File(data) => {
            header.set_entry_type(tar::EntryType::Regular);
            data
        }
        Node::Symlink(target) | Node::Hardlink(target) => {
            header.set_entry_type(match node {
                Node::Symlink(_) => tar::EntryType::Symlink,
                _ => tar::EntryType::Link,
            });
            header.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
            &[]
        }
        Node::Dir => unreachable!(),
    };
    header.set_size(data.len() as u64);
    header.set_cksum();
    let mut bytes = header.as_bytes().to_vec();
    bytes.extend_from_slice(data);
    bytes.resize(bytes.len().div_ceil(512) * 512 + 1024, 0);
    bytes
}

fn fix_checksum(bytes: &mut [u8]) {
    let mut header = tar::Header::new_old();
    header.as_mut_bytes().copy_from_slice(&bytes[..512]);
    header.set_cksum();
    bytes[..512].copy_from_slice(header.as_bytes());
}

#[test]
fn duplicate_entries_must_agree() {
    let image = two_layer_image();
    let config = format!("{}.json", image.config_digest().hex());
    let mut entries = vec![file(&config, image.config()), file(&config, image.config())];
    entries.push(file("manifest.json", "[]"));
    let err = read(&tar_of(&entries)).unwrap_err();
    assert!(
        err.to_string()
            .contains("manifest.json is not valid: it lists no image"),
        "{err}"
    );

    let entries = vec![file("x/layer.tar", "one"), file("x/layer.tar", "two")];
    let err = read(&tar_of(&entries)).unwrap_err();
    let ArchiveError::DuplicateEntry { entry, detail } = &err else {
        panic!("{err}")
    };
    assert_eq!(entry, "x/layer.tar");
    assert!(detail.contains(&Digest::of(b"one").to_string()), "{detail}");

    let entries = vec![
        ("x/layer.tar".to_string(), Node::Symlink("../a".to_string())),
        file("x/layer.tar", "two"),
    ];
    let err = read(&tar_of(&entries)).unwrap_err();
    assert!(
        err.to_string().contains("is both a link and a file"),
        "{err}"
    );
}

#[test]
fn every_referenced_blob_must_be_present() {
    let image = two_layer_image();
    // Drop the second layer's file from a podman archive.
    let bytes = fixtures::podman_docker_archive(&image);
    let entries: Vec<(String, Node)> = tar_entries(&bytes)
        .into_iter()
        .filter(|(p, _)| *p != format!("{}.tar", image.diff_ids()[1].hex()))
        .collect();
    let err = read(&tar_of(&entries)).unwrap_err();
    let ArchiveError::MissingBlob {
        referenced_by,
        blob,
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(referenced_by, "manifest.json");
    assert_eq!(blob, &format!("{}.tar", image.diff_ids()[1].hex()));

    // And from an OCI layout.
    let bytes = fixtures::oci_archive(&image, OciStyle::Docker25);
    let gone = format!("blobs/sha256/{}", image.diff_ids()[0].hex());
    let entries: Vec<(String, Node)> = tar_entries(&bytes)
        .into_iter()
        .filter(|(p, _)| *p != gone)
        .collect();
    let err = read(&tar_of(&entries)).unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "refers to {} (application/vnd.oci.image.layer.v1.tar), which is not in the archive",
            image.diff_ids()[0]
        )),
        "{err}"
    );
}

/// The entries of a tar, read with the tar crate.
fn tar_entries(bytes: &[u8]) -> Vec<(String, Node)> {
    let mut archive = tar::Archive::new(bytes);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let node = match e.header().entry_type() {
                tar::EntryType::Directory => Node::Dir,
                tar::EntryType::Symlink => Node::Symlink(
                    e.link_name()
                        .unwrap()
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                ),
                _ => {
                    let mut data = Vec::new();
                    e.read_to_end(&mut data).unwrap();
                    Node::File(data)
                }
            };
            (path, node)
        })
        .collect()
}

#[test]
fn layers_must_match_the_configs_diff_ids() {
    let image = two_layer_image();
    let mut bytes = fixtures::legacy_docker(std::slice::from_ref(&image));
    // Alter a layer: its (unnamed) digest then differs from the config's diff ID.
    let at = find(&bytes, &image.layers[0][600..700]);
    bytes[at] ^= 0xff;
    let err = read(&bytes).unwrap_err();
    let ArchiveError::DiffIdMismatch {
        image: name,
        index,
        expected,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(
        (name.as_str(), *index, *expected),
        ("app:1", 0, image.diff_ids()[0])
    );

    // A config listing fewer diff IDs than there are layers.
    let short = Image::new(&["app:1"], vec![image.layers[0].clone()]);
    let mut entries = tar_entries(&fixtures::podman_docker_archive(&image));
    entries.retain(|(p, _)| !p.ends_with(".json") || p == "manifest.json");
    entries.insert(
        0,
        file(
            &format!("{}.json", short.config_digest().hex()),
            short.config(),
        ),
    );
    let manifest = serde_json::json!([{
        "Config": format!("{}.json", short.config_digest().hex()),
        "RepoTags": ["app:1"],
        "Layers": image.diff_ids().iter().map(|d| format!("{}.tar", d.hex())).collect::<Vec<_>>(),
    }]);
    entries.retain(|(p, _)| p != "manifest.json");
    entries.push(file(
        "manifest.json",
        serde_json::to_vec(&manifest).unwrap(),
    ));
    let err = read(&tar_of(&entries)).unwrap_err();
    assert!(
        err.to_string()
            .contains("it lists 1 diff IDs, but manifest.json lists 2 layers"),
        "{err}"
    );
}

#[test]
fn a_failing_visitor_stops_the_reading() {
    struct FailOnSecond(usize);
    impl BlobVisitor for FailOnSecond {
        fn blob_start(&mut self, _: &BlobStart<'_>) -> io::Result<()> {
            self.0 += 1;
            Ok(())
        }
        fn blob_data(&mut self, _: &[u8]) -> io::Result<()> {
            if self.0 == 2 {
                return Err(io::Error::new(io::ErrorKind::BrokenPipe, "node went away"));
            }
            Ok(())
        }
        fn blob_end(&mut self, _: &BlobEnd) -> io::Result<()> {
            assert_ne!(self.0, 2);
            Ok(())
        }
    }
    let image = two_layer_image();
    let mut visitor = FailOnSecond(0);
    let bytes = fixtures::podman_docker_archive(&image);
    let err = read_archive(&bytes[..], &mut visitor, &Limits::default()).unwrap_err();
    assert_eq!(visitor.0, 2, "no blob started after the failure");
    let ArchiveError::Visitor { entry, source } = &err else {
        panic!("{err}")
    };
    assert_eq!(entry, &format!("{}.tar", image.diff_ids()[1].hex()));
    assert_eq!(source.kind(), io::ErrorKind::BrokenPipe);
    assert!(err.to_string().ends_with("failed: node went away"), "{err}");
}

#[test]
fn other_streams_are_not_image_archives() {
    let err = read(&tar_of(&[
        file("hello.txt", "hi"),
        ("dir/".to_string(), Node::Dir),
    ]))
    .unwrap_err();
    assert!(matches!(err, ArchiveError::NotAnImageArchive), "{err}");
    let err = read(b"not a tar at all, just some text that goes on for a while ..............................................................................................................................................................................................................................................................................................................................................................................................................................................................................").unwrap_err();
    assert!(matches!(err, ArchiveError::InvalidTar { .. }), "{err}");
    let err = read(&[]).unwrap_err();
    assert!(
        matches!(
            err,
            ArchiveError::Truncated {
                offset: 0,
                entry: None
            }
        ),
        "{err}"
    );
}

#[test]
fn metadata_is_kept_byte_for_byte_or_not_at_all() {
    // A config with leading blanks: valid JSON, but not kept as metadata
    // (the reader decides on the first byte), so refused rather than
    // handed on with bytes that no longer match its digest.
    let image = two_layer_image();
    let mut parts = fixtures::oci_parts(&image, OciStyle::Docker25);
    let config = image.config_digest();
    let padded = [&b"\n  "[..], &image.config()].concat();
    let padded_digest = Digest::of(&padded);
    for (digest, bytes) in &mut parts.blobs {
        if *digest == config {
            *bytes = padded.clone();
            *digest = padded_digest;
        }
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": padded_digest, "size": padded.len()},
        "layers": image.layers.iter().map(|l| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": Digest::of(l), "size": l.len()})).collect::<Vec<_>>(),
    }))
    .unwrap();
    let mut entries: Vec<(String, Node)> = parts
        .blobs
        .iter()
        .filter(|(d, _)| *d != parts.manifest)
        .map(|(d, b)| file(&format!("blobs/sha256/{}", d.hex()), b.clone()))
        .collect();
    entries.push(file(
        &format!("blobs/sha256/{}", Digest::of(&manifest).hex()),
        manifest.clone(),
    ));
    let index = serde_json::json!({"manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": Digest::of(&manifest), "size": manifest.len()}]});
    entries.push(file("index.json", serde_json::to_vec(&index).unwrap()));
    let err = read(&tar_of(&entries)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "blobs/sha256/{} is not valid: it is referenced as JSON metadata but does not start with '{{'; re-create it with `docker save IMAGE` or `podman save IMAGE`",
            padded_digest.hex()
        )
    );

    // Without the blanks, the kept copies are the blobs.
    let (archive, _) = read(&fixtures::oci_archive(&image, OciStyle::Docker25)).unwrap();
    let found = &archive.images[0];
    assert_eq!(Digest::of(&found.config.bytes), found.config.digest);
    let own = found.manifest.as_ref().unwrap();
    assert_eq!(Digest::of(&own.bytes), own.digest);
}

#[test]
fn invalid_json_names_the_entry() {
    let entries = vec![file("manifest.json", "[{\"Config\": 3}]")];
    let err = read(&tar_of(&entries)).unwrap_err();
    assert!(err.to_string().starts_with("manifest.json is not valid: it is not the JSON expected there (invalid type: integer `3`"), "{err}");
}

// --- Bounded memory -------------------------------------------------------

/// Counts the bytes allocated and not yet freed by the current thread, and
/// their peak: each test runs on its own thread, so a test measures only
/// what its own code holds.
struct CountingAllocator;

thread_local! {
    static HELD: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn account(delta: isize) {
    // try_with: allocations can happen while thread-locals are torn down.
    let _ = HELD.try_with(|held| {
        let now = held.get() + delta;
        held.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            account(layout.size() as isize);
        }
        ptr
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            account(layout.size() as isize);
        }
        ptr
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        account(-(layout.size() as isize));
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            account(new_size as isize - layout.size() as isize);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Bytes of a layer generated on the fly: never held in memory whole.
struct Generated {
    left: u64,
    state: u32,
}

impl Generated {
    fn new(size: u64) -> Generated {
        Generated {
            left: size,
            state: 0x1234_5678,
        }
    }
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.left as usize).min(64 * 1024);
        for byte in &mut buf[..n] {
            // xorshift: cheap, and not compressible or constant.
            self.state ^= self.state << 13;
            self.state ^= self.state >> 17;
            self.state ^= self.state << 5;
            *byte = self.state as u8;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Hashes what it is given and keeps nothing.
#[derive(Default)]
struct Counter {
    bytes: u64,
    ends: Vec<BlobEnd>,
}

impl BlobVisitor for Counter {
    fn blob_start(&mut self, _: &BlobStart<'_>) -> io::Result<()> {
        Ok(())
    }
    fn blob_data(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.bytes += chunk.len() as u64;
        Ok(())
    }
    fn blob_end(&mut self, end: &BlobEnd) -> io::Result<()> {
        self.ends.push(*end);
        Ok(())
    }
}

#[test]
fn a_64_mib_layer_streams_through_a_few_mib() {
    const SIZE: u64 = 64 << 20;
    let diff_id = {
        use sha2::{Digest as _, Sha256};
        let mut hasher = Sha256::new();
        io::copy(&mut Generated::new(SIZE), &mut hasher).unwrap();
        Digest::from(hasher)
    };
    let config = serde_json::to_vec(
        &serde_json::json!({"rootfs": {"type": "layers", "diff_ids": [diff_id]}}),
    )
    .unwrap();
    let config_name = format!("{}.json", Digest::of(&config).hex());
    let v1 = Digest::of(b"v1").hex();
    let manifest = serde_json::to_vec(&serde_json::json!([{"Config": config_name, "RepoTags": ["big:1"], "Layers": [format!("{v1}/layer.tar")]}])).unwrap();

    // The legacy layout, the hardest case: the layer's digest is learnt
    // only by reading it all, and manifest.json comes last.
    let mut layer_header = tar::Header::new_gnu();
    layer_header.set_path(format!("{v1}/layer.tar")).unwrap();
    layer_header.set_size(SIZE);
    layer_header.set_mode(0o644);
    layer_header.set_cksum();
    let small = tar_of(&[
        file(&config_name, config.clone()),
        file("manifest.json", manifest),
    ]);
    let source = io::Cursor::new(layer_header.as_bytes().to_vec())
        .chain(Generated::new(SIZE))
        .chain(io::Cursor::new(small));

    let mut counter = Counter::default();
    let before = HELD.with(Cell::get);
    PEAK.with(|peak| peak.set(before));
    let archive = read_archive(source, &mut counter, &Limits::default()).unwrap();
    let peak = PEAK.with(Cell::get) - before;

    assert_eq!(counter.bytes, SIZE + config.len() as u64);
    assert_eq!(counter.ends[0].digest, diff_id);
    assert_eq!(archive.images[0].layers[0].diff_id, diff_id);
    assert_eq!(archive.images[0].layers[0].size, SIZE);
    // The chunk buffer and the metadata, nothing that grows with the layer.
    assert!(
        peak > CHUNK_SIZE as isize,
        "the measurement saw the chunk buffer: {peak}"
    );
    assert!(peak < 2 << 20, "the reader held {peak} bytes at its peak");
}

// --- From a source archive to a node's layout --------------------------------

/// The visitor the delivery is built around: forwards every blob into an
/// OCI layout stream, under its digest if known, else a placeholder.
struct Forward<W: io::Write> {
    writer: OciLayoutWriter<W>,
    placeholders: Vec<(u64, usize)>,
}

impl<W: io::Write> BlobVisitor for Forward<W> {
    fn blob_start(&mut self, start: &BlobStart<'_>) -> io::Result<()> {
        let name = match start.digest {
            Some(digest) => BlobName::Digest(digest),
            None => {
                let n = self.placeholders.len() as u64;
                self.placeholders.push((n, start.index));
                BlobName::Placeholder(n)
            }
        };
        Ok(self.writer.begin_blob(name, start.size)?)
    }
    fn blob_data(&mut self, chunk: &[u8]) -> io::Result<()> {
        Ok(self.writer.write_chunk(chunk)?)
    }
    fn blob_end(&mut self, _: &BlobEnd) -> io::Result<()> {
        Ok(self.writer.end_blob()?)
    }
}

#[test]
fn a_docker_archive_becomes_an_importable_oci_layout() {
    let image = two_layer_image();
    let source = fixtures::podman_docker_archive(&image);
    let mut forward = Forward {
        writer: OciLayoutWriter::new(Vec::new()),
        placeholders: Vec::new(),
    };
    let archive = read_archive(&source[..], &mut forward, &Limits::default()).unwrap();
    let found = archive.image_for("app:1").unwrap();
    let manifest = found.manifest_blob();
    let name = normalize_reference("app:1").unwrap();
    let mut writer = forward.writer;
    writer
        .begin_blob(
            BlobName::Digest(manifest.digest),
            manifest.bytes.len() as u64,
        )
        .unwrap();
    writer.write_chunk(&manifest.bytes).unwrap();
    writer.end_blob().unwrap();
    writer
        .add_file("index.json", &index_json(&manifest, &name))
        .unwrap();
    let layout = writer.finish().unwrap();

    // Our reader takes the result as an OCI layout of the same image.
    let (again, _) = read(&layout).unwrap();
    assert_eq!(again.format, ArchiveFormat::OciLayout);
    let image_again = &again.images[0];
    assert_eq!(image_again.repo_tags, ["docker.io/library/app:1"]);
    assert_eq!(image_again.config, found.config);
    assert_eq!(image_again.layers, found.layers);
    assert_eq!(image_again.manifest.as_ref(), Some(&manifest));
}

#[test]
fn a_legacy_archive_streams_under_placeholders() {
    let image = two_layer_image();
    let source = fixtures::legacy_docker(std::slice::from_ref(&image));
    let mut forward = Forward {
        writer: OciLayoutWriter::new(Vec::new()),
        placeholders: Vec::new(),
    };
    let archive = read_archive(&source[..], &mut forward, &Limits::default()).unwrap();
    let manifest = archive.images[0].manifest_blob();
    let mut writer = forward.writer;
    writer
        .add_file(
            &format!("blobs/sha256/{}", manifest.digest.hex()),
            &manifest.bytes,
        )
        .unwrap();
    writer
        .add_file(
            "index.json",
            &index_json(&manifest, &normalize_reference("app:1").unwrap()),
        )
        .unwrap();
    let layout = writer.finish().unwrap();

    // What containerd's importer does: store each entry under the digest of
    // its bytes, then resolve index.json -> manifest -> config and layers.
    let mut store = std::collections::BTreeMap::new();
    let mut index = None;
    for (path, node) in tar_entries(&layout) {
        let Node::File(data) = node else {
            panic!("{path}")
        };
        match path.as_str() {
            "oci-layout" => assert_eq!(data, OCI_LAYOUT_FILE),
            "index.json" => index = Some(data),
            _ => {
                assert!(path.starts_with("blobs/sha256/"), "{path}");
                store.insert(Digest::of(&data), data);
            }
        }
    }
    assert_eq!(
        forward.placeholders.len(),
        2,
        "both layers went under placeholders"
    );
    let index: serde_json::Value = serde_json::from_slice(&index.unwrap()).unwrap();
    let manifest_digest: Digest =
        serde_json::from_value(index["manifests"][0]["digest"].clone()).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&store[&manifest_digest]).unwrap();
    let config_digest: Digest =
        serde_json::from_value(manifest["config"]["digest"].clone()).unwrap();
    assert_eq!(store[&config_digest], image.config());
    for (descriptor, layer) in manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&image.layers)
    {
        let digest: Digest = serde_json::from_value(descriptor["digest"].clone()).unwrap();
        assert_eq!(&store[&digest], layer);
    }
}

// --- By hand ------------------------------------------------------------------

/// Seeds the fuzzer's corpus (`bench/fuzz-archive` runs this): every layout
/// the fixtures make, with small layers so mutations reach all of it.
#[test]
#[ignore = "writes files: run by bench/fuzz-archive with LOADMASTER_FUZZ_SEEDS set"]
fn write_fuzz_seeds() {
    let dir = std::path::PathBuf::from(
        std::env::var_os("LOADMASTER_FUZZ_SEEDS")
            .expect("LOADMASTER_FUZZ_SEEDS names the corpus directory"),
    );
    std::fs::create_dir_all(&dir).unwrap();
    let image = Image::new(&["app:1"], vec![layer(1, 40), layer(2, 700)]);
    let duplicated = Image::new(&["dup:1"], vec![layer(3, 30), layer(3, 30)]);
    let seeds = [
        (
            "legacy",
            fixtures::legacy_docker(&[image.clone(), duplicated]),
        ),
        ("podman", fixtures::podman_docker_archive(&image)),
        (
            "oci-podman",
            fixtures::oci_archive(&image, OciStyle::Podman),
        ),
        (
            "oci-docker25",
            fixtures::oci_archive(&image, OciStyle::Docker25),
        ),
        (
            "oci-nested",
            fixtures::oci_archive(&image, OciStyle::NestedIndex),
        ),
    ];
    for (name, bytes) in seeds {
        // The fuzz target's first byte picks its mode: raw, or with header
        // checksums repaired.
        for mode in [0u8, 1] {
            let mut input = vec![mode];
            input.extend_from_slice(&bytes);
            std::fs::write(dir.join(format!("{name}-{mode}")), input).unwrap();
        }
    }
}

/// Reads what the real engines save and compares it with what they say
/// about the image. Needs docker and podman holding the image
/// (`LOADMASTER_TEST_IMAGE`, default `localhost/loadmaster-test-node:1`):
/// `cargo test real_engine -- --ignored --nocapture`.
#[test]
#[ignore = "needs docker and podman holding the test image"]
fn real_engine_archives_match_inspect() {
    use std::process::{Command, Stdio};
    let image = std::env::var("LOADMASTER_TEST_IMAGE")
        .unwrap_or_else(|_| "localhost/loadmaster-test-node:1".to_string());
    let cases: [(&str, &[&str], ArchiveFormat); 3] = [
        ("docker", &["save"], ArchiveFormat::LegacyDockerArchive),
        ("podman", &["save"], ArchiveFormat::DockerArchive),
        (
            "podman",
            &["save", "--format", "oci-archive"],
            ArchiveFormat::OciLayout,
        ),
    ];
    for (engine, save, format) in cases {
        let inspect = Command::new(engine)
            .args([
                "image",
                "inspect",
                "--format",
                "{{json .RootFS.Layers}}|{{.Id}}",
                &image,
            ])
            .output()
            .unwrap();
        assert!(
            inspect.status.success(),
            "{}",
            String::from_utf8_lossy(&inspect.stderr)
        );
        let inspect = String::from_utf8(inspect.stdout).unwrap();
        let (layers, id) = inspect.trim().split_once('|').unwrap();
        let diff_ids: Vec<Digest> = serde_json::from_str(layers).unwrap();
        let id: Digest = id.parse().unwrap();

        let mut child = Command::new(engine)
            .args(save)
            .arg(&image)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut counter = Counter::default();
        let started = std::time::Instant::now();
        let archive = read_archive(
            child.stdout.take().unwrap(),
            &mut counter,
            &Limits::default(),
        )
        .unwrap();
        assert!(child.wait().unwrap().success());
        let found = archive.image_for(&image).unwrap();
        eprintln!(
            "{engine} {}: {format:?}, {} layers, {} blobs, {} read in {:.1?}",
            save.join(" "),
            found.layers.len(),
            counter.ends.len(),
            crate::units::bytes(counter.bytes),
            started.elapsed()
        );
        assert_eq!(archive.format, format);
        assert_eq!(
            found.layers.iter().map(|l| l.diff_id).collect::<Vec<_>>(),
            diff_ids
        );
        assert_eq!(found.config.digest, id, "the image ID is the config digest");
        assert!(
            found
                .repo_tags
                .iter()
                .any(|t| normalize_reference(t).unwrap() == normalize_reference(&image).unwrap()),
            "{:?}",
            found.repo_tags
        );
        for layer in &found.layers {
            assert!(
                counter
                    .ends
                    .iter()
                    .any(|e| e.digest == layer.digest && e.size == layer.size)
            );
        }
    }
}
