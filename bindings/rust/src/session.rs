//! Sessions (`glm5_session`), forks, cancellation, batched prefill and scoring
//! (`glm5_model_score`, `glm5_model_score_scaled`).

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::ptr::{self, NonNull};
use std::sync::Arc;

use crate::{check, sys, Error, Model, ModelInfo, RecordShape, Status};

/// Options for [`Model::session`]. Build it with `..Default::default()`: fields are only appended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionParams {
    /// The most tokens the session may hold; 0 (the default) = the model's
    /// `max_position_embeddings`, which is also the upper bound. Cache memory grows with use, not
    /// with this number.
    pub max_tokens: usize,
    /// false; true: record every token's DSA selections and MoE routes (the routing record,
    /// [`Session::recorded`]; include/glm5.h "Routing record and replay"). Appends, sampling,
    /// forks, truncation, saving and restoring carry the record along with the tokens.
    pub record: bool,
    /// The bound on the record's memory; 0 (the default) = 1 GiB. An append or sampling call
    /// that would pass it fails with [`Status::RecordFull`] before anything changes. Each token
    /// takes [`RecordShape::bytes_per_token`] bytes. Ignored unless `record`.
    pub record_max_bytes: u64,
}

/// Which logits an append returns (`glm5_logits`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Logits {
    /// None: the vocabulary projection is skipped (the cheapest).
    #[default]
    None,
    /// The last appended position: `vocab_size` floats.
    Last,
    /// Every appended position: `n_tokens * vocab_size` floats, row-major.
    All,
}

impl Logits {
    /// The raw `glm5_logits` value.
    pub fn raw(self) -> sys::glm5_logits {
        match self {
            Logits::None => sys::GLM5_LOGITS_NONE,
            Logits::Last => sys::GLM5_LOGITS_LAST,
            Logits::All => sys::GLM5_LOGITS_ALL,
        }
    }
}

/// `glm5_session_params_init` on this crate's layout: defaults, struct_size = our sizeof.
pub(crate) fn new_session_params() -> sys::glm5_session_params {
    sys::glm5_session_params {
        struct_size: std::mem::size_of::<sys::glm5_session_params>() as u32,
        max_tokens: 0,
        record: 0,
        no_mtp: 0,
        record_max_bytes: 0,
    }
}

impl Model {
    /// A new empty [`Session`] on this model (`glm5_session_new`).
    ///
    /// The session does not borrow the model: the library keeps the weights alive for as long as
    /// any session uses them, so the session may outlive this `Model` (dropping the model first is
    /// allowed by the C API).
    pub fn session(&self, params: &SessionParams) -> Result<Session, Error> {
        let info = self.try_info()?;
        let mut p = new_session_params();
        p.max_tokens = u32::try_from(params.max_tokens).map_err(|_| {
            Error::new(
                Status::InvalidArgument,
                format!(
                    "max_tokens is {}, must be in [0, max_position_embeddings = {}] (0 = the maximum)",
                    params.max_tokens, info.max_position_embeddings
                ),
            )
        })?;
        p.record = u32::from(params.record);
        p.record_max_bytes = params.record_max_bytes;
        let mut out: *mut sys::glm5_session = ptr::null_mut();
        check(unsafe { sys::glm5_session_new(self.as_ptr(), &p, &mut out) })?;
        let max_tokens = if params.max_tokens == 0 {
            info.max_position_embeddings as usize
        } else {
            params.max_tokens
        };
        self.wrap_session(out, "glm5_session_new", &info, max_tokens)
    }

    /// A [`Session`] owning `raw`, a session the library just made on this model.
    pub(crate) fn wrap_session(
        &self,
        raw: *mut sys::glm5_session,
        from: &str,
        info: &ModelInfo,
        max_tokens: usize,
    ) -> Result<Session, Error> {
        let handle = Handle::new(raw, from)?;
        Ok(Session {
            handle: Arc::new(handle),
            model: self.as_ptr() as usize,
            vocab_size: info.vocab_size as usize,
            max_tokens,
            shape: info.record_shape(),
            not_sync: PhantomData,
        })
    }

    /// Log-probabilities of a whole sequence from an empty context (`glm5_model_score`):
    /// `log p(tokens[i] | tokens[..i])` at temperature 1 (the raw distribution), NaN at index 0.
    /// Bitwise equal to the logprobs of appending the same tokens to a new session in any split.
    /// Thread-safe: any number of threads may score with one model at once.
    pub fn score(&self, tokens: &[i32]) -> Result<Vec<f32>, Error> {
        let mut out = vec![0f32; tokens.len()];
        check(unsafe {
            sys::glm5_model_score(
                self.as_ptr(),
                tokens.as_ptr(),
                tokens.len(),
                out.as_mut_ptr(),
            )
        })?;
        Ok(out)
    }

    /// Raw and temperature-scaled log-probabilities of a whole sequence from an empty context
    /// (`glm5_model_score_scaled`): `(raw, scaled)`, where `raw` is [`Model::score`] and
    /// `scaled[i] = log-softmax(logits[i - 1] / temperature)[tokens[i]]`; both NaN at index 0.
    /// Computed exactly as the sampler reports them, so a sampled trajectory scores back to the
    /// same bits. `temperature` 0 gives the raw values twice.
    ///
    /// Errors: as [`Model::score`], plus InvalidArgument for a temperature that is negative,
    /// infinite or NaN.
    pub fn score_scaled(
        &self,
        tokens: &[i32],
        temperature: f32,
    ) -> Result<(Vec<f32>, Vec<f32>), Error> {
        let mut raw = vec![0f32; tokens.len()];
        let mut scaled = vec![0f32; tokens.len()];
        check(unsafe {
            sys::glm5_model_score_scaled(
                self.as_ptr(),
                tokens.as_ptr(),
                tokens.len(),
                temperature,
                raw.as_mut_ptr(),
                scaled.as_mut_ptr(),
            )
        })?;
        Ok((raw, scaled))
    }

    /// Append a chunk of tokens to each of several sessions in one forward pass
    /// (`glm5_append_batch`, batched prefill). `chunks[i]` goes to `sessions[i]`; chunks may
    /// differ in length. Every session ends exactly as [`Session::append`] of its chunk alone
    /// would leave it, bitwise, and the logits asked for are returned per session as
    /// [`Session::append`] returns them.
    ///
    /// The sessions must have been made by this model (or be forks of such sessions). Two
    /// entries can never be the same session: each is a `&mut` borrow.
    ///
    /// Errors: InvalidArgument (`chunks.len() != sessions.len()`, no sessions or more than 4096, a
    /// session of another model, an empty chunk, an id out of range), ContextFull; the message
    /// names the session's index, and no session changes.
    pub fn append_batch(
        &self,
        sessions: &mut [&mut Session],
        chunks: &[&[i32]],
        logits: Logits,
    ) -> Result<Vec<Vec<f32>>, Error> {
        self.append_batch_raw(sessions, chunks, logits, false)
            .map(|v| v.into_iter().map(|(l, _)| l).collect())
    }

    /// [`Model::append_batch`], also returning each chunk's log-probabilities (raw, temperature
    /// 1, as [`Session::append_with_logprobs`]): `(logits, logprobs)` per session.
    #[allow(clippy::type_complexity)] // (logits, logprobs) per session, as append_with_logprobs
    pub fn append_batch_with_logprobs(
        &self,
        sessions: &mut [&mut Session],
        chunks: &[&[i32]],
        logits: Logits,
    ) -> Result<Vec<(Vec<f32>, Vec<f32>)>, Error> {
        self.append_batch_raw(sessions, chunks, logits, true)
    }

    #[allow(clippy::type_complexity)]
    fn append_batch_raw(
        &self,
        sessions: &mut [&mut Session],
        chunks: &[&[i32]],
        logits: Logits,
        with_logprobs: bool,
    ) -> Result<Vec<(Vec<f32>, Vec<f32>)>, Error> {
        if chunks.len() != sessions.len() {
            return Err(Error::new(
                Status::InvalidArgument,
                format!(
                    "chunks has {} entries for {} sessions; give one chunk per session",
                    chunks.len(),
                    sessions.len()
                ),
            ));
        }
        self.check_own_sessions(sessions)?;
        let handles: Vec<*mut sys::glm5_session> = sessions.iter().map(|s| s.as_ptr()).collect();
        let token_ptrs: Vec<*const i32> = chunks.iter().map(|c| c.as_ptr()).collect();
        let lengths: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
        let mut logprobs: Vec<Vec<f32>> = if with_logprobs {
            chunks.iter().map(|c| vec![0f32; c.len()]).collect()
        } else {
            Vec::new()
        };
        let lp_ptrs: Vec<*mut f32> = logprobs.iter_mut().map(|v| v.as_mut_ptr()).collect();
        check(unsafe {
            sys::glm5_append_batch(
                handles.as_ptr(),
                handles.len(),
                token_ptrs.as_ptr(),
                lengths.as_ptr(),
                logits.raw(),
                if with_logprobs {
                    lp_ptrs.as_ptr()
                } else {
                    ptr::null()
                },
            )
        })?;
        let mut logprobs = logprobs.into_iter();
        sessions
            .iter()
            .zip(chunks)
            .map(|(s, c)| {
                let rows = match logits {
                    Logits::None => 0,
                    Logits::Last => 1,
                    Logits::All => c.len(),
                };
                let l = if rows == 0 {
                    Vec::new()
                } else {
                    s.copy_logits(rows)?
                };
                Ok((l, logprobs.next().unwrap_or_default()))
            })
            .collect()
    }

    /// InvalidArgument unless every session was made by this model (the batched calls take the
    /// sessions' model; this keeps `model_a.sample_batch(sessions_of_b)` from quietly running on
    /// `b`).
    pub(crate) fn check_own_sessions(&self, sessions: &[&mut Session]) -> Result<(), Error> {
        match sessions
            .iter()
            .position(|s| s.model != self.as_ptr() as usize)
        {
            None => Ok(()),
            Some(i) => Err(Error::new(
                Status::InvalidArgument,
                format!("session {i} was made by another model than the one called"),
            )),
        }
    }
}

/// What [`Session::append_scaled`] and [`Session::append_replay`] return; every vector is row-major as in
/// [`Session::append_with_logprobs`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Appended {
    /// The logits asked for: empty, `vocab_size` or `tokens.len() * vocab_size` floats.
    pub logits: Vec<f32>,
    /// Raw log-probabilities (temperature 1) of the appended tokens.
    pub logprobs: Vec<f32>,
    /// Temperature-scaled log-probabilities of the appended tokens.
    pub scaled_logprobs: Vec<f32>,
}

/// Owns one `glm5_session` handle and frees it when the last reference goes: the [`Session`]
/// and every [`Canceller`] share it through an `Arc`, so a canceller never calls the library on a
/// freed (or reused) address.
struct Handle(NonNull<sys::glm5_session>);

// SAFETY: the handle is only a pointer. Shared access to it from several threads happens through
// Canceller, which calls only glm5_session_cancel, the one session function the header allows
// from another thread while a call runs; everything else goes through Session, which is not Sync
// and takes &mut self to mutate. glm5_session_free runs once, when the last Arc goes, so no call
// can be running on the session then.
unsafe impl Send for Handle {}
unsafe impl Sync for Handle {}

impl Handle {
    fn new(raw: *mut sys::glm5_session, from: &str) -> Result<Handle, Error> {
        NonNull::new(raw).map(Handle).ok_or_else(|| {
            Error::new(
                Status::Internal,
                format!("{from} returned GLM5_OK but no session"),
            )
        })
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        unsafe { sys::glm5_session_free(self.0.as_ptr()) }
    }
}

/// Stops a sampling call running on a [`Session`] from another thread ([`Session::canceller`]).
///
/// `Send + Sync + Clone`. It keeps the session's handle alive: if the [`Session`] is dropped
/// while a canceller exists, the library's session (and its cache memory) is freed when the last
/// canceller goes, and cancelling it meanwhile does nothing visible.
#[derive(Clone)]
pub struct Canceller {
    handle: Arc<Handle>,
}

impl Canceller {
    /// Ask the sampling call running on the session ([`Session::sample`], or a
    /// [`Model::sample_batch`] that includes it) to stop at the next token boundary
    /// (`glm5_session_cancel`): the tokens generated so far stay appended and are reported with
    /// [`FinishReason::Cancelled`](crate::FinishReason::Cancelled).
    ///
    /// A cancel that arrives while no sampling call runs is kept and stops the next one before
    /// its first token (0 tokens, `Cancelled`); every sampling call that observes a cancel
    /// consumes it. Safe to call from any thread at any time.
    pub fn cancel(&self) -> Result<(), Error> {
        check(unsafe { sys::glm5_session_cancel(self.handle.0.as_ptr()) })
    }
}

impl fmt::Debug for Canceller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Canceller")
            .field("session", &self.handle.0)
            .finish()
    }
}

/// One token sequence and its caches (`glm5_session`), made by [`Model::session`]; freed on drop.
///
/// Append tokens (prefill for many, decode for one), read logits and log-probabilities,
/// generate greedily, truncate back. Splitting a sequence into appends of any sizes gives
/// bitwise the same results. Every failure leaves the session exactly as it was.
///
/// `Send` but not `Sync`: a session can move to another thread, and the `&mut self` methods
/// make concurrent use impossible (the C library would answer it with GLM5_ERR_BUSY). The one
/// thing another thread may do while a call runs is cancel sampling, through a [`Canceller`].
/// It holds no borrow of its [`Model`]: the library keeps the weights alive.
pub struct Session {
    handle: Arc<Handle>,
    /// The address of the `glm5_model` that made it (an identity for the batched calls' check;
    /// never dereferenced).
    model: usize,
    vocab_size: usize,
    max_tokens: usize,
    /// The model's record layout (what a replay's slices are checked against).
    pub(crate) shape: RecordShape,
    /// Not Sync: a `&Session` must not reach two threads (the library allows one call at a time
    /// per session). Send comes from `Arc<Handle>`: the library does not tie a session to the
    /// thread that created it.
    not_sync: PhantomData<Cell<()>>,
}

impl Session {
    /// Entries of the vocabulary: the width of one logits row.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The most tokens this session may hold (for a session from [`Model::restore`], the saved
    /// bound, read with `glm5_session_max_tokens`).
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// The raw handle, for calling [`sys`] functions directly. Valid while `self` lives.
    pub fn as_ptr(&self) -> *mut sys::glm5_session {
        self.handle.0.as_ptr()
    }

    /// Append tokens and return the logits asked for, row-major: empty for [`Logits::None`],
    /// `vocab_size` floats for [`Logits::Last`] (the next-token logits), `tokens.len() *
    /// vocab_size` for [`Logits::All`] (row i predicts the token after `tokens[i]`).
    ///
    /// Errors: InvalidArgument (no tokens, an id outside `[0, vocab_size)`: the message names its
    /// index), ContextFull (the tokens do not fit), RecordFull (a recording session's record
    /// would pass [`SessionParams::record_max_bytes`]); the session is then unchanged.
    pub fn append(&mut self, tokens: &[i32], logits: Logits) -> Result<Vec<f32>, Error> {
        self.append_raw(tokens, logits, None)
    }

    /// [`Session::append`], also returning the log-probabilities of the appended tokens:
    /// `(logits, logprobs)`, where `logprobs[i] = log p(tokens[i] | everything before it in the
    /// session)`, temperature 1, raw distribution; NaN for the very first token of the session.
    pub fn append_with_logprobs(
        &mut self,
        tokens: &[i32],
        logits: Logits,
    ) -> Result<(Vec<f32>, Vec<f32>), Error> {
        let mut logprobs = vec![0f32; tokens.len()];
        let logits = self.append_raw(tokens, logits, Some(&mut logprobs))?;
        Ok((logits, logprobs))
    }

    fn append_raw(
        &mut self,
        tokens: &[i32],
        logits: Logits,
        logprobs: Option<&mut Vec<f32>>,
    ) -> Result<Vec<f32>, Error> {
        let lp = logprobs.map_or(ptr::null_mut(), |v| v.as_mut_ptr());
        check(unsafe {
            sys::glm5_session_append(
                self.handle.0.as_ptr(),
                tokens.as_ptr(),
                tokens.len(),
                logits.raw(),
                lp,
            )
        })?;
        let rows = match logits {
            Logits::None => return Ok(Vec::new()),
            Logits::Last => 1,
            Logits::All => tokens.len(),
        };
        self.copy_logits(rows)
    }

    /// The logits a successful append of `n` tokens with `logits` kept (empty for None).
    pub(crate) fn kept_logits(&self, logits: Logits, n: usize) -> Result<Vec<f32>, Error> {
        match logits {
            Logits::None => Ok(Vec::new()),
            Logits::Last => self.copy_logits(1),
            Logits::All => self.copy_logits(n),
        }
    }

    /// `glm5_session_get_logits` into a buffer of `rows` rows, checking the reported size.
    fn copy_logits(&self, rows: usize) -> Result<Vec<f32>, Error> {
        let mut out = vec![0f32; rows * self.vocab_size];
        let (mut n_rows, mut n_floats) = (0usize, 0usize);
        check(unsafe {
            sys::glm5_session_get_logits(
                self.handle.0.as_ptr(),
                out.as_mut_ptr(),
                out.len(),
                &mut n_rows,
                &mut n_floats,
            )
        })?;
        if n_rows != rows || n_floats != out.len() {
            return Err(Error::new(
                Status::Internal,
                format!("kept logits are {n_rows} rows / {n_floats} floats, expected {rows} rows"),
            ));
        }
        Ok(out)
    }

    /// The logits kept by the last append, row-major `[rows, vocab_size]` (empty after
    /// [`Logits::None`], [`Session::generate`] or [`Session::truncate`]).
    pub fn logits(&self) -> Vec<f32> {
        let (mut n_rows, mut n_floats) = (0usize, 0usize);
        let raw = unsafe {
            sys::glm5_session_get_logits(
                self.handle.0.as_ptr(),
                ptr::null_mut(),
                0,
                &mut n_rows,
                &mut n_floats,
            )
        };
        if raw != sys::GLM5_OK && raw != sys::GLM5_ERR_BUFFER_TOO_SMALL {
            panic!(
                "glm5_session_get_logits failed on a live session: {}",
                Error::last(raw)
            );
        }
        match self.copy_logits(n_rows) {
            Ok(v) => v,
            Err(e) => panic!("glm5_session_get_logits failed on a live session: {e}"),
        }
    }

    /// Greedy generation (`glm5_session_generate`): `n` times, append the most likely next token
    /// (ties to the lower id). Returns the tokens and their log-probabilities.
    ///
    /// Errors: InvalidArgument (the session is empty), ContextFull (`n` tokens do not fit: checked
    /// before anything is generated, the session is unchanged).
    pub fn generate(&mut self, n: usize) -> Result<(Vec<i32>, Vec<f32>), Error> {
        if n > self.max_tokens {
            // Cannot fit whatever the session holds; refuse before allocating n of anything.
            return Err(Error::new(
                Status::ContextFull,
                format!(
                    "generating {n} token(s) exceeds the session's maximum of {}",
                    self.max_tokens
                ),
            ));
        }
        let mut tokens = vec![0i32; n];
        let mut logprobs = vec![0f32; n];
        check(unsafe {
            sys::glm5_session_generate(
                self.handle.0.as_ptr(),
                n,
                tokens.as_mut_ptr(),
                logprobs.as_mut_ptr(),
            )
        })?;
        Ok((tokens, logprobs))
    }

    /// The number of tokens the session holds.
    pub fn n_tokens(&self) -> usize {
        let mut n = 0usize;
        let raw = unsafe { sys::glm5_session_n_tokens(self.handle.0.as_ptr(), &mut n) };
        if raw != sys::GLM5_OK {
            panic!(
                "glm5_session_n_tokens failed on a live session: {}",
                Error::last(raw)
            );
        }
        n
    }

    /// The session's token ids.
    pub fn tokens(&self) -> Vec<i32> {
        let mut out = vec![0i32; self.n_tokens()];
        let mut n = 0usize;
        let raw = unsafe {
            sys::glm5_session_get_tokens(
                self.handle.0.as_ptr(),
                out.as_mut_ptr(),
                out.len(),
                &mut n,
            )
        };
        if raw != sys::GLM5_OK || n != out.len() {
            panic!(
                "glm5_session_get_tokens failed on a live session: {}",
                Error::last(raw)
            );
        }
        out
    }

    /// Keep only the first `n` tokens (`n <= n_tokens()`): later appends behave exactly as in a
    /// session that only ever held those. Clears the kept logits; a routing record is cut to the
    /// same tokens. InvalidArgument if `n` is greater than the session holds (the session is
    /// then unchanged).
    pub fn truncate(&mut self, n: usize) -> Result<(), Error> {
        check(unsafe { sys::glm5_session_truncate(self.handle.0.as_ptr(), n) })
    }

    /// [`Session::append`], also returning the raw and the temperature-scaled log-probabilities
    /// of the appended tokens (`glm5_session_append_scaled`; prompt logprobs for a sampled
    /// continuation). `scaled_logprobs[i] = log-softmax(logits / temperature)[tokens[i]]` (NaN
    /// for the session's first token), computed exactly as [`Session::sample`] reports scaled
    /// logprobs, so a trajectory scored back gives the same bits. `temperature` 0 gives the raw
    /// logprobs.
    ///
    /// Errors: as [`Session::append`], plus InvalidArgument for a temperature that is negative,
    /// infinite or NaN; the session is then unchanged.
    pub fn append_scaled(
        &mut self,
        tokens: &[i32],
        logits: Logits,
        temperature: f32,
    ) -> Result<Appended, Error> {
        let mut logprobs = vec![0f32; tokens.len()];
        let mut scaled_logprobs = vec![0f32; tokens.len()];
        check(unsafe {
            sys::glm5_session_append_scaled(
                self.handle.0.as_ptr(),
                tokens.as_ptr(),
                tokens.len(),
                logits.raw(),
                temperature,
                logprobs.as_mut_ptr(),
                scaled_logprobs.as_mut_ptr(),
            )
        })?;
        Ok(Appended {
            logits: self.kept_logits(logits, tokens.len())?,
            logprobs,
            scaled_logprobs,
        })
    }

    /// A new session holding the same tokens, caches and sampler position
    /// (`glm5_session_fork`): sampling on the fork with a seed gives exactly what sampling on
    /// the original with that seed would. Prefill a prompt once, fork it per trajectory. The
    /// fork has the same `max_tokens`, model and routing record (if it records, it goes on
    /// recording); kept logits are not copied (its [`Session::logits`] is empty). Memory grows
    /// with the tokens held (the caches are copied).
    ///
    /// Errors: OutOfMemory.
    pub fn fork(&self) -> Result<Session, Error> {
        let mut out: *mut sys::glm5_session = ptr::null_mut();
        check(unsafe { sys::glm5_session_fork(self.handle.0.as_ptr(), &mut out) })?;
        Ok(Session {
            handle: Arc::new(Handle::new(out, "glm5_session_fork")?),
            model: self.model,
            vocab_size: self.vocab_size,
            max_tokens: self.max_tokens,
            shape: self.shape,
            not_sync: PhantomData,
        })
    }

    /// A handle that cancels sampling on this session from any thread (see [`Canceller`]).
    pub fn canceller(&self) -> Canceller {
        Canceller {
            handle: Arc::clone(&self.handle),
        }
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("ptr", &self.handle.0)
            .field("n_tokens", &self.n_tokens())
            .field("max_tokens", &self.max_tokens)
            .field("vocab_size", &self.vocab_size)
            .finish()
    }
}
