//! Raw declarations of include/glm5.h, one to one (the layout of every struct is checked at
//! compile time). Everything here is `unsafe` to call; the crate root wraps it safely.
#![allow(non_camel_case_types)]

use std::marker::{PhantomData, PhantomPinned};
use std::mem::{align_of, offset_of, size_of};
use std::os::raw::{c_char, c_uint};

// ---- Versions --------------------------------------------------------------------------------

pub const GLM5_VERSION_MAJOR: u32 = 0;
pub const GLM5_VERSION_MINOR: u32 = 1;
pub const GLM5_VERSION_PATCH: u32 = 0;
pub const GLM5_VERSION_NUMBER: u32 =
    GLM5_VERSION_MAJOR * 10000 + GLM5_VERSION_MINOR * 100 + GLM5_VERSION_PATCH;
pub const GLM5_ABI_VERSION: u32 = 1;

// ---- Status codes ----------------------------------------------------------------------------

/// `enum glm5_status` (an unsigned int on the C side: all values are non-negative).
pub type glm5_status = c_uint;
pub const GLM5_OK: glm5_status = 0;
pub const GLM5_ERR_INVALID_ARGUMENT: glm5_status = 1;
pub const GLM5_ERR_IO: glm5_status = 2;
pub const GLM5_ERR_BAD_FORMAT: glm5_status = 3;
pub const GLM5_ERR_UNSUPPORTED: glm5_status = 4;
pub const GLM5_ERR_OUT_OF_MEMORY: glm5_status = 5;
pub const GLM5_ERR_CONTEXT_FULL: glm5_status = 6;
pub const GLM5_ERR_BUSY: glm5_status = 7;
pub const GLM5_ERR_INTERNAL: glm5_status = 8;
pub const GLM5_ERR_BUFFER_TOO_SMALL: glm5_status = 9;

// ---- Weight data types -----------------------------------------------------------------------

/// `enum glm5_dtype`.
pub type glm5_dtype = c_uint;
pub const GLM5_DTYPE_F32: glm5_dtype = 0;
pub const GLM5_DTYPE_BF16: glm5_dtype = 1;
pub const GLM5_DTYPE_F16: glm5_dtype = 2;
pub const GLM5_DTYPE_F8_E4M3: glm5_dtype = 3;
pub const GLM5_DTYPE_F8_E5M2: glm5_dtype = 4;
pub const GLM5_DTYPE_I8: glm5_dtype = 5;
pub const GLM5_DTYPE_U8: glm5_dtype = 6;
pub const GLM5_DTYPE_I16: glm5_dtype = 7;
pub const GLM5_DTYPE_I32: glm5_dtype = 8;
pub const GLM5_DTYPE_I64: glm5_dtype = 9;
pub const GLM5_DTYPE_F64: glm5_dtype = 10;
pub const GLM5_DTYPE_BOOL: glm5_dtype = 11;
pub const GLM5_DTYPE_U16: glm5_dtype = 12;
pub const GLM5_DTYPE_U32: glm5_dtype = 13;
pub const GLM5_DTYPE_U64: glm5_dtype = 14;

// ---- Models ----------------------------------------------------------------------------------

/// Opaque `struct glm5_model`.
#[repr(C)]
pub struct glm5_model {
    _private: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct glm5_model_params {
    pub struct_size: u32,
    pub n_threads: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct glm5_model_info {
    pub struct_size: u32,
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
    pub has_mtp: u32,
    pub n_mtp_layers: u32,
    pub weight_dtypes: u32,
    pub n_parameters: u64,
    pub weight_file_bytes: u64,
    pub weight_formats: u32,
    pub reserved0: u32,
    pub resident_weight_bytes: u64,
}

// ---- Sessions --------------------------------------------------------------------------------

/// Opaque `struct glm5_session`.
#[repr(C)]
pub struct glm5_session {
    _private: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct glm5_session_params {
    pub struct_size: u32,
    pub max_tokens: u32,
}

/// `enum glm5_logits`.
pub type glm5_logits = c_uint;
pub const GLM5_LOGITS_NONE: glm5_logits = 0;
pub const GLM5_LOGITS_LAST: glm5_logits = 1;
pub const GLM5_LOGITS_ALL: glm5_logits = 2;

// ---- Sampling --------------------------------------------------------------------------------

pub const GLM5_MAX_TOP_LOGPROBS: u32 = 64;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct glm5_sampling_params {
    pub struct_size: u32,
    pub temperature: f32,
    pub top_k: i32,
    pub top_p: f32,
    pub min_p: f32,
    pub max_new_tokens: u32,
    pub seed: u64,
    pub stop_token_ids: *const i32,
    pub n_stop_token_ids: usize,
    pub ignore_eos: i32,
    pub n_top_logprobs: u32,
}

/// `enum glm5_finish_reason` (stored as an `int32_t` in `glm5_sample_output`).
pub type glm5_finish_reason = c_uint;
pub const GLM5_FINISH_NONE: glm5_finish_reason = 0;
pub const GLM5_FINISH_LENGTH: glm5_finish_reason = 1;
pub const GLM5_FINISH_STOP: glm5_finish_reason = 2;
pub const GLM5_FINISH_CANCELLED: glm5_finish_reason = 3;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct glm5_sample_output {
    pub struct_size: u32,
    pub finish_reason: i32,
    pub capacity: usize,
    pub tokens: *mut i32,
    pub logprobs: *mut f32,
    pub scaled_logprobs: *mut f32,
    pub processed_logprobs: *mut f32,
    pub top_ids: *mut i32,
    pub top_logprobs: *mut f32,
    pub n_tokens: usize,
    pub stop_token_id: i32,
    pub status: i32,
}

// ---- Layout checks ---------------------------------------------------------------------------

const _: () = assert!(size_of::<glm5_model_params>() == 8);
const _: () = assert!(size_of::<glm5_model_info>() == 120);
const _: () = assert!(align_of::<glm5_model_info>() == 8);
const _: () = assert!(size_of::<glm5_session_params>() == 8);

// The structs with pointers and size_t, as the C compiler lays them out on LP64 (every 64-bit
// target this crate builds for). A 32-bit target would get other offsets; there the checks below
// are skipped and repr(C) alone decides.
#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(size_of::<glm5_sampling_params>() == 56);
    assert!(align_of::<glm5_sampling_params>() == 8);
    assert!(offset_of!(glm5_sampling_params, temperature) == 4);
    assert!(offset_of!(glm5_sampling_params, top_k) == 8);
    assert!(offset_of!(glm5_sampling_params, top_p) == 12);
    assert!(offset_of!(glm5_sampling_params, min_p) == 16);
    assert!(offset_of!(glm5_sampling_params, max_new_tokens) == 20);
    assert!(offset_of!(glm5_sampling_params, seed) == 24);
    assert!(offset_of!(glm5_sampling_params, stop_token_ids) == 32);
    assert!(offset_of!(glm5_sampling_params, n_stop_token_ids) == 40);
    assert!(offset_of!(glm5_sampling_params, ignore_eos) == 48);
    assert!(offset_of!(glm5_sampling_params, n_top_logprobs) == 52);

    assert!(size_of::<glm5_sample_output>() == 80);
    assert!(align_of::<glm5_sample_output>() == 8);
    assert!(offset_of!(glm5_sample_output, finish_reason) == 4);
    assert!(offset_of!(glm5_sample_output, capacity) == 8);
    assert!(offset_of!(glm5_sample_output, tokens) == 16);
    assert!(offset_of!(glm5_sample_output, logprobs) == 24);
    assert!(offset_of!(glm5_sample_output, scaled_logprobs) == 32);
    assert!(offset_of!(glm5_sample_output, processed_logprobs) == 40);
    assert!(offset_of!(glm5_sample_output, top_ids) == 48);
    assert!(offset_of!(glm5_sample_output, top_logprobs) == 56);
    assert!(offset_of!(glm5_sample_output, n_tokens) == 64);
    assert!(offset_of!(glm5_sample_output, stop_token_id) == 72);
    assert!(offset_of!(glm5_sample_output, status) == 76);
};

// The header's glm5_model_params_init, glm5_model_info_init, glm5_session_params_init,
// glm5_sampling_params_init and glm5_sample_output_init are `static inline` (not exported by the
// library); the crate fills the structs itself.

extern "C" {
    pub fn glm5_abi_version() -> u32;
    pub fn glm5_version_number() -> u32;
    pub fn glm5_version_string() -> *const c_char;

    pub fn glm5_status_string(status: glm5_status) -> *const c_char;
    pub fn glm5_last_error() -> *const c_char;

    pub fn glm5_dtype_name(dtype: glm5_dtype) -> *const c_char;

    pub fn glm5_model_load(
        path: *const c_char,
        params: *const glm5_model_params,
        out_model: *mut *mut glm5_model,
    ) -> glm5_status;
    pub fn glm5_model_free(model: *mut glm5_model);
    pub fn glm5_model_get_info(model: *const glm5_model, info: *mut glm5_model_info)
        -> glm5_status;
    pub fn glm5_model_score(
        model: *const glm5_model,
        tokens: *const i32,
        n_tokens: usize,
        logprobs: *mut f32,
    ) -> glm5_status;

    pub fn glm5_session_new(
        model: *mut glm5_model,
        params: *const glm5_session_params,
        out_session: *mut *mut glm5_session,
    ) -> glm5_status;
    pub fn glm5_session_free(session: *mut glm5_session);
    pub fn glm5_session_append(
        session: *mut glm5_session,
        tokens: *const i32,
        n_tokens: usize,
        keep: glm5_logits,
        logprobs: *mut f32,
    ) -> glm5_status;
    pub fn glm5_session_get_logits(
        session: *mut glm5_session,
        out: *mut f32,
        capacity: usize,
        n_rows: *mut usize,
        n_floats: *mut usize,
    ) -> glm5_status;
    pub fn glm5_session_generate(
        session: *mut glm5_session,
        n_new: usize,
        tokens_out: *mut i32,
        logprobs_out: *mut f32,
    ) -> glm5_status;
    pub fn glm5_session_n_tokens(session: *mut glm5_session, out: *mut usize) -> glm5_status;
    pub fn glm5_session_get_tokens(
        session: *mut glm5_session,
        out: *mut i32,
        capacity: usize,
        n_out: *mut usize,
    ) -> glm5_status;
    pub fn glm5_session_truncate(session: *mut glm5_session, n_tokens: usize) -> glm5_status;
    pub fn glm5_session_append_scaled(
        session: *mut glm5_session,
        tokens: *const i32,
        n_tokens: usize,
        keep: glm5_logits,
        temperature: f32,
        logprobs: *mut f32,
        scaled_logprobs: *mut f32,
    ) -> glm5_status;
    pub fn glm5_session_fork(
        session: *mut glm5_session,
        out_session: *mut *mut glm5_session,
    ) -> glm5_status;
    pub fn glm5_session_cancel(session: *mut glm5_session) -> glm5_status;

    pub fn glm5_session_sample(
        session: *mut glm5_session,
        params: *const glm5_sampling_params,
        out: *mut glm5_sample_output,
    ) -> glm5_status;
    pub fn glm5_sample_batch(
        sessions: *const *mut glm5_session,
        n: usize,
        params: *const *const glm5_sampling_params,
        outs: *const *mut glm5_sample_output,
    ) -> glm5_status;
    pub fn glm5_append_batch(
        sessions: *const *mut glm5_session,
        n: usize,
        tokens: *const *const i32,
        n_tokens: *const usize,
        keep: glm5_logits,
        logprobs: *const *mut f32,
    ) -> glm5_status;
    pub fn glm5_model_score_scaled(
        model: *const glm5_model,
        tokens: *const i32,
        n_tokens: usize,
        temperature: f32,
        logprobs: *mut f32,
        scaled_logprobs: *mut f32,
    ) -> glm5_status;
    pub fn glm5_model_eos_token_ids(
        model: *const glm5_model,
        out: *mut i32,
        capacity: usize,
        n_out: *mut usize,
    ) -> glm5_status;
}
