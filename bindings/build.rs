//! Builds `dpdk-sys`: finds DPDK 22.11 with pkg-config, generates the bindings with
//! bindgen, compiles the C shim for DPDK's static inline functions, and links the DPDK
//! shared libraries. Without DPDK it builds an empty stub (or fails when
//! `DPDK_SYS_REQUIRE=1`), and tells dependents through `DEP_DPDK_AVAILABLE`.

use std::cell::RefCell;
use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;

/// The only DPDK release line these bindings are written and checked against.
const DPDK_SERIES: &str = "22.11.";
/// Structs that are both packed and aligned, which bindgen cannot lay out (bindgen #1538).
const OPAQUE: &str = "rte_arp_ipv4|rte_arp_hdr|rte_l2tpv2_combined_msg_hdr|rte_gtp_psc_generic_hdr";

fn main() {
    for var in [
        "DPDK_SYS_REQUIRE",
        "PKG_CONFIG",
        "PKG_CONFIG_PATH",
        "PKG_CONFIG_LIBDIR",
        "PKG_CONFIG_SYSROOT_DIR",
    ] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    println!("cargo::rerun-if-changed=csrc");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rustc-check-cfg=cfg(dpdk_sys_stub)");

    if let Err(msg) = build() {
        for line in msg.lines() {
            println!("cargo::error={line}");
        }
    }
}

/// Everything that can fail, as a message for `cargo::error`.
fn build() -> Result<(), String> {
    let lib = match pkg_config::Config::new()
        .cargo_metadata(false)
        .env_metadata(false)
        .probe("libdpdk")
    {
        Ok(lib) => lib,
        Err(e) => return stub_or_fail(&e),
    };
    if !lib.version.starts_with(DPDK_SERIES) {
        return Err(format!(
            "dpdk-sys supports DPDK {DPDK_SERIES}x only, but pkg-config found libdpdk {}.\n\
             Point PKG_CONFIG_PATH at a DPDK 22.11 installation.",
            lib.version
        ));
    }
    println!("cargo::rustc-env=DPDK_VERSION={}", lib.version);
    println!("cargo::metadata=available=1");

    let cflags = pkg_config_tokens(&["--cflags", "libdpdk"])?;
    for dir in &lib.link_paths {
        println!("cargo::rustc-link-search=native={}", dir.display());
    }
    for name in &lib.libs {
        println!("cargo::rustc-link-lib=dylib={name}");
    }

    let out = PathBuf::from(env::var("OUT_DIR").map_err(|e| format!("OUT_DIR: {e}"))?);
    let manifest =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| format!("manifest dir: {e}"))?);
    let wrapper = manifest.join("csrc").join("wrapper.h");
    let static_fns = out.join("static_fns");

    let pmd_path = generate_bindings(&wrapper, &cflags, &static_fns, &out)?;
    std::fs::write(
        out.join("meta.rs"),
        format!(
            "/// Where DPDK's EAL loads its PMD drivers from by default (`RTE_EAL_PMD_PATH`).\n\
             pub const PMD_PATH: &str = {pmd_path:?};\n"
        ),
    )
    .map_err(|e| format!("writing meta.rs: {e}"))?;

    compile_shim(
        &wrapper,
        &cflags,
        &static_fns.with_extension("c"),
        &manifest,
    )
}

/// No DPDK found: an empty stub, or an error when the build must have DPDK.
fn stub_or_fail(err: &pkg_config::Error) -> Result<(), String> {
    if env::var("DPDK_SYS_REQUIRE").is_ok_and(|v| v != "0" && !v.is_empty()) {
        return Err(format!(
            "DPDK_SYS_REQUIRE is set but libdpdk was not found by pkg-config.\n\
             Install DPDK 22.11 (Debian/Ubuntu: `apt-get install libdpdk-dev pkg-config`),\n\
             or set PKG_CONFIG_PATH to the directory holding libdpdk.pc of your own build.\n\
             pkg-config said: {err}"
        ));
    }
    println!(
        "cargo::warning=libdpdk not found via pkg-config: building dpdk-sys as an empty stub \
         (set DPDK_SYS_REQUIRE=1 to make this an error)"
    );
    println!("cargo::rustc-cfg=dpdk_sys_stub");
    println!("cargo::metadata=available=0");
    Ok(())
}

/// The raw, whitespace-separated output of `pkg-config <args>`.
fn pkg_config_tokens(args: &[&str]) -> Result<Vec<String>, String> {
    let exe = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_owned());
    let out = Command::new(&exe)
        .args(args)
        .output()
        .map_err(|e| format!("running {exe}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{exe} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect())
}

/// Records the value of `RTE_EAL_PMD_PATH` while bindgen walks the macros.
#[derive(Debug)]
struct PmdPath(Rc<RefCell<Option<String>>>);

impl bindgen::callbacks::ParseCallbacks for PmdPath {
    fn str_macro(&self, name: &str, value: &[u8]) {
        if name == "RTE_EAL_PMD_PATH" {
            *self.0.borrow_mut() = Some(String::from_utf8_lossy(value).into_owned());
        }
    }
}

/// Runs bindgen over `wrapper` into `out/bindings.rs` plus the static-inline wrappers
/// into `static_fns.c`; returns `RTE_EAL_PMD_PATH` (empty if DPDK does not define it).
fn generate_bindings(
    wrapper: &Path,
    cflags: &[String],
    static_fns: &Path,
    out: &Path,
) -> Result<String, String> {
    let pmd_path = Rc::new(RefCell::new(None));
    let bindings = bindgen::Builder::default()
        .header(wrapper.display().to_string())
        .clang_args(cflags)
        .allowlist_function("rte_.*|dpdk_sys_.*")
        .allowlist_type("rte_.*")
        .allowlist_var("RTE_.*|SOCKET_ID_ANY|LCORE_ID_ANY")
        // A `va_list` parameter has no portable Rust signature; `rte_vlog` is the only
        // such function in the included headers.
        .blocklist_function("rte_vlog")
        .opaque_type(OPAQUE)
        .default_enum_style(bindgen::EnumVariation::NewType {
            is_bitfield: false,
            is_global: false,
        })
        .prepend_enum_name(false)
        .layout_tests(true)
        .derive_default(true)
        .clang_macro_fallback()
        .wrap_static_fns(true)
        .wrap_static_fns_suffix("_w")
        .wrap_static_fns_path(static_fns)
        .parse_callbacks(Box::new(PmdPath(Rc::clone(&pmd_path))))
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .map_err(|e| format!("bindgen failed on {}: {e}", wrapper.display()))?;
    bindings
        .write_to_file(out.join("bindings.rs"))
        .map_err(|e| format!("writing bindings.rs: {e}"))?;
    let path = pmd_path.borrow().clone().unwrap_or_default();
    Ok(path)
}

/// Compiles the generated static-inline wrappers plus `csrc/extra.c` with DPDK's own
/// flags.
fn compile_shim(
    wrapper: &Path,
    cflags: &[String],
    static_fns_c: &Path,
    manifest: &Path,
) -> Result<(), String> {
    let mut build = cc::Build::new();
    build
        .file(static_fns_c)
        .file(manifest.join("csrc").join("extra.c"))
        .include(manifest.join("csrc"))
        .opt_level(3)
        .warnings(false);
    for flag in cflags {
        build.flag(flag);
    }
    build
        .flag("-include")
        .flag(wrapper.display().to_string())
        .flag("-fvisibility=hidden")
        .try_compile("dpdk_sys_shim")
        .map_err(|e| format!("compiling the C shim: {e}"))
}
