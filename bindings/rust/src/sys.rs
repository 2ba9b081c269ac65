//! Raw declarations of include/glm5.h, one to one (the layout of every struct is checked at
//! compile time). Everything here is `unsafe` to call; the crate root wraps it safely.
#![allow(non_camel_case_types)]

use std::marker::{PhantomData, PhantomPinned};
use std::mem::{align_of, offset_of, size_of};
use std::os::raw::{c_char, c_uint, c_void};

// ---- Versions --------------------------------------------------------------------------------

pub const GLM5_VERSION_MAJOR: u32 = 0;
pub const GLM5_VERSION_MINOR: u32 = 4;
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
pub const GLM5_ERR_RECORD_FULL: glm5_status = 10;
pub const GLM5_ERR_VERSION_MISMATCH: glm5_status = 11;
pub const GLM5_ERR_INCOMPATIBLE: glm5_status = 12;

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
    // --- appended in 0.2 ---
    pub updated_weight_bytes: u64,
    pub n_weight_updates: u64,
}

/// `enum glm5_weight_format` (bits of `glm5_model_info.weight_formats`).
pub type glm5_weight_format = c_uint;
pub const GLM5_FORMAT_FLOAT: glm5_weight_format = 1;
pub const GLM5_FORMAT_FP8_BLOCK: glm5_weight_format = 2;
pub const GLM5_FORMAT_INT4_GROUP: glm5_weight_format = 4;

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
    // --- appended in 0.2 ---
    pub record: u32,
    /// `reserved0` before 0.4: 1 = the session skips the MTP layer.
    pub no_mtp: u32,
    pub record_max_bytes: u64,
}

/// `enum glm5_logits`.
pub type glm5_logits = c_uint;
pub const GLM5_LOGITS_NONE: glm5_logits = 0;
pub const GLM5_LOGITS_LAST: glm5_logits = 1;
pub const GLM5_LOGITS_ALL: glm5_logits = 2;

// ---- Routing record and replay ---------------------------------------------------------------

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct glm5_record_info {
    pub struct_size: u32,
    pub recording: u32,
    pub n_tokens: u64,
    pub n_layers: u32,
    pub index_topk: u32,
    pub n_moe_layers: u32,
    pub n_experts_per_tok: u32,
    pub bytes_per_token: u64,
    pub bytes: u64,
    pub max_bytes: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct glm5_replay {
    pub struct_size: u32,
    pub reserved0: u32,
    pub topk: *const i32,
    pub expert_ids: *const i32,
    pub expert_weights: *const f32,
}

// ---- Sampling --------------------------------------------------------------------------------

pub const GLM5_MAX_TOP_LOGPROBS: u32 = 64;

/// Bytes of a weight version with its NUL: versions are 1 to 127 bytes of UTF-8.
pub const GLM5_WEIGHT_VERSION_SIZE: usize = 128;

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
    // --- appended in 0.4 ---
    /// Tokens the MTP layer drafts per step (0 = off).
    pub speculative: u32,
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
    // --- appended in 0.2 ---
    pub weight_version: [c_char; GLM5_WEIGHT_VERSION_SIZE],
}

// ---- Weight updates --------------------------------------------------------------------------

/// Opaque `struct glm5_weight_update`.
#[repr(C)]
pub struct glm5_weight_update {
    _private: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

// ---- Saving sessions -------------------------------------------------------------------------

/// `glm5_session_restore` flag: accept a file saved under another weight version.
pub const GLM5_RESTORE_ANY_WEIGHT_VERSION: u32 = 1;

// ---- Layout checks ---------------------------------------------------------------------------

const _: () = assert!(size_of::<glm5_model_params>() == 8);
const _: () = {
    assert!(size_of::<glm5_model_info>() == 136);
    assert!(align_of::<glm5_model_info>() == 8);
    assert!(offset_of!(glm5_model_info, n_parameters) == 88);
    assert!(offset_of!(glm5_model_info, weight_file_bytes) == 96);
    assert!(offset_of!(glm5_model_info, weight_formats) == 104);
    assert!(offset_of!(glm5_model_info, resident_weight_bytes) == 112);
    assert!(offset_of!(glm5_model_info, updated_weight_bytes) == 120); // the 0.1 size
    assert!(offset_of!(glm5_model_info, n_weight_updates) == 128);

    assert!(size_of::<glm5_session_params>() == 24);
    assert!(align_of::<glm5_session_params>() == 8);
    assert!(offset_of!(glm5_session_params, max_tokens) == 4);
    assert!(offset_of!(glm5_session_params, record) == 8); // the 0.1 size
    assert!(offset_of!(glm5_session_params, no_mtp) == 12);
    assert!(offset_of!(glm5_session_params, record_max_bytes) == 16);

    assert!(size_of::<glm5_record_info>() == 56);
    assert!(align_of::<glm5_record_info>() == 8);
    assert!(offset_of!(glm5_record_info, recording) == 4);
    assert!(offset_of!(glm5_record_info, n_tokens) == 8);
    assert!(offset_of!(glm5_record_info, n_layers) == 16);
    assert!(offset_of!(glm5_record_info, index_topk) == 20);
    assert!(offset_of!(glm5_record_info, n_moe_layers) == 24);
    assert!(offset_of!(glm5_record_info, n_experts_per_tok) == 28);
    assert!(offset_of!(glm5_record_info, bytes_per_token) == 32);
    assert!(offset_of!(glm5_record_info, bytes) == 40);
    assert!(offset_of!(glm5_record_info, max_bytes) == 48);
};

// The structs with pointers and size_t, as the C compiler lays them out on LP64 (every 64-bit
// target this crate builds for). A 32-bit target would get other offsets; there the checks below
// are skipped and repr(C) alone decides.
#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(size_of::<glm5_sampling_params>() == 64);
    assert!(offset_of!(glm5_sampling_params, speculative) == 56);
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

    assert!(size_of::<glm5_replay>() == 32);
    assert!(align_of::<glm5_replay>() == 8);
    assert!(offset_of!(glm5_replay, reserved0) == 4);
    assert!(offset_of!(glm5_replay, topk) == 8);
    assert!(offset_of!(glm5_replay, expert_ids) == 16);
    assert!(offset_of!(glm5_replay, expert_weights) == 24);

    assert!(size_of::<glm5_sample_output>() == 208);
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
    assert!(offset_of!(glm5_sample_output, weight_version) == 80); // the 0.1 size
};

// ---- Tokenizer (0.3) -------------------------------------------------------------------------

/// Opaque `struct glm5_tokenizer`.
#[repr(C)]
pub struct glm5_tokenizer {
    _private: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// Opaque `struct glm5_detokenizer`.
#[repr(C)]
pub struct glm5_detokenizer {
    _private: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

pub const GLM5_TOKENIZE_PARSE_SPECIAL: u32 = 1;
pub const GLM5_DETOKENIZE_SKIP_SPECIAL: u32 = 1;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct glm5_tokenizer_info {
    pub struct_size: u32,
    pub n_ids: u32,
    pub n_vocab: u32,
    pub n_added: u32,
    pub eos_id: i32,
    pub bos_id: i32,
    pub pad_id: i32,
    pub unk_id: i32,
    pub byte_level: u32,
    pub reserved0: u32,
}

const _: () = {
    assert!(size_of::<glm5_tokenizer_info>() == 40);
    assert!(offset_of!(glm5_tokenizer_info, eos_id) == 16);
    assert!(offset_of!(glm5_tokenizer_info, byte_level) == 32);
};

// The header's glm5_model_params_init, glm5_model_info_init, glm5_session_params_init,
// glm5_sampling_params_init, glm5_sample_output_init, glm5_record_info_init and glm5_replay_init
// are `static inline` (not exported by the
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
    pub fn glm5_session_max_tokens(session: *mut glm5_session, out: *mut usize) -> glm5_status;
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

    // ---- Routing record and replay (0.2) ----
    pub fn glm5_session_get_record_info(
        session: *mut glm5_session,
        info: *mut glm5_record_info,
    ) -> glm5_status;
    pub fn glm5_session_get_recorded_topk(
        session: *mut glm5_session,
        first: usize,
        n_tokens: usize,
        out: *mut i32,
        capacity: usize,
        n_out: *mut usize,
    ) -> glm5_status;
    pub fn glm5_session_get_recorded_routes(
        session: *mut glm5_session,
        first: usize,
        n_tokens: usize,
        expert_ids: *mut i32,
        expert_weights: *mut f32,
        capacity: usize,
        n_out: *mut usize,
    ) -> glm5_status;
    pub fn glm5_session_append_replay(
        session: *mut glm5_session,
        tokens: *const i32,
        n_tokens: usize,
        keep: glm5_logits,
        replay: *const glm5_replay,
        temperature: f32,
        logprobs: *mut f32,
        scaled_logprobs: *mut f32,
    ) -> glm5_status;
    pub fn glm5_model_score_replay(
        model: *const glm5_model,
        tokens: *const i32,
        n_tokens: usize,
        replay: *const glm5_replay,
        temperature: f32,
        logprobs: *mut f32,
        scaled_logprobs: *mut f32,
    ) -> glm5_status;
    pub fn glm5_session_recompute(session: *mut glm5_session) -> glm5_status;

    // ---- Weight updates (0.2) ----
    pub fn glm5_model_weight_version(
        model: *const glm5_model,
        out: *mut c_char,
        capacity: usize,
        n_out: *mut usize,
    ) -> glm5_status;
    pub fn glm5_model_update_from_folder(
        model: *mut glm5_model,
        path: *const c_char,
        version: *const c_char,
    ) -> glm5_status;
    pub fn glm5_model_update_from_delta(
        model: *mut glm5_model,
        path: *const c_char,
        version: *const c_char,
    ) -> glm5_status;
    pub fn glm5_weight_update_begin(
        model: *mut glm5_model,
        out_update: *mut *mut glm5_weight_update,
    ) -> glm5_status;
    pub fn glm5_weight_update_add(
        update: *mut glm5_weight_update,
        name: *const c_char,
        dtype: glm5_dtype,
        shape: *const i64,
        n_dims: usize,
        data: *const c_void,
        n_bytes: usize,
    ) -> glm5_status;
    pub fn glm5_weight_update_commit(
        update: *mut glm5_weight_update,
        version: *const c_char,
    ) -> glm5_status;
    pub fn glm5_weight_update_free(update: *mut glm5_weight_update);

    // ---- Saving sessions (0.2) ----
    pub fn glm5_session_save(
        session: *mut glm5_session,
        out_data: *mut *mut c_void,
        out_size: *mut usize,
    ) -> glm5_status;
    pub fn glm5_session_save_file(
        session: *mut glm5_session,
        path: *const c_char,
        out_size: *mut usize,
    ) -> glm5_status;
    pub fn glm5_session_restore(
        model: *mut glm5_model,
        data: *const c_void,
        size: usize,
        flags: u32,
        out_session: *mut *mut glm5_session,
    ) -> glm5_status;
    pub fn glm5_session_restore_file(
        model: *mut glm5_model,
        path: *const c_char,
        flags: u32,
        out_session: *mut *mut glm5_session,
    ) -> glm5_status;
    pub fn glm5_free(p: *mut c_void);

    // ---- Tokenizer (0.3; glm5_tokenizer_info_init is inline) ----
    pub fn glm5_tokenizer_load(
        path: *const c_char,
        out_tokenizer: *mut *mut glm5_tokenizer,
    ) -> glm5_status;
    pub fn glm5_model_tokenizer(
        model: *const glm5_model,
        out_tokenizer: *mut *mut glm5_tokenizer,
    ) -> glm5_status;
    pub fn glm5_tokenizer_free(tokenizer: *mut glm5_tokenizer);
    pub fn glm5_tokenizer_get_info(
        tokenizer: *const glm5_tokenizer,
        info: *mut glm5_tokenizer_info,
    ) -> glm5_status;
    pub fn glm5_tokenize(
        tokenizer: *const glm5_tokenizer,
        text: *const c_char,
        text_len: usize,
        flags: u32,
        ids: *mut i32,
        capacity: usize,
        n_ids: *mut usize,
    ) -> glm5_status;
    pub fn glm5_detokenize(
        tokenizer: *const glm5_tokenizer,
        ids: *const i32,
        n_ids: usize,
        flags: u32,
        text: *mut c_char,
        capacity: usize,
        n_bytes: *mut usize,
    ) -> glm5_status;
    pub fn glm5_token_to_piece(
        tokenizer: *const glm5_tokenizer,
        id: i32,
        piece: *mut c_char,
        capacity: usize,
        n_bytes: *mut usize,
    ) -> glm5_status;
    pub fn glm5_tokenizer_token_text(
        tokenizer: *const glm5_tokenizer,
        id: i32,
        text: *mut c_char,
        capacity: usize,
        n_bytes: *mut usize,
        is_special: *mut i32,
    ) -> glm5_status;
    pub fn glm5_tokenizer_token_id(
        tokenizer: *const glm5_tokenizer,
        text: *const c_char,
        text_len: usize,
        id: *mut i32,
    ) -> glm5_status;
    pub fn glm5_detokenizer_new(
        tokenizer: *const glm5_tokenizer,
        flags: u32,
        out_detokenizer: *mut *mut glm5_detokenizer,
    ) -> glm5_status;
    pub fn glm5_detokenizer_push(
        detokenizer: *mut glm5_detokenizer,
        ids: *const i32,
        n_ids: usize,
        text: *mut c_char,
        capacity: usize,
        n_bytes: *mut usize,
    ) -> glm5_status;
    pub fn glm5_detokenizer_finish(
        detokenizer: *mut glm5_detokenizer,
        text: *mut c_char,
        capacity: usize,
        n_bytes: *mut usize,
    ) -> glm5_status;
    pub fn glm5_detokenizer_free(detokenizer: *mut glm5_detokenizer);
}
