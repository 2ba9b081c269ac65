//! Find libglm5 and link it. In this order:
//!
//! 1. `GLM5_LIB_DIR`: the folder holding libglm5.so (an explicit choice: never replaced);
//! 2. pkg-config: `pkg-config --variable=libdir glm5` (what `make install` writes; set
//!    PKG_CONFIG_PATH=<prefix>/lib/pkgconfig for a prefix pkg-config does not search);
//! 3. the repository's `.build/release`, which `make build` fills (a source checkout).
//!
//! The run path is set to the folder too, so this crate's tests and examples run without
//! LD_LIBRARY_PATH. Crates depending on this one get the folder as DEP_GLM5_LIB_DIR. The
//! `pkg-config` program is called directly (no build dependency: the crate builds offline).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn lib_name() -> &'static str {
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("macos") {
        "libglm5.dylib"
    } else {
        "libglm5.so"
    }
}

/// `pkg-config --variable=libdir glm5`: Ok(folder), or Err(why not) for the panic message.
fn pkg_config_libdir() -> Result<PathBuf, String> {
    let program = env::var_os("PKG_CONFIG")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "pkg-config".into());
    let shown = program.to_string_lossy().into_owned();
    let out = Command::new(&program)
        .args(["--variable=libdir", "glm5"])
        .output()
        .map_err(|e| format!("`{shown}` cannot be run ({e})"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || stdout.is_empty() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().replace('\n', " ");
        return Err(format!(
            "`{shown} --variable=libdir glm5` found no glm5.pc{}",
            if stderr.is_empty() { String::new() } else { format!(" ({stderr})") }
        ));
    }
    Ok(PathBuf::from(stdout))
}

fn main() {
    println!("cargo:rerun-if-env-changed=GLM5_LIB_DIR");
    for var in ["PKG_CONFIG", "PKG_CONFIG_PATH", "PKG_CONFIG_LIBDIR", "PKG_CONFIG_SYSROOT_DIR"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=build.rs");

    let repo_build = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"))
        .join("../../.build/release");
    let (dir, source) = match env::var_os("GLM5_LIB_DIR") {
        Some(d) if !d.is_empty() => (PathBuf::from(d), "GLM5_LIB_DIR"),
        _ => match pkg_config_libdir() {
            Ok(d) => (d, "pkg-config (glm5.pc's libdir)"),
            Err(why) => {
                if !repo_build.join(lib_name()).is_file() {
                    panic!(
                        "glm5: cannot find libglm5: GLM5_LIB_DIR is not set; {why}; and {} does \
                         not exist (not a source checkout, or not built). Install the library \
                         with `make install [PREFIX=...]` at the repository root (then set \
                         PKG_CONFIG_PATH=<prefix>/lib/pkgconfig unless pkg-config already \
                         searches there), build it with `make build`, or set GLM5_LIB_DIR to \
                         the folder holding {}",
                        repo_build.join(lib_name()).display(),
                        lib_name()
                    );
                }
                (repo_build, "the repository build (.build/release)")
            }
        },
    };
    let dir = dir.canonicalize().unwrap_or_else(|e| {
        panic!(
            "glm5: the library folder {} (from {source}) cannot be opened ({e}); build libglm5 \
             with `make build` at the repository root, install it with `make install`, or set \
             GLM5_LIB_DIR to the folder holding {}",
            dir.display(),
            lib_name()
        )
    });
    let lib = dir.join(lib_name());
    if !lib.is_file() {
        panic!(
            "glm5: {} (from {source}) does not exist; build it with `make build` at the \
             repository root, install it with `make install`, or set GLM5_LIB_DIR to the folder \
             holding it",
            lib.display()
        );
    }
    link(&dir, &lib);
}

fn link(dir: &Path, lib: &Path) {
    println!("cargo:rerun-if-changed={}", lib.display());
    println!("cargo:rustc-link-search=native={}", dir.display());
    println!("cargo:rustc-link-lib=dylib=glm5");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
    // Metadata for dependent crates' build scripts (DEP_GLM5_LIB_DIR), thanks to `links`.
    println!("cargo:lib_dir={}", dir.display());
}
