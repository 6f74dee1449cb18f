//! Which layer a legacy `docker save` directory holds, before its bytes arrive.
//!
//! Docker before 25 writes `<v1 id>/json` and `<v1 id>/layer.tar` per layer,
//! in lexical order of the v1 IDs, and the layer's digest (its diff ID) is
//! nowhere in the entry names. But a v1 ID is a hash docker computes from
//! the layer's `json` and its chain ID (`v1.CreateID` in docker's
//! `image/v1`), and `json` comes before `layer.tar`. Given the diff IDs the
//! engine reports for the image, recomputing the v1 ID for each position
//! tells which diff ID the next `layer.tar` has, so a layer the node already
//! holds can be left out without being buffered. The guess is checked: the
//! reader verifies the digest of the bytes as they stream past.

use super::Digest;
use serde_json::value::RawValue;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;

/// The position in `diff_ids` of the layer whose legacy directory is
/// `v1_id` with `json` as its `json` file; None when no position matches
/// (another docker version, or not this image).
pub fn layer_position(v1_id: &str, json: &[u8], diff_ids: &[Digest]) -> Option<usize> {
    let mut fields: BTreeMap<String, &RawValue> = serde_json::from_slice(json).ok()?;
    fields.remove("id");
    // In the file the parent is a bare hex ID; docker hashed it as a digest.
    let parent = match fields.remove("parent") {
        Some(raw) => Some(format!(
            "\"sha256:{}\"",
            serde_json::from_str::<String>(raw.get()).ok()?
        )),
        None => None,
    };
    // docker sets "os" on the layers below the top only after computing
    // their IDs, so both variants are tried.
    let without_os = {
        let mut fields = fields.clone();
        fields.remove("os").map(|_| fields)
    };
    let mut chain: Option<String> = None;
    for (position, diff_id) in diff_ids.iter().enumerate() {
        // The chain ID names the stack of layers up to this one.
        let chain_id = match &chain {
            None => diff_id.to_string(),
            Some(below) => format!(
                "sha256:{}",
                hex::encode(Sha256::digest(format!("{below} {diff_id}")))
            ),
        };
        let layer_id = format!("\"{chain_id}\"");
        for variant in std::iter::once(&fields).chain(without_os.as_ref()) {
            if v1_id_of(variant, &layer_id, parent.as_deref()) == v1_id {
                return Some(position);
            }
        }
        chain = Some(chain_id);
    }
    None
}

/// docker's `v1.CreateID`: the sha256 of the layer's JSON without its ID,
/// plus `layer_id` and `parent`, with the top-level keys sorted (Go marshals
/// a map) and the values as they were (already Go-escaped in the file).
fn v1_id_of(fields: &BTreeMap<String, &RawValue>, layer_id: &str, parent: Option<&str>) -> String {
    let mut all: BTreeMap<&str, &str> = fields.iter().map(|(k, v)| (k.as_str(), v.get())).collect();
    all.insert("layer_id", layer_id);
    if let Some(parent) = parent {
        all.insert("parent", parent);
    }
    let mut text = String::from("{");
    for (n, (key, raw)) in all.iter().enumerate() {
        if n > 0 {
            text.push(',');
        }
        text.push_str(&serde_json::to_string(key).expect("a string serialises"));
        text.push(':');
        text.push_str(raw);
    }
    text.push('}');
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // `docker save` (Docker 20.10) of a three-layer image: each directory
    // name and `json` file, and the diff IDs `docker image inspect` gave.
    const DIFF_IDS: [&str; 3] = [
        "sha256:4e12b9a66470edbe348f3ee0fc4c631cec7926e8fc55f1ebc00a4a6ba2785fa9",
        "sha256:1e6736c7470b03779b73c1a0f4f1c1105a6e7fe59e8a02e5fa639ae890ae3ca5",
        "sha256:9f821cca0a444c813365d14a5cb39e3524968cc3daa2103b7d0b7550f64cbec2",
    ];
    const BOTTOM: (&str, &str) = (
        "4fc39b8ad06e2771ea7591f2d36dae26d8fcba86e2f916f05facd22f376da4aa",
        r##"{"id":"4fc39b8ad06e2771ea7591f2d36dae26d8fcba86e2f916f05facd22f376da4aa","created":"1970-01-01T00:00:00Z","container_config":{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":null,"Image":"","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":null},"os":"linux"}"##,
    );
    const MIDDLE: (&str, &str) = (
        "443bc0dc67a1b83ba7466f01e7658ba3f35fda899d8a852f597e3f100dbb752f",
        r##"{"id":"443bc0dc67a1b83ba7466f01e7658ba3f35fda899d8a852f597e3f100dbb752f","parent":"4fc39b8ad06e2771ea7591f2d36dae26d8fcba86e2f916f05facd22f376da4aa","created":"1970-01-01T00:00:00Z","container_config":{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":null,"Image":"","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":null},"os":"linux"}"##,
    );
    const TOP: (&str, &str) = (
        "264e90c9fe32846657fc2380c2dbddd333a14a481788cab17803a0dcbeac0383",
        r##"{"id":"264e90c9fe32846657fc2380c2dbddd333a14a481788cab17803a0dcbeac0383","parent":"443bc0dc67a1b83ba7466f01e7658ba3f35fda899d8a852f597e3f100dbb752f","created":"2026-11-29T00:23:32.21406558Z","container":"0cb89a7ba488083462d76ddc91a7b802fd38fed7fe30d93eec090f8f44ee7d4e","container_config":{"Hostname":"0cb89a7ba488","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","A=\u003cb\u003e\u0026"],"Cmd":["/bin/sh","-c","#(nop) ","ENV A=\u003cb\u003e\u0026"],"Image":"sha256:93fdc87a8a58c83a4ee7e8d6923693193a2b0aa470edd0f8d2951dd4b218239c","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":{}},"docker_version":"20.10.24+dfsg1","config":{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","A=\u003cb\u003e\u0026"],"Cmd":null,"Image":"sha256:93fdc87a8a58c83a4ee7e8d6923693193a2b0aa470edd0f8d2951dd4b218239c","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":null},"architecture":"amd64","os":"linux"}"##,
    );

    fn diff_ids() -> Vec<Digest> {
        DIFF_IDS.iter().map(|d| d.parse().unwrap()).collect()
    }

    #[test]
    fn finds_each_layer_of_a_real_docker_save() {
        let diff_ids = diff_ids();
        assert_eq!(
            layer_position(BOTTOM.0, BOTTOM.1.as_bytes(), &diff_ids),
            Some(0)
        );
        assert_eq!(
            layer_position(MIDDLE.0, MIDDLE.1.as_bytes(), &diff_ids),
            Some(1)
        );
        assert_eq!(layer_position(TOP.0, TOP.1.as_bytes(), &diff_ids), Some(2));
    }

    #[test]
    fn another_image_or_damaged_json_matches_nothing() {
        let mut other = diff_ids();
        other[0] = Digest::of(b"another layer");
        assert_eq!(layer_position(MIDDLE.0, MIDDLE.1.as_bytes(), &other), None);
        assert_eq!(layer_position(TOP.0, b"{not json", &diff_ids()), None);
        assert_eq!(
            layer_position(&"0".repeat(64), TOP.1.as_bytes(), &diff_ids()),
            None
        );
    }
}
