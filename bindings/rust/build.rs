//! Link libglm5.so from GLM5_LIB_DIR (default: the repository's .build/release, which
//! `make build` fills). The run path is set too, so tests and binaries of this crate run without
//! LD_LIBRARY_PATH. Crates depending on this one get the folder as DEP_GLM5_LIB_DIR.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=GLM5_LIB_DIR");
    println!("cargo:rerun-if-changed=build.rs");

    let dir = match env::var_os("GLM5_LIB_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"))
            .join("../../.build/release"),
    };
    let dir = dir.canonicalize().unwrap_or_else(|e| {
        panic!(
            "glm5: the library folder {} cannot be opened ({e}); build libglm5 with `make build` \
             at the repository root, or set GLM5_LIB_DIR to the folder holding libglm5.so",
            dir.display()
        )
    });
    let lib_name = if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("macos") {
        "libglm5.dylib"
    } else {
        "libglm5.so"
    };
    let lib = dir.join(lib_name);
    if !lib.is_file() {
        panic!(
            "glm5: {} does not exist; build it with `make build` at the repository root, or set \
             GLM5_LIB_DIR to the folder holding it",
            lib.display()
        );
    }
    println!("cargo:rerun-if-changed={}", lib.display());
    println!("cargo:rustc-link-search=native={}", dir.display());
    println!("cargo:rustc-link-lib=dylib=glm5");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
    // Metadata for dependent crates' build scripts (DEP_GLM5_LIB_DIR), thanks to `links`.
    println!("cargo:lib_dir={}", dir.display());
}
