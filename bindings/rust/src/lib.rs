//! Safe Rust bindings for glm5, GLM-5 (Hugging Face `glm_moe_dsa`) inference on CPUs.
//!
//! The raw C API of `include/glm5.h` is in [`sys`]; this module wraps it: [`Model`] frees itself
//! on drop and is `Send + Sync` (a loaded model is only read by computations; weight updates are
//! atomic and serialised by the library); a [`Session`] holds one token sequence and its caches,
//! is `Send` but not `Sync`, and keeps the model's weights alive on its own; a [`Canceller`]
//! (`Send + Sync`) stops sampling on a session from another thread; failures are [`Error`] values
//! carrying a [`Status`] and the library's message.
//!
//! For RL loops (C API 0.2): a session made with [`SessionParams::record`] records its routing
//! (DSA selections and MoE routes; [`Session::recorded`]), which [`Model::score_replay`] and
//! [`Session::append_replay`] replay ([`Replay`], "R3"); [`Model::update_weights`],
//! [`Model::update_weights_delta`] and [`Model::begin_update`] ([`WeightUpdate`]) replace the
//! weights while sessions live, under a version ([`Model::weight_version`],
//! [`SampleResult::weight_version`]); [`Session::save`] and [`Model::restore`] move a session
//! between processes.
//!
//! ```no_run
//! use glm5::{Logits, Model, ModelParams, SamplingParams, SessionParams};
//! let model = Model::load("Tests/Fixtures/tiny-dsa", &ModelParams { threads: 2 })?;
//! let info = model.info();
//! println!("vocab {}, layers {}", info.vocab_size, info.n_layers);
//!
//! let mut session = model.session(&SessionParams::default())?;
//! let next = session.append(&[1, 2, 3], Logits::Last)?; // vocab_size floats
//! let (ids, logprobs) = session.generate(8)?;           // greedy
//! let scores = model.score(&[1, 2, 3])?;                // NaN first
//!
//! // Sampling: prefill once, fork per trajectory, one seed each, all in one batch.
//! let mut forks = vec![session.fork()?, session.fork()?];
//! let params: Vec<SamplingParams> = (0..2)
//!     .map(|seed| SamplingParams { temperature: 0.8, top_p: 0.95, seed, ..Default::default() })
//!     .collect();
//! let mut refs: Vec<&mut glm5::Session> = forks.iter_mut().collect();
//! for r in model.sample_batch(&mut refs, &params)? {
//!     println!("{:?} {:?} {:?}", r.tokens, r.scaled_logprobs, r.finish_reason);
//! }
//!
//! // RL (C API 0.2). R3: record a rollout's routing, replay it when scoring.
//! let mut rollout = model.session(&SessionParams { record: true, ..Default::default() })?;
//! rollout.append(&[1, 2, 3], Logits::None)?;
//! let r = rollout.sample(&SamplingParams { max_new_tokens: 4, seed: 1, ..Default::default() })?;
//! let (raw, _) = model.score_replay(&rollout.tokens(), &rollout.recorded()?.replay(), 1.0)?;
//! assert_eq!(raw[3..], r.logprobs[..]); // bit for bit
//!
//! // Save a session; new weights (sessions continue, results carry the version); restore.
//! let saved: Vec<u8> = rollout.save()?;
//! model.update_weights("Tests/Fixtures/tiny-dsa-v2", "step-1")?;
//! assert_eq!(model.weight_version()?, "step-1");
//! let mut resumed = model.restore(&saved, true)?; // saved under "default": allow another version
//! resumed.recompute()?;                            // rebuild its caches with the new weights
//! assert_eq!(resumed.sample(&SamplingParams::default())?.weight_version, "step-1");
//! # Ok::<(), glm5::Error>(())
//! ```
//!
//! Linking: `build.rs` links `libglm5.so` from `GLM5_LIB_DIR` (default: the repository's
//! `.build/release`) and sets the run path for this crate's own tests and examples. A crate that
//! depends on this one finds the folder in `DEP_GLM5_LIB_DIR` (for its own run path) or sets
//! `LD_LIBRARY_PATH`.

pub mod sys;

mod replay;
mod sampling;
mod saving;
mod session;
mod tokenizer;
mod weights;
pub use replay::{RecordInfo, RecordShape, Recorded, Replay};
pub use sampling::{FinishReason, SampleResult, SamplingParams, MAX_TOP_LOGPROBS};
pub use session::{Appended, Canceller, Logits, Session, SessionParams};
pub use tokenizer::{Detokenizer, Tokenizer};
pub use weights::{Tensor, WeightUpdate, WEIGHT_VERSION_MAX_BYTES};

use std::ffi::{CStr, CString};
use std::fmt;
use std::os::raw::c_char;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::OnceLock;

/// The `GLM5_ABI_VERSION` of the header this crate mirrors.
pub const ABI_VERSION: u32 = sys::GLM5_ABI_VERSION;

// ---- Versions --------------------------------------------------------------------------------

/// The ABI version of the linked library (`glm5_abi_version`).
pub fn abi_version() -> u32 {
    unsafe { sys::glm5_abi_version() }
}

/// The linked library's version number: major * 10000 + minor * 100 + patch.
pub fn version_number() -> u32 {
    unsafe { sys::glm5_version_number() }
}

/// The linked library's version, e.g. "0.1.0".
pub fn version() -> &'static str {
    static_str(unsafe { sys::glm5_version_string() })
}

/// Fails if the linked library has another ABI than this crate was written for. Checked once,
/// by [`Model::load`]; call it yourself to check earlier.
pub fn check_abi() -> Result<(), Error> {
    static FOUND: OnceLock<u32> = OnceLock::new();
    let found = *FOUND.get_or_init(abi_version);
    if found == ABI_VERSION {
        Ok(())
    } else {
        Err(Error::new(
            Status::Unsupported,
            format!(
                "libglm5 has ABI version {found}, but this crate was written for ABI version {ABI_VERSION}; \
                 use the glm5 crate that matches the library"
            ),
        ))
    }
}

/// A static string from the library (never NULL by contract; "" if it were).
fn static_str(p: *const c_char) -> &'static str {
    if p.is_null() {
        return "";
    }
    // SAFETY: the header promises static storage, NUL-terminated, never freed.
    unsafe { CStr::from_ptr(p) }.to_str().unwrap_or("")
}

// ---- Status and errors -----------------------------------------------------------------------

/// Mirrors `glm5_status`. Values are pinned by the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Ok,
    InvalidArgument,
    Io,
    BadFormat,
    Unsupported,
    OutOfMemory,
    ContextFull,
    Busy,
    Internal,
    BufferTooSmall,
    /// A session's routing record would pass its bound ([`SessionParams::record_max_bytes`]).
    RecordFull,
    /// Weight versions disagree: a delta or a saved session was made against other weights than
    /// the loaded ones.
    VersionMismatch,
    /// Made for another model configuration (an update folder, a saved session).
    Incompatible,
    /// A value this crate does not know (from a newer library).
    Unknown(u32),
}

impl Status {
    /// The status of a raw `glm5_status` value.
    pub fn from_raw(raw: sys::glm5_status) -> Status {
        match raw {
            sys::GLM5_OK => Status::Ok,
            sys::GLM5_ERR_INVALID_ARGUMENT => Status::InvalidArgument,
            sys::GLM5_ERR_IO => Status::Io,
            sys::GLM5_ERR_BAD_FORMAT => Status::BadFormat,
            sys::GLM5_ERR_UNSUPPORTED => Status::Unsupported,
            sys::GLM5_ERR_OUT_OF_MEMORY => Status::OutOfMemory,
            sys::GLM5_ERR_CONTEXT_FULL => Status::ContextFull,
            sys::GLM5_ERR_BUSY => Status::Busy,
            sys::GLM5_ERR_INTERNAL => Status::Internal,
            sys::GLM5_ERR_BUFFER_TOO_SMALL => Status::BufferTooSmall,
            sys::GLM5_ERR_RECORD_FULL => Status::RecordFull,
            sys::GLM5_ERR_VERSION_MISMATCH => Status::VersionMismatch,
            sys::GLM5_ERR_INCOMPATIBLE => Status::Incompatible,
            other => Status::Unknown(other),
        }
    }

    /// The raw `glm5_status` value.
    pub fn raw(self) -> sys::glm5_status {
        match self {
            Status::Ok => sys::GLM5_OK,
            Status::InvalidArgument => sys::GLM5_ERR_INVALID_ARGUMENT,
            Status::Io => sys::GLM5_ERR_IO,
            Status::BadFormat => sys::GLM5_ERR_BAD_FORMAT,
            Status::Unsupported => sys::GLM5_ERR_UNSUPPORTED,
            Status::OutOfMemory => sys::GLM5_ERR_OUT_OF_MEMORY,
            Status::ContextFull => sys::GLM5_ERR_CONTEXT_FULL,
            Status::Busy => sys::GLM5_ERR_BUSY,
            Status::Internal => sys::GLM5_ERR_INTERNAL,
            Status::BufferTooSmall => sys::GLM5_ERR_BUFFER_TOO_SMALL,
            Status::RecordFull => sys::GLM5_ERR_RECORD_FULL,
            Status::VersionMismatch => sys::GLM5_ERR_VERSION_MISMATCH,
            Status::Incompatible => sys::GLM5_ERR_INCOMPATIBLE,
            Status::Unknown(v) => v,
        }
    }

    /// The library's short description ("invalid argument", ...; "unknown status").
    pub fn as_str(self) -> &'static str {
        static_str(unsafe { sys::glm5_status_string(self.raw()) })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed glm5 call: its status and the message naming what was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub status: Status,
    pub message: String,
}

impl Error {
    pub fn new(status: Status, message: impl Into<String>) -> Error {
        Error {
            status,
            message: message.into(),
        }
    }

    /// The error of the call that just returned `raw` on this thread.
    fn last(raw: sys::glm5_status) -> Error {
        Error::new(Status::from_raw(raw), last_error())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{}", self.status)
        } else {
            write!(f, "{}: {}", self.status, self.message)
        }
    }
}

impl std::error::Error for Error {}

/// The message of this thread's most recent failed glm5 call, or "" (`glm5_last_error`).
pub fn last_error() -> String {
    let p = unsafe { sys::glm5_last_error() };
    if p.is_null() {
        return String::new();
    }
    // SAFETY: NUL-terminated, valid until the next glm5 call on this thread; copied right away.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// `Ok(())` for GLM5_OK, else the thread's last error with that status.
fn check(raw: sys::glm5_status) -> Result<(), Error> {
    if raw == sys::GLM5_OK {
        Ok(())
    } else {
        Err(Error::last(raw))
    }
}

// ---- Weight data types -----------------------------------------------------------------------

/// Mirrors `glm5_dtype`. Values are pinned by the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum DType {
    F32 = 0,
    BF16 = 1,
    F16 = 2,
    F8E4M3 = 3,
    F8E5M2 = 4,
    I8 = 5,
    U8 = 6,
    I16 = 7,
    I32 = 8,
    I64 = 9,
    F64 = 10,
    Bool = 11,
    U16 = 12,
    U32 = 13,
    U64 = 14,
}

impl DType {
    pub const ALL: [DType; 15] = [
        DType::F32,
        DType::BF16,
        DType::F16,
        DType::F8E4M3,
        DType::F8E5M2,
        DType::I8,
        DType::U8,
        DType::I16,
        DType::I32,
        DType::I64,
        DType::F64,
        DType::Bool,
        DType::U16,
        DType::U32,
        DType::U64,
    ];

    pub fn from_raw(raw: sys::glm5_dtype) -> Option<DType> {
        DType::ALL.get(raw as usize).copied()
    }

    /// The safetensors name ("F32", "BF16", "F8_E4M3", ...), from `glm5_dtype_name`.
    pub fn name(self) -> &'static str {
        dtype_name(self as sys::glm5_dtype)
    }

    /// This dtype's bit in [`ModelInfo::weight_dtypes`].
    pub fn bit(self) -> u32 {
        1u32 << (self as u32)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `glm5_dtype_name` of any raw value ("unknown" for values the library does not know).
pub fn dtype_name(raw: sys::glm5_dtype) -> &'static str {
    static_str(unsafe { sys::glm5_dtype_name(raw) })
}

// ---- Models ----------------------------------------------------------------------------------

/// Options for [`Model::load`]. Build it with `..Default::default()`: fields are only appended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModelParams {
    /// Compute threads; 0 (the default) = one per available CPU. At most 1024.
    pub threads: usize,
}

/// Facts about a loaded model (`glm5_model_info`; see include/glm5.h for each field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelInfo {
    pub vocab_size: u32,
    pub hidden_size: u32,
    pub n_layers: u32,
    pub n_dense_layers: u32,
    pub n_moe_layers: u32,
    pub n_heads: u32,
    pub q_lora_rank: u32,
    pub kv_lora_rank: u32,
    pub qk_nope_head_dim: u32,
    pub qk_rope_head_dim: u32,
    pub v_head_dim: u32,
    pub n_routed_experts: u32,
    pub n_experts_per_tok: u32,
    pub n_shared_experts: u32,
    pub index_n_heads: u32,
    pub index_head_dim: u32,
    pub index_topk: u32,
    pub max_position_embeddings: u32,
    pub has_mtp: bool,
    pub n_mtp_layers: u32,
    /// Bit mask: bit `1 << dtype` per [`DType`] among the weights (see [`ModelInfo::dtypes`]).
    pub weight_dtypes: u32,
    pub n_parameters: u64,
    pub weight_file_bytes: u64,
    /// Bit mask of Linear weight formats: 1 float, 2 FP8 blocks, 4 INT4 groups.
    pub weight_formats: u32,
    /// Memory the weights take once all are used: the mapped tensor data, plus what loading
    /// copied or repacked, plus what weight updates hold.
    pub resident_weight_bytes: u64,
    /// Of those, the bytes of tensors that weight updates replaced, held in owned memory (0 until
    /// an update; 0 again after an update from a folder that is adopted as it is, memory-mapped).
    pub updated_weight_bytes: u64,
    /// Weight updates applied since loading.
    pub n_weight_updates: u64,
}

impl ModelInfo {
    fn from_sys(c: &sys::glm5_model_info) -> ModelInfo {
        ModelInfo {
            vocab_size: c.vocab_size,
            hidden_size: c.hidden_size,
            n_layers: c.n_layers,
            n_dense_layers: c.n_dense_layers,
            n_moe_layers: c.n_moe_layers,
            n_heads: c.n_heads,
            q_lora_rank: c.q_lora_rank,
            kv_lora_rank: c.kv_lora_rank,
            qk_nope_head_dim: c.qk_nope_head_dim,
            qk_rope_head_dim: c.qk_rope_head_dim,
            v_head_dim: c.v_head_dim,
            n_routed_experts: c.n_routed_experts,
            n_experts_per_tok: c.n_experts_per_tok,
            n_shared_experts: c.n_shared_experts,
            index_n_heads: c.index_n_heads,
            index_head_dim: c.index_head_dim,
            index_topk: c.index_topk,
            max_position_embeddings: c.max_position_embeddings,
            has_mtp: c.has_mtp != 0,
            n_mtp_layers: c.n_mtp_layers,
            weight_dtypes: c.weight_dtypes,
            n_parameters: c.n_parameters,
            weight_file_bytes: c.weight_file_bytes,
            weight_formats: c.weight_formats,
            resident_weight_bytes: c.resident_weight_bytes,
            updated_weight_bytes: c.updated_weight_bytes,
            n_weight_updates: c.n_weight_updates,
        }
    }

    /// The dtypes among the weights, in dtype order.
    pub fn dtypes(&self) -> Vec<DType> {
        DType::ALL
            .iter()
            .copied()
            .filter(|d| self.weight_dtypes & d.bit() != 0)
            .collect()
    }

    /// The layout of a routing record and a replay ([`Recorded`], [`Replay`]) on this model.
    pub fn record_shape(&self) -> RecordShape {
        RecordShape {
            n_layers: self.n_layers as usize,
            index_topk: self.index_topk as usize,
            n_moe_layers: self.n_moe_layers as usize,
            n_experts_per_tok: self.n_experts_per_tok as usize,
        }
    }

    /// Their safetensors names ("F32", "BF16", ...).
    pub fn dtype_names(&self) -> Vec<&'static str> {
        self.dtypes().into_iter().map(DType::name).collect()
    }
}

// The header's glm5_*_init functions are static inline (the library does not export them): they
// set struct_size to the sizeof of the header the host was compiled with. This crate does the same
// for its own layouts: struct_size = this crate's sizeof tells the library which version of the
// struct it gets.

/// `glm5_model_params_init` on this crate's layout: defaults, struct_size = our sizeof.
pub(crate) fn new_model_params() -> sys::glm5_model_params {
    sys::glm5_model_params {
        struct_size: std::mem::size_of::<sys::glm5_model_params>() as u32,
        n_threads: 0,
    }
}

/// `glm5_model_info_init` on this crate's layout: zeros, struct_size = our sizeof.
pub(crate) fn new_model_info() -> sys::glm5_model_info {
    sys::glm5_model_info {
        struct_size: std::mem::size_of::<sys::glm5_model_info>() as u32,
        ..Default::default()
    }
}

/// A loaded checkpoint (`glm5_model`): its configuration and memory-mapped weights. Shareable
/// between threads; freed on drop.
///
/// Computations only read it. Weight updates ([`Model::update_weights`],
/// [`Model::update_weights_delta`], [`Model::begin_update`]) take `&self` too, as the C API
/// allows: an update is atomic, updates are serialised, and a call in flight on another thread
/// finishes on the weights it started with.
pub struct Model {
    ptr: NonNull<sys::glm5_model>,
    path: PathBuf,
}

// SAFETY: the header: "a model is read-only after loading and may be shared by any number of
// threads"; glm5_model_get_info, scoring, glm5_model_weight_version and the weight updates are
// thread-safe (updates are atomic and serialised; calls in flight keep the weights they started
// with), and freeing takes `self` by value.
unsafe impl Send for Model {}
unsafe impl Sync for Model {}

fn path_to_cstring(path: &Path) -> Result<CString, Error> {
    #[cfg(unix)]
    let bytes = {
        use std::os::unix::ffi::OsStrExt;
        path.as_os_str().as_bytes().to_vec()
    };
    #[cfg(not(unix))]
    let bytes = path
        .to_str()
        .ok_or_else(|| {
            Error::new(
                Status::InvalidArgument,
                format!("path {} is not UTF-8", path.display()),
            )
        })?
        .as_bytes()
        .to_vec();
    CString::new(bytes).map_err(|_| {
        Error::new(
            Status::InvalidArgument,
            format!("path {:?} contains a NUL byte", path),
        )
    })
}

impl Model {
    /// Load a Hugging Face model folder (config.json plus safetensors) with `glm5_model_load`.
    pub fn load(path: impl AsRef<Path>, params: &ModelParams) -> Result<Model, Error> {
        check_abi()?;
        let path = path.as_ref();
        let c_path = path_to_cstring(path)?;
        let mut p = new_model_params();
        p.n_threads = i32::try_from(params.threads).map_err(|_| {
            Error::new(
                Status::InvalidArgument,
                format!("threads is {}, must be in [0, 1024]", params.threads),
            )
        })?;
        let mut out: *mut sys::glm5_model = std::ptr::null_mut();
        check(unsafe { sys::glm5_model_load(c_path.as_ptr(), &p, &mut out) })?;
        let ptr = NonNull::new(out).ok_or_else(|| {
            Error::new(
                Status::Internal,
                "glm5_model_load returned GLM5_OK but no model",
            )
        })?;
        Ok(Model {
            ptr,
            path: path.to_path_buf(),
        })
    }

    /// The folder the model was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The raw handle, for calling [`sys`] functions directly. Valid while `self` lives.
    pub fn as_ptr(&self) -> *mut sys::glm5_model {
        self.ptr.as_ptr()
    }

    /// `glm5_model_get_info`. It cannot fail on a live model; see [`Model::info`].
    pub fn try_info(&self) -> Result<ModelInfo, Error> {
        let mut c = new_model_info();
        check(unsafe { sys::glm5_model_get_info(self.ptr.as_ptr(), &mut c) })?;
        Ok(ModelInfo::from_sys(&c))
    }

    /// The model's facts.
    pub fn info(&self) -> ModelInfo {
        match self.try_info() {
            Ok(info) => info,
            Err(e) => panic!("glm5_model_get_info failed on a live model: {e}"),
        }
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        unsafe { sys::glm5_model_free(self.ptr.as_ptr()) }
    }
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model")
            .field("path", &self.path)
            .field("ptr", &self.ptr)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips() {
        for raw in 0..13u32 {
            assert_eq!(Status::from_raw(raw).raw(), raw);
        }
        assert_eq!(Status::from_raw(42), Status::Unknown(42));
        assert_eq!(Status::from_raw(10), Status::RecordFull);
        assert_eq!(Status::from_raw(11), Status::VersionMismatch);
        assert_eq!(Status::from_raw(12), Status::Incompatible);
        assert_eq!(Status::from_raw(13), Status::Unknown(13));
    }

    #[test]
    fn dtype_bits() {
        for (i, d) in DType::ALL.iter().enumerate() {
            assert_eq!(*d as usize, i);
            assert_eq!(DType::from_raw(i as u32), Some(*d));
            assert_eq!(d.bit(), 1 << i);
        }
        assert_eq!(DType::from_raw(15), None);
    }

    #[test]
    fn local_init_is_the_header_init() {
        // As glm5_model_params_init / glm5_model_info_init / glm5_session_params_init do.
        assert_eq!(
            new_model_params(),
            sys::glm5_model_params {
                struct_size: 8,
                n_threads: 0
            }
        );
        let i = new_model_info();
        assert_eq!(i.struct_size, 136);
        assert_eq!(
            i,
            sys::glm5_model_info {
                struct_size: 136,
                ..Default::default()
            }
        );
        assert_eq!(
            session::new_session_params(),
            sys::glm5_session_params {
                struct_size: 24,
                max_tokens: 0,
                record: 0,
                no_mtp: 0,
                record_max_bytes: 0,
            }
        );
        // glm5_record_info_init and glm5_replay_init: zeros and struct_size.
        let r = replay::new_record_info();
        assert_eq!(
            r,
            sys::glm5_record_info {
                struct_size: 56,
                ..Default::default()
            }
        );
        let rp = replay::new_replay();
        assert_eq!(
            (rp.struct_size as usize, rp.reserved0),
            (std::mem::size_of::<sys::glm5_replay>(), 0)
        );
        assert!(rp.topk.is_null() && rp.expert_ids.is_null() && rp.expert_weights.is_null());
        // glm5_sampling_params_init: temperature 1, top_p 1, 128 tokens, the rest zero.
        let p = sampling::new_sampling_params();
        assert_eq!(
            p.struct_size as usize,
            std::mem::size_of::<sys::glm5_sampling_params>()
        );
        assert_eq!(
            (p.temperature, p.top_k, p.top_p, p.min_p),
            (1.0, 0, 1.0, 0.0)
        );
        assert_eq!((p.max_new_tokens, p.seed, p.n_stop_token_ids), (128, 0, 0));
        assert!(p.stop_token_ids.is_null());
        assert_eq!((p.ignore_eos, p.n_top_logprobs), (0, 0));
        // and SamplingParams::default() is the same values
        let d = SamplingParams::default();
        assert_eq!(
            (d.temperature, d.top_k, d.top_p, d.min_p),
            (1.0, 0, 1.0, 0.0)
        );
        assert_eq!((d.max_new_tokens, d.seed, d.top_logprobs), (128, 0, 0));
        assert!(d.stop_token_ids.is_empty() && !d.ignore_eos);
        // glm5_sample_output_init: zeros, stop_token_id -1.
        let o = sampling::new_sample_output();
        assert_eq!(
            o.struct_size as usize,
            std::mem::size_of::<sys::glm5_sample_output>()
        );
        assert_eq!((o.finish_reason, o.capacity, o.n_tokens), (0, 0, 0));
        assert_eq!((o.stop_token_id, o.status), (-1, 0));
        assert!(o.tokens.is_null() && o.logprobs.is_null() && o.top_ids.is_null());
        assert!(o.weight_version.iter().all(|&c| c == 0));
    }

    #[test]
    fn finish_reason_values_are_pinned() {
        assert_eq!(FinishReason::from_raw(0), None);
        assert_eq!(FinishReason::from_raw(1), Some(FinishReason::Length));
        assert_eq!(FinishReason::from_raw(2), Some(FinishReason::Stop));
        assert_eq!(FinishReason::from_raw(3), Some(FinishReason::Cancelled));
        assert_eq!(FinishReason::from_raw(7), Some(FinishReason::Unknown(7)));
        assert_eq!(FinishReason::from_raw(-1), Some(FinishReason::Unknown(-1)));
        for r in 1..5 {
            assert_eq!(FinishReason::from_raw(r).unwrap().raw(), r);
        }
        assert_eq!(MAX_TOP_LOGPROBS, 64);
    }

    #[test]
    fn logits_values_are_pinned() {
        assert_eq!(Logits::None.raw(), 0);
        assert_eq!(Logits::Last.raw(), 1);
        assert_eq!(Logits::All.raw(), 2);
        assert_eq!(Logits::default(), Logits::None);
    }

    #[test]
    fn error_display() {
        let e = Error::new(Status::Io, "x: no such file");
        assert_eq!(e.to_string(), "I/O error: x: no such file");
        assert_eq!(Error::new(Status::Busy, "").to_string(), "busy");
        let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(e);
        assert!(boxed.to_string().contains("no such file"));
    }
}
