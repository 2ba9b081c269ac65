//! Sampling (`glm5_session_sample`, `glm5_sample_batch`) and the model's end-of-sequence ids.
//!
//! What is computed, in which order and in which precision is specified in include/glm5.h
//! ("Sampling"); in short: temperature, softmax, rank order, top-k, top-p, min-p, renormalise,
//! then a draw from Philox4x32-10 keyed by the seed at counter = the token's position. The draw
//! is a pure function of (seed, position, processed distribution), so results do not depend on
//! the batch, the thread count or how the sequence was split into calls.

use std::ptr;

use crate::{check, sys, Error, Model, Session, Status};

/// Most alternatives [`SamplingParams::top_logprobs`] may ask for (`GLM5_MAX_TOP_LOGPROBS`).
pub const MAX_TOP_LOGPROBS: usize = sys::GLM5_MAX_TOP_LOGPROBS as usize;

/// Options for [`Session::sample`] and [`Model::sample_batch`] (`glm5_sampling_params`). Build
/// it with `..Default::default()`: fields are only appended. The library validates the values;
/// a bad one fails the call with InvalidArgument naming the field, and nothing changes.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingParams {
    /// 1.0; 0 = greedy (the most likely token, ties to the lower id). Finite, >= 0.
    pub temperature: f32,
    /// 0 = off; else keep the `top_k` most likely tokens. >= 0 (an `i32` as in the C struct, so
    /// that a negative value reaches the library and is refused with its message).
    pub top_k: i32,
    /// 1.0 = off; else the smallest set of most likely tokens whose probability reaches `top_p`.
    /// In (0, 1].
    pub top_p: f32,
    /// 0 = off; else keep tokens with `p >= min_p * max p`. In [0, 1).
    pub min_p: f32,
    /// 0; the draw at each position is a function of (seed, position) only.
    pub seed: u64,
    /// 128 (SGLang's default); they must fit in the session (else ContextFull, nothing
    /// generated).
    pub max_new_tokens: usize,
    /// Ids that stop generation (kept in the output and in the session); each in
    /// `[0, vocab_size)`, at most 4096. The model's end-of-sequence ids
    /// ([`Model::eos_token_ids`]) stop too unless `ignore_eos`.
    pub stop_token_ids: Vec<i32>,
    /// false; true: the model's end-of-sequence ids do not stop.
    pub ignore_eos: bool,
    /// 0; alternatives reported per token (0 ..= [`MAX_TOP_LOGPROBS`]), see
    /// [`SampleResult::top`].
    pub top_logprobs: usize,
}

impl Default for SamplingParams {
    /// As `glm5_sampling_params_init`: temperature 1, no filters, seed 0, 128 tokens.
    fn default() -> SamplingParams {
        SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed: 0,
            max_new_tokens: 128,
            stop_token_ids: Vec::new(),
            ignore_eos: false,
            top_logprobs: 0,
        }
    }
}

/// `glm5_sampling_params_init` on this crate's layout: defaults, struct_size = our sizeof.
pub(crate) fn new_sampling_params() -> sys::glm5_sampling_params {
    sys::glm5_sampling_params {
        struct_size: std::mem::size_of::<sys::glm5_sampling_params>() as u32,
        temperature: 1.0,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        max_new_tokens: 128,
        seed: 0,
        stop_token_ids: ptr::null(),
        n_stop_token_ids: 0,
        ignore_eos: 0,
        n_top_logprobs: 0,
        speculative: 0,
    }
}

/// `glm5_sample_output_init` on this crate's layout: zeros, stop_token_id -1.
pub(crate) fn new_sample_output() -> sys::glm5_sample_output {
    sys::glm5_sample_output {
        struct_size: std::mem::size_of::<sys::glm5_sample_output>() as u32,
        finish_reason: 0,
        capacity: 0,
        tokens: ptr::null_mut(),
        logprobs: ptr::null_mut(),
        scaled_logprobs: ptr::null_mut(),
        processed_logprobs: ptr::null_mut(),
        top_ids: ptr::null_mut(),
        top_logprobs: ptr::null_mut(),
        n_tokens: 0,
        stop_token_id: -1,
        status: 0,
        weight_version: [0; sys::GLM5_WEIGHT_VERSION_SIZE],
    }
}

impl SamplingParams {
    /// The C struct; it borrows `self.stop_token_ids`, so it must not outlive `self`.
    ///
    /// `max_tokens` is the session's maximum (`index` names the session in a batch): more new
    /// tokens than that can never fit, and are refused here before the output arrays are
    /// allocated (as [`Session::generate`] does). Everything else is left to the library, which
    /// names the field it refuses.
    fn to_sys(
        &self,
        max_tokens: usize,
        index: Option<usize>,
    ) -> Result<sys::glm5_sampling_params, Error> {
        let at = index.map_or(String::new(), |i| format!("session {i}: "));
        if self.max_new_tokens > max_tokens {
            return Err(Error::new(
                Status::ContextFull,
                format!(
                    "{at}max_new_tokens is {}, exceeds the session's maximum of {max_tokens} tokens",
                    self.max_new_tokens
                ),
            ));
        }
        let n_top = u32::try_from(self.top_logprobs).map_err(|_| {
            Error::new(
                Status::InvalidArgument,
                format!(
                    "{at}top_logprobs is {}, must be in [0, {MAX_TOP_LOGPROBS}]",
                    self.top_logprobs
                ),
            )
        })?;
        let mut p = new_sampling_params();
        p.temperature = self.temperature;
        p.top_k = self.top_k;
        p.top_p = self.top_p;
        p.min_p = self.min_p;
        p.max_new_tokens = self.max_new_tokens as u32; // <= max_tokens <= u32::MAX
        p.seed = self.seed;
        if !self.stop_token_ids.is_empty() {
            p.stop_token_ids = self.stop_token_ids.as_ptr();
            p.n_stop_token_ids = self.stop_token_ids.len();
        }
        p.ignore_eos = i32::from(self.ignore_eos);
        p.n_top_logprobs = n_top;
        Ok(p)
    }
}

/// Why sampling stopped (`glm5_finish_reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FinishReason {
    /// `max_new_tokens` were generated.
    Length,
    /// The last token is a stop id ([`SampleResult::stop_token_id`]).
    Stop,
    /// [`Canceller::cancel`](crate::Canceller::cancel).
    Cancelled,
    /// A value this crate does not know (from a newer library).
    Unknown(i32),
}

impl FinishReason {
    /// The reason of a raw `glm5_finish_reason` value; `None` for GLM5_FINISH_NONE (did not
    /// run), which a successful call never reports.
    pub fn from_raw(raw: i32) -> Option<FinishReason> {
        match u32::try_from(raw) {
            Ok(sys::GLM5_FINISH_NONE) => None,
            Ok(sys::GLM5_FINISH_LENGTH) => Some(FinishReason::Length),
            Ok(sys::GLM5_FINISH_STOP) => Some(FinishReason::Stop),
            Ok(sys::GLM5_FINISH_CANCELLED) => Some(FinishReason::Cancelled),
            _ => Some(FinishReason::Unknown(raw)),
        }
    }

    /// The raw `glm5_finish_reason` value.
    pub fn raw(self) -> i32 {
        match self {
            FinishReason::Length => sys::GLM5_FINISH_LENGTH as i32,
            FinishReason::Stop => sys::GLM5_FINISH_STOP as i32,
            FinishReason::Cancelled => sys::GLM5_FINISH_CANCELLED as i32,
            FinishReason::Unknown(v) => v,
        }
    }
}

/// What one sampling call generated (all of it is also appended to the session).
///
/// Every per-token vector has `tokens.len()` entries. The alternatives are flattened row-major,
/// as the C API writes them: `top_ids` and `top_logprobs` have `tokens.len() * top_n` entries,
/// row `i` (see [`SampleResult::top`]) holding the `top_n` best tokens at the position of
/// `tokens[i]` in rank order (scaled logprob descending, equal values by lower id) with their
/// scaled logprobs. One allocation per array instead of one per token, and the layout a tensor
/// library takes as `[n, top_n]` directly.
#[derive(Clone, Debug, PartialEq)]
pub struct SampleResult {
    /// The generated ids, the stop id included.
    pub tokens: Vec<i32>,
    /// Raw logprobs: log-softmax of the unprocessed logits (temperature 1), as
    /// [`Model::score`].
    pub logprobs: Vec<f32>,
    /// log-softmax of logits / temperature (SGLang's output_token_logprobs; what slime's trainer
    /// recomputes). Equal to `logprobs` at temperature 0. Bitwise equal to
    /// [`Model::score_scaled`] of the same tokens.
    pub scaled_logprobs: Vec<f32>,
    /// log p' in the distribution actually sampled from (after top-k, top-p, min-p and
    /// renormalisation; vLLM's processed_logprobs). 0 at temperature 0.
    pub processed_logprobs: Vec<f32>,
    pub finish_reason: FinishReason,
    /// The stop id that ended generation (with [`FinishReason::Stop`]), else `None`.
    pub stop_token_id: Option<i32>,
    /// Alternatives per token ([`SamplingParams::top_logprobs`]).
    pub top_n: usize,
    /// `[tokens.len(), top_n]` ids, row-major.
    pub top_ids: Vec<i32>,
    /// `[tokens.len(), top_n]` scaled logprobs, row-major.
    pub top_logprobs: Vec<f32>,
    /// The weight version every token of this call was produced with ([`Model::weight_version`]
    /// when the call started: a call never straddles a weight update). "default" until the
    /// first update.
    pub weight_version: String,
}

impl SampleResult {
    /// The number of generated tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The alternatives at the position of `tokens[i]`: `(ids, scaled logprobs)`, `top_n` each.
    /// Panics if `i >= len()`.
    pub fn top(&self, i: usize) -> (&[i32], &[f32]) {
        assert!(i < self.len(), "token {i} of {}", self.len());
        let r = i * self.top_n..(i + 1) * self.top_n;
        (&self.top_ids[r.clone()], &self.top_logprobs[r])
    }
}

/// The host-owned arrays of one `glm5_sample_output`.
struct OutBuf {
    tokens: Vec<i32>,
    logprobs: Vec<f32>,
    scaled: Vec<f32>,
    processed: Vec<f32>,
    top_n: usize,
    top_ids: Vec<i32>,
    top_logprobs: Vec<f32>,
}

impl OutBuf {
    /// Room for `p.max_new_tokens` tokens and their alternatives. The alternatives' arrays are
    /// left out (NULL, allowed by the header) when more are asked for than the library allows, so
    /// that the library refuses the value with its own message and nothing large is allocated.
    fn new(p: &sys::glm5_sampling_params) -> OutBuf {
        let cap = p.max_new_tokens as usize;
        let top_n = p.n_top_logprobs as usize;
        let top_cap = if top_n <= MAX_TOP_LOGPROBS {
            cap * top_n
        } else {
            0
        };
        OutBuf {
            tokens: vec![0; cap],
            logprobs: vec![0.0; cap],
            scaled: vec![0.0; cap],
            processed: vec![0.0; cap],
            top_n,
            top_ids: vec![0; top_cap],
            top_logprobs: vec![0.0; top_cap],
        }
    }

    /// The C struct pointing into `self`'s arrays; valid while `self` is neither moved out of
    /// nor resized.
    fn c_output(&mut self) -> sys::glm5_sample_output {
        let mut o = new_sample_output();
        o.capacity = self.tokens.len();
        o.tokens = self.tokens.as_mut_ptr();
        o.logprobs = self.logprobs.as_mut_ptr();
        o.scaled_logprobs = self.scaled.as_mut_ptr();
        o.processed_logprobs = self.processed.as_mut_ptr();
        if !self.top_ids.is_empty() {
            o.top_ids = self.top_ids.as_mut_ptr();
            o.top_logprobs = self.top_logprobs.as_mut_ptr();
        }
        o
    }

    /// The result of a call that succeeded and filled `out`.
    fn finish(mut self, out: &sys::glm5_sample_output) -> Result<SampleResult, Error> {
        let n = out.n_tokens;
        let reason = FinishReason::from_raw(out.finish_reason);
        let (Some(finish_reason), true) = (reason, n <= self.tokens.len()) else {
            return Err(Error::new(
                Status::Internal,
                format!(
                    "sampling returned GLM5_OK with finish_reason {} and {n} tokens for a \
                     capacity of {}",
                    out.finish_reason,
                    self.tokens.len()
                ),
            ));
        };
        self.tokens.truncate(n);
        self.logprobs.truncate(n);
        self.scaled.truncate(n);
        self.processed.truncate(n);
        self.top_ids.truncate(n * self.top_n);
        self.top_logprobs.truncate(n * self.top_n);
        Ok(SampleResult {
            tokens: self.tokens,
            logprobs: self.logprobs,
            scaled_logprobs: self.scaled,
            processed_logprobs: self.processed,
            finish_reason,
            stop_token_id: (out.stop_token_id >= 0).then_some(out.stop_token_id),
            top_n: self.top_n,
            top_ids: self.top_ids,
            top_logprobs: self.top_logprobs,
            weight_version: crate::weights::version_from_c(&out.weight_version),
        })
    }
}

impl Session {
    /// Sample up to `params.max_new_tokens` tokens and append each (`glm5_session_sample`; the
    /// exact semantics are in include/glm5.h, "Sampling"). The session must hold at least one
    /// token. Kept logits are cleared.
    ///
    /// Everything is validated, and room for `max_new_tokens` reserved, before the first token;
    /// after that only a [`Canceller`](crate::Canceller) stops early (the tokens so far stay
    /// appended and are returned, [`FinishReason::Cancelled`]).
    ///
    /// Errors: InvalidArgument (an empty session, a parameter out of range: the message names the
    /// field), ContextFull (`max_new_tokens` do not fit: nothing is generated), RecordFull (a
    /// recording session's record would pass its bound), OutOfMemory; the session is then
    /// unchanged. A `max_new_tokens` above the session's
    /// [`max_tokens`](Session::max_tokens), which can never fit, is refused with ContextFull by
    /// this crate before the library sees the call (so before any other check), to keep the
    /// output arrays from being allocated for it.
    pub fn sample(&mut self, params: &SamplingParams) -> Result<SampleResult, Error> {
        let p = params.to_sys(self.max_tokens(), None)?;
        let mut buf = OutBuf::new(&p);
        let mut out = buf.c_output();
        check(unsafe { sys::glm5_session_sample(self.as_ptr(), &p, &mut out) })?;
        buf.finish(&out)
    }
}

impl Model {
    /// Sample on several sessions at once (`glm5_sample_batch`): one forward pass per step
    /// advances every running session by a token. Each session gets bitwise the same tokens,
    /// logprobs and caches as [`Session::sample`] on it alone, in any order and batch
    /// composition and with any thread count; a session leaves the batch when it stops.
    /// Results are in the order of `sessions`.
    ///
    /// `params` holds either one entry per session, or a single entry shared by all of them
    /// (give each trajectory its own seed by using one entry per session).
    ///
    /// The sessions must have been made by this model (or be forks of such sessions). The same
    /// session cannot appear twice: each entry is a `&mut` borrow, so the borrow checker refuses
    /// it before the library would:
    ///
    /// ```compile_fail
    /// # fn f(model: &glm5::Model, s: &mut glm5::Session) {
    /// let p = [glm5::SamplingParams::default()];
    /// model.sample_batch(&mut [&mut *s, &mut *s], &p); // error[E0499]: two mutable borrows
    /// # }
    /// ```
    ///
    /// Errors: as [`Session::sample`], plus InvalidArgument for no sessions or more than 4096, a
    /// `params` length other than 1 or `sessions.len()`, or a session of another model. All
    /// sessions and parameters are validated before any token is generated: on failure the
    /// message names the session's index and no session changes.
    pub fn sample_batch(
        &self,
        sessions: &mut [&mut Session],
        params: &[SamplingParams],
    ) -> Result<Vec<SampleResult>, Error> {
        if params.len() != 1 && params.len() != sessions.len() {
            return Err(Error::new(
                Status::InvalidArgument,
                format!(
                    "params has {} entries for {} sessions; give one per session, or one for all",
                    params.len(),
                    sessions.len()
                ),
            ));
        }
        self.check_own_sessions(sessions)?;
        let c_params: Vec<sys::glm5_sampling_params> = sessions
            .iter()
            .enumerate()
            .map(|(i, s)| {
                params[if params.len() == 1 { 0 } else { i }].to_sys(s.max_tokens(), Some(i))
            })
            .collect::<Result<_, _>>()?;
        // Fully built before any pointer into them is taken (no reallocation afterwards).
        let mut bufs: Vec<OutBuf> = c_params.iter().map(OutBuf::new).collect();
        let mut outs: Vec<sys::glm5_sample_output> =
            bufs.iter_mut().map(OutBuf::c_output).collect();
        let handles: Vec<*mut sys::glm5_session> = sessions.iter().map(|s| s.as_ptr()).collect();
        let param_ptrs: Vec<*const sys::glm5_sampling_params> =
            c_params.iter().map(|p| p as *const _).collect();
        let out_ptrs: Vec<*mut sys::glm5_sample_output> =
            outs.iter_mut().map(|o| o as *mut _).collect();
        check(unsafe {
            sys::glm5_sample_batch(
                handles.as_ptr(),
                handles.len(),
                param_ptrs.as_ptr(),
                out_ptrs.as_ptr(),
            )
        })?;
        bufs.into_iter()
            .zip(&outs)
            .map(|(b, o)| b.finish(o))
            .collect()
    }

    /// The model's end-of-sequence ids (`glm5_model_eos_token_ids`): generation_config.json's
    /// `eos_token_id` if that file has one, else config.json's. They stop sampling unless
    /// [`SamplingParams::ignore_eos`].
    pub fn eos_token_ids(&self) -> Vec<i32> {
        let fail = |raw| -> ! {
            panic!(
                "glm5_model_eos_token_ids failed on a live model: {}",
                Error::new(Status::from_raw(raw), crate::last_error())
            )
        };
        let mut n = 0usize;
        let raw =
            unsafe { sys::glm5_model_eos_token_ids(self.as_ptr(), ptr::null_mut(), 0, &mut n) };
        if raw != sys::GLM5_OK && raw != sys::GLM5_ERR_BUFFER_TOO_SMALL {
            fail(raw);
        }
        let mut out = vec![0i32; n];
        let mut got = 0usize;
        let raw = unsafe {
            sys::glm5_model_eos_token_ids(self.as_ptr(), out.as_mut_ptr(), out.len(), &mut got)
        };
        if raw != sys::GLM5_OK || got != n {
            fail(raw);
        }
        out
    }
}
