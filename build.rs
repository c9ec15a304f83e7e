//! Generates the prost types of `proto/wagate.proto` (exposed as `crate::pb`).
//!
//! `protox` parses the schema in pure Rust, so builds need no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(["wagate.proto"], ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
