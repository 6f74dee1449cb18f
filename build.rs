//! Tells the integration tests whether they may use container engines:
//! `cfg(engine_tests)` is set when `LOADMASTER_TEST_ENGINES` names any, or
//! when `CI` is set (where a missing engine must fail the run, not skip).
//! Without it the tests that need docker or podman carry
//! `#[cfg_attr(not(engine_tests), ignore = …)]`, so `cargo test` counts them
//! as ignored instead of passing them without running anything.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=LOADMASTER_TEST_ENGINES");
    println!("cargo::rerun-if-env-changed=CI");
    println!("cargo::rustc-check-cfg=cfg(engine_tests)");
    let set = |name: &str| std::env::var_os(name).is_some_and(|value| !value.is_empty());
    if set("LOADMASTER_TEST_ENGINES") || set("CI") {
        println!("cargo::rustc-cfg=engine_tests");
    }
}
