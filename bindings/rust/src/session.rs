//! Sessions (`glm5_session`) and scoring (`glm5_model_score`).

use std::fmt;
use std::ptr::{self, NonNull};

use crate::{check, sys, Error, Model, Status};

/// Options for [`Model::session`]. Build it with `..Default::default()`: fields are only appended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionParams {
    /// The most tokens the session may hold; 0 (the default) = the model's
    /// `max_position_embeddings`, which is also the upper bound. Cache memory grows with use, not
    /// with this number.
    pub max_tokens: usize,
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
        let mut out: *mut sys::glm5_session = ptr::null_mut();
        check(unsafe { sys::glm5_session_new(self.as_ptr(), &p, &mut out) })?;
        let ptr = NonNull::new(out).ok_or_else(|| {
            Error::new(
                Status::Internal,
                "glm5_session_new returned GLM5_OK but no session",
            )
        })?;
        Ok(Session {
            ptr,
            vocab_size: info.vocab_size as usize,
            max_tokens: if params.max_tokens == 0 {
                info.max_position_embeddings as usize
            } else {
                params.max_tokens
            },
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
}

/// One token sequence and its caches (`glm5_session`), made by [`Model::session`]; freed on drop.
///
/// Append tokens (prefill for many, decode for one), read logits and log-probabilities,
/// generate greedily, truncate back. Splitting a sequence into appends of any sizes gives
/// bitwise the same results. Every failure leaves the session exactly as it was.
///
/// `Send` but not `Sync`: a session can move to another thread, and the `&mut self` methods
/// make concurrent use impossible (the C library would answer it with GLM5_ERR_BUSY).
/// It holds no borrow of its [`Model`]: the library keeps the weights alive.
pub struct Session {
    ptr: NonNull<sys::glm5_session>,
    vocab_size: usize,
    max_tokens: usize,
}

// SAFETY: a session is used by one thread at a time (it is not Sync, and mutation takes
// &mut self); the library does not tie a session to the thread that created it.
unsafe impl Send for Session {}

impl Session {
    /// Entries of the vocabulary: the width of one logits row.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The most tokens this session may hold.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// The raw handle, for calling [`sys`] functions directly. Valid while `self` lives.
    pub fn as_ptr(&self) -> *mut sys::glm5_session {
        self.ptr.as_ptr()
    }

    /// Append tokens and return the logits asked for, row-major: empty for [`Logits::None`],
    /// `vocab_size` floats for [`Logits::Last`] (the next-token logits), `tokens.len() *
    /// vocab_size` for [`Logits::All`] (row i predicts the token after `tokens[i]`).
    ///
    /// Errors: InvalidArgument (no tokens, an id outside `[0, vocab_size)`: the message names its
    /// index), ContextFull (the tokens do not fit); the session is then unchanged.
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
                self.ptr.as_ptr(),
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

    /// `glm5_session_get_logits` into a buffer of `rows` rows, checking the reported size.
    fn copy_logits(&self, rows: usize) -> Result<Vec<f32>, Error> {
        let mut out = vec![0f32; rows * self.vocab_size];
        let (mut n_rows, mut n_floats) = (0usize, 0usize);
        check(unsafe {
            sys::glm5_session_get_logits(
                self.ptr.as_ptr(),
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
                self.ptr.as_ptr(),
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
                self.ptr.as_ptr(),
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
        let raw = unsafe { sys::glm5_session_n_tokens(self.ptr.as_ptr(), &mut n) };
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
            sys::glm5_session_get_tokens(self.ptr.as_ptr(), out.as_mut_ptr(), out.len(), &mut n)
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
    /// session that only ever held those. Clears the kept logits. InvalidArgument if `n` is
    /// greater than the session holds (the session is then unchanged).
    pub fn truncate(&mut self, n: usize) -> Result<(), Error> {
        check(unsafe { sys::glm5_session_truncate(self.ptr.as_ptr(), n) })
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        unsafe { sys::glm5_session_free(self.ptr.as_ptr()) }
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("ptr", &self.ptr)
            .field("n_tokens", &self.n_tokens())
            .field("max_tokens", &self.max_tokens)
            .field("vocab_size", &self.vocab_size)
            .finish()
    }
}
