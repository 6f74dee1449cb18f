//! Streaming a large input into a node through `exec`, with bounded memory.
//!
//! A test binary of its own: the peak RSS it asserts is this process's, so
//! no other test may run in it.

mod support;

use loadmaster::engine::Engine;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::time::Duration;
use support::{NodeOptions, TestCluster, engines_under_test, peak_rss_bytes};

const STREAM_BYTES: u64 = 200 << 20;
const RSS_LIMIT: u64 = 64 << 20;

/// Incompressible bytes made on the fly (xorshift64*), hashed as they are
/// read, so the input never exists in memory as a whole.
struct RandomStream {
    state: u64,
    remaining: u64,
    hash: Sha256,
}

impl Read for RandomStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.remaining) as usize / 8 * 8;
        let n = if n == 0 {
            self.remaining.min(buf.len() as u64) as usize
        } else {
            n
        };
        for chunk in buf[..n].chunks_mut(8) {
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            let word = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        self.hash.update(&buf[..n]);
        self.remaining -= n as u64;
        Ok(n)
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn exec_streams_200_mib_into_a_node_with_bounded_memory() {
    for kind in engines_under_test() {
        let cluster = TestCluster::start(kind, 0, &NodeOptions::default());
        let mut input = RandomStream {
            state: 0x9E37_79B9_7F4A_7C15,
            remaining: STREAM_BYTES,
            hash: Sha256::new(),
        };
        let done = Engine::new(kind)
            .exec(
                cluster.control_plane(),
                &["sha256sum"],
                &mut input,
                Duration::from_secs(300),
            )
            .unwrap();
        assert_eq!(input.remaining, 0, "the whole stream was sent");
        let ours = hex::encode(input.hash.finalize());
        let theirs = done.stdout_text();
        assert_eq!(
            theirs.split_whitespace().next(),
            Some(ours.as_str()),
            "sha256 inside the node on {kind}"
        );
    }
    let peak = peak_rss_bytes();
    eprintln!("peak RSS after streaming: {} MiB", peak >> 20);
    assert!(
        peak < RSS_LIMIT,
        "peak RSS {peak} bytes exceeds {RSS_LIMIT}"
    );
}
