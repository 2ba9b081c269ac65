//! The safe API against the fixture models in Tests/Fixtures and against bad inputs.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use glm5::{DType, Error, Model, ModelInfo, ModelParams, Status};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Tests/Fixtures")
}

/// Every fixture model: a folder under Tests/Fixtures holding config.json, sorted.
fn fixtures() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(fixtures_dir())
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.join("config.json").is_file())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn first_fixture() -> PathBuf {
    fixtures()
        .into_iter()
        .next()
        .expect("no fixture model under Tests/Fixtures")
}

/// The value after `"key":` in flat, machine-written JSON (first occurrence).
fn json_value<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let quoted = format!("\"{key}\"");
    let at = json.find(&quoted)? + quoted.len();
    let rest = json[at..].trim_start().strip_prefix(':')?.trim_start();
    Some(rest)
}

fn json_u64(json: &str, key: &str) -> Option<u64> {
    let rest = json_value(json, key)?;
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn json_str<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let rest = json_value(json, key)?.strip_prefix('"')?;
    Some(&rest[..rest.find('"')?])
}

fn cfg_u32(cfg: &str, key: &str) -> u32 {
    json_u64(cfg, key).unwrap_or_else(|| panic!("config.json has no number {key}")) as u32
}

/// A fresh empty folder under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let p = std::env::temp_dir().join(format!(
            "glm5-rust-test-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            nanos
        ));
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn load_err(path: impl AsRef<Path>, threads: usize) -> Error {
    match Model::load(path, &ModelParams { threads }) {
        Ok(m) => panic!("loading {:?} succeeded, expected an error", m.path()),
        Err(e) => e,
    }
}

fn assert_err(e: &Error, status: Status, needle: &str) {
    assert_eq!(e.status, status, "{e}");
    assert!(!e.message.is_empty());
    assert!(
        e.message.contains(needle),
        "message {:?} does not contain {:?}",
        e.message,
        needle
    );
    let shown = e.to_string();
    assert!(
        shown.starts_with(status.as_str()) && shown.contains(&e.message),
        "{shown}"
    );
}

// ---- versions, names -------------------------------------------------------------------------

#[test]
fn versions() {
    assert_eq!(glm5::abi_version(), glm5::ABI_VERSION);
    assert_eq!(glm5::ABI_VERSION, 1);
    assert!(glm5::check_abi().is_ok());
    let sys = glm5::sys::GLM5_VERSION_NUMBER;
    assert_eq!(glm5::version_number(), sys);
    let expected = format!(
        "{}.{}.{}",
        glm5::sys::GLM5_VERSION_MAJOR,
        glm5::sys::GLM5_VERSION_MINOR,
        glm5::sys::GLM5_VERSION_PATCH
    );
    assert_eq!(glm5::version(), expected);
}

#[test]
fn status_and_dtype_names() {
    let expected = [
        (Status::Ok, "ok"),
        (Status::InvalidArgument, "invalid argument"),
        (Status::Io, "I/O error"),
        (Status::BadFormat, "bad format"),
        (Status::Unsupported, "unsupported"),
        (Status::OutOfMemory, "out of memory"),
        (Status::ContextFull, "context full"),
        (Status::Busy, "busy"),
        (Status::Internal, "internal error"),
        (Status::BufferTooSmall, "buffer too small"),
        (Status::RecordFull, "record full"),
        (Status::VersionMismatch, "version mismatch"),
        (Status::Incompatible, "incompatible"),
    ];
    for (i, (s, text)) in expected.iter().enumerate() {
        assert_eq!(s.raw(), i as u32);
        assert_eq!(s.as_str(), *text);
    }
    assert_eq!(Status::Unknown(13).as_str(), "unknown status");

    let names = [
        "F32", "BF16", "F16", "F8_E4M3", "F8_E5M2", "I8", "U8", "I16", "I32", "I64", "F64", "BOOL",
        "U16", "U32", "U64",
    ];
    for (d, name) in DType::ALL.iter().zip(names) {
        assert_eq!(d.name(), name);
    }
    assert_eq!(glm5::dtype_name(15), "unknown");
}

#[test]
fn model_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Model>();
    assert_send_sync::<Error>();
    assert_send_sync::<ModelInfo>();
}

// ---- fixtures --------------------------------------------------------------------------------

#[test]
fn fixtures_are_present() {
    assert!(
        !fixtures().is_empty(),
        "no fixture models (folders with config.json) under {}",
        fixtures_dir().display()
    );
}

fn check_info(dir: &Path, info: &ModelInfo) {
    let cfg = fs::read_to_string(dir.join("config.json")).unwrap();
    let name = dir.display();
    assert_eq!(info.vocab_size, cfg_u32(&cfg, "vocab_size"), "{name}");
    assert_eq!(info.hidden_size, cfg_u32(&cfg, "hidden_size"), "{name}");
    assert_eq!(info.n_layers, cfg_u32(&cfg, "num_hidden_layers"), "{name}");
    assert_eq!(
        info.n_dense_layers,
        cfg_u32(&cfg, "first_k_dense_replace"),
        "{name}"
    );
    assert_eq!(
        info.n_dense_layers + info.n_moe_layers,
        info.n_layers,
        "{name}"
    );
    assert_eq!(info.n_heads, cfg_u32(&cfg, "num_attention_heads"), "{name}");
    assert_eq!(info.q_lora_rank, cfg_u32(&cfg, "q_lora_rank"), "{name}");
    assert_eq!(info.kv_lora_rank, cfg_u32(&cfg, "kv_lora_rank"), "{name}");
    assert_eq!(
        info.qk_nope_head_dim,
        cfg_u32(&cfg, "qk_nope_head_dim"),
        "{name}"
    );
    assert_eq!(
        info.qk_rope_head_dim,
        cfg_u32(&cfg, "qk_rope_head_dim"),
        "{name}"
    );
    assert_eq!(info.v_head_dim, cfg_u32(&cfg, "v_head_dim"), "{name}");
    assert_eq!(
        info.n_routed_experts,
        cfg_u32(&cfg, "n_routed_experts"),
        "{name}"
    );
    assert_eq!(
        info.n_experts_per_tok,
        cfg_u32(&cfg, "num_experts_per_tok"),
        "{name}"
    );
    assert_eq!(
        info.n_shared_experts,
        cfg_u32(&cfg, "n_shared_experts"),
        "{name}"
    );
    assert_eq!(info.index_n_heads, cfg_u32(&cfg, "index_n_heads"), "{name}");
    assert_eq!(
        info.index_head_dim,
        cfg_u32(&cfg, "index_head_dim"),
        "{name}"
    );
    assert_eq!(info.index_topk, cfg_u32(&cfg, "index_topk"), "{name}");
    assert_eq!(
        info.max_position_embeddings,
        cfg_u32(&cfg, "max_position_embeddings"),
        "{name}"
    );
    // The fixtures carry their MTP layer.
    assert!(info.has_mtp, "{name}");
    assert_eq!(
        info.n_mtp_layers,
        cfg_u32(&cfg, "num_nextn_predict_layers"),
        "{name}"
    );

    // Linear weight formats: 1 float, 2 FP8 blocks, 4 INT4 groups, as config.json declares.
    let quant = json_str(&cfg, "quant_method");
    match quant {
        Some("fp8") => assert!(info.weight_formats & 2 != 0, "{name}: FP8 not reported"),
        Some("compressed-tensors") => {
            assert!(info.weight_formats & 4 != 0, "{name}: INT4 not reported")
        }
        _ => assert_eq!(info.weight_formats, 1, "{name}"),
    }
    assert!(
        info.resident_weight_bytes >= info.weight_file_bytes,
        "{name}"
    );
    // 0.2: nothing updated yet
    assert_eq!(
        (info.updated_weight_bytes, info.n_weight_updates),
        (0, 0),
        "{name}"
    );
    assert!(
        (info.resident_weight_bytes as f64) < 1.05 * info.weight_file_bytes as f64 + 65536.0,
        "{name}: resident {} vs file {}",
        info.resident_weight_bytes,
        info.weight_file_bytes
    );

    let dtype = json_str(&cfg, "dtype").or_else(|| json_str(&cfg, "torch_dtype"));
    let want = match dtype {
        Some("float32") => Some(DType::F32),
        Some("bfloat16") => Some(DType::BF16),
        Some("float16") => Some(DType::F16),
        _ => None,
    };
    if let Some(d) = want {
        assert!(
            info.dtypes().contains(&d),
            "{name}: {:?} lacks {d}",
            info.dtype_names()
        );
        assert!(info.dtype_names().contains(&d.name()));
    }
    assert!(!info.dtypes().is_empty());
    assert_eq!(
        info.dtypes().iter().map(|d| d.bit()).sum::<u32>(),
        info.weight_dtypes,
        "{name}: unknown dtype bits"
    );

    assert!(info.n_parameters > 0);
    assert!(
        info.weight_file_bytes >= info.n_parameters
            && info.weight_file_bytes <= 8 * info.n_parameters
    );
    if info.dtypes() == [DType::F32] {
        assert_eq!(info.weight_file_bytes, 4 * info.n_parameters);
    }
    // A sharded checkpoint: the index's total_size is the tensor bytes.
    if let Ok(index) = fs::read_to_string(dir.join("model.safetensors.index.json")) {
        if let Some(total) = json_u64(&index, "total_size") {
            assert_eq!(info.weight_file_bytes, total, "{name}");
        }
    }
}

#[test]
fn fixtures_load_and_match_config() {
    for dir in fixtures() {
        let model = Model::load(&dir, &ModelParams { threads: 2 })
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        assert_eq!(model.path(), dir.as_path());
        let info = model.info();
        check_info(&dir, &info);
        assert_eq!(model.try_info().unwrap(), info);
        assert!(format!("{model:?}").contains("Model"));
    }
}

#[test]
fn default_params_and_repeated_loads() {
    let dir = first_fixture();
    let a = Model::load(&dir, &ModelParams::default()).unwrap();
    let b = Model::load(&dir, &ModelParams { threads: 1 }).unwrap();
    assert_ne!(a.as_ptr(), b.as_ptr());
    assert_eq!(a.info(), b.info());
    drop(a);
    assert_eq!(
        b.info().vocab_size,
        cfg_u32(
            &fs::read_to_string(dir.join("config.json")).unwrap(),
            "vocab_size"
        )
    );
    for _ in 0..20 {
        let m = Model::load(&dir, &ModelParams::default()).unwrap();
        assert!(m.info().n_layers > 0);
    }
}

#[test]
fn one_model_four_threads() {
    for dir in fixtures() {
        let model = Arc::new(Model::load(&dir, &ModelParams::default()).unwrap());
        let expected = model.info();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let m = Arc::clone(&model);
                thread::spawn(move || (0..200).all(|_| m.info() == expected))
            })
            .collect();
        for h in handles {
            assert!(h.join().unwrap());
        }
        // Borrowed across scoped threads, too (Sync).
        thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| assert_eq!(model.info(), expected));
            }
        });
    }
}

#[test]
fn four_threads_loading_and_failing_at_once() {
    let dir = first_fixture();
    let tmp = TempDir::new();
    thread::scope(|s| {
        for i in 0..4 {
            let dir = &dir;
            let tmp = &tmp;
            s.spawn(move || {
                for _ in 0..10 {
                    let m = Model::load(dir, &ModelParams { threads: 1 }).unwrap();
                    check_info(dir, &m.info());
                    // Each thread's error names its own path: the last error is per thread.
                    let missing = tmp.0.join(format!("missing-{i}"));
                    let e = load_err(&missing, 0);
                    assert_err(&e, Status::Io, &format!("missing-{i}"));
                }
            });
        }
    });
}

// ---- failures --------------------------------------------------------------------------------

#[test]
fn missing_path_is_io() {
    let tmp = TempDir::new();
    let missing = tmp.0.join("no-such-model");
    let e = load_err(&missing, 0);
    assert_err(&e, Status::Io, missing.to_str().unwrap());
}

#[test]
fn folder_without_config_is_io() {
    let tmp = TempDir::new();
    let e = load_err(&tmp.0, 0);
    assert_err(&e, Status::Io, "config.json");
    assert!(e.message.contains(tmp.0.to_str().unwrap()));
}

#[test]
fn invalid_json_is_bad_format() {
    let tmp = TempDir::new();
    fs::write(
        tmp.0.join("config.json"),
        "{\"model_type\": \"glm_moe_dsa\",",
    )
    .unwrap();
    assert_err(&load_err(&tmp.0, 0), Status::BadFormat, "config.json");
}

#[test]
fn unsupported_model_type() {
    let tmp = TempDir::new();
    fs::write(
        tmp.0.join("config.json"),
        r#"{"model_type": "llama", "vocab_size": 32}"#,
    )
    .unwrap();
    assert_err(&load_err(&tmp.0, 0), Status::Unsupported, "llama");
}

#[test]
fn incomplete_config_is_bad_format() {
    let tmp = TempDir::new();
    fs::write(
        tmp.0.join("config.json"),
        r#"{"model_type": "glm_moe_dsa"}"#,
    )
    .unwrap();
    assert_err(&load_err(&tmp.0, 0), Status::BadFormat, "config.json");
}

#[test]
fn config_without_weights_is_io_and_bad_weights_are_bad_format() {
    let tmp = TempDir::new();
    fs::copy(
        first_fixture().join("config.json"),
        tmp.0.join("config.json"),
    )
    .unwrap();
    assert_err(&load_err(&tmp.0, 0), Status::Io, "model.safetensors");
    fs::write(tmp.0.join("model.safetensors"), [0xffu8; 8]).unwrap();
    assert_err(&load_err(&tmp.0, 0), Status::BadFormat, "model.safetensors");
}

#[test]
fn threads_out_of_range() {
    let dir = first_fixture();
    assert_err(&load_err(&dir, 1025), Status::InvalidArgument, "n_threads");
    assert_err(
        &load_err(&dir, i32::MAX as usize),
        Status::InvalidArgument,
        "threads",
    );
    assert_err(
        &load_err(&dir, usize::MAX),
        Status::InvalidArgument,
        "threads",
    );
}

#[test]
fn path_with_nul_is_invalid_argument() {
    assert_err(&load_err("bad\0path", 0), Status::InvalidArgument, "NUL");
}

#[test]
fn freed_handle_is_refused_by_the_library() {
    // The library's live-handle registry, seen through the raw API.
    let model = Model::load(first_fixture(), &ModelParams::default()).unwrap();
    let raw = model.as_ptr();
    drop(model);
    let mut info = glm5::sys::glm5_model_info {
        struct_size: std::mem::size_of::<glm5::sys::glm5_model_info>() as u32,
        ..Default::default()
    };
    let status = unsafe { glm5::sys::glm5_model_get_info(raw, &mut info) };
    assert_eq!(Status::from_raw(status), Status::InvalidArgument);
    assert!(glm5::last_error().contains("model"));
    assert_eq!(info.vocab_size, 0);
}
