//! The web console's built files (`console-dist/`) are embedded with `include_dir!`, which
//! does not tell cargo about them on stable Rust: without this, a rebuilt console would not
//! reach the binary until some Rust file of this crate changed too.

fn main() {
    // A directory here makes cargo rerun this script (and so rebuild the crate) when any file
    // under it is added, removed or changed.
    println!("cargo:rerun-if-changed=console-dist");
    println!("cargo:rerun-if-changed=build.rs");
}
