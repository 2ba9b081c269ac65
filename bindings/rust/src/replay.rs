//! The routing record and its replay (`glm5_session_get_record_info`,
//! `glm5_session_get_recorded_*`, `glm5_session_append_replay`, `glm5_model_score_replay`) and
//! `glm5_session_recompute`: include/glm5.h, "Routing record and replay" (Rollout Routing
//! Replay, "R3").
//!
//! The MoE router and the DSA indexer make discrete choices that a few ulps can flip. A session
//! made with [`SessionParams::record`](crate::SessionParams::record) records, for every token it
//! holds, which keys each layer's attention read and which experts each MoE layer used with which
//! combine weights; a trainer that recomputes logprobs replays exactly those choices. Replaying
//! what was recorded, on the same weights, reproduces the recorded logprobs bit for bit.

use std::ops::Range;
use std::ptr;

use crate::{check, sys, Appended, Error, Logits, Model, Session, Status};

/// The layout of a routing record and of a replay on one model (from [`ModelInfo`]: the
/// configuration cannot change, weight updates keep it). Per token:
///
/// - top-k: `[n_layers, index_topk]` `i32`, the keys each layer's attention read, ascending,
///   padded with -1 (before position `index_topk - 1` fewer keys exist);
/// - routes: `[n_moe_layers, n_experts_per_tok]` `i32` expert ids (ascending, MoE layers in layer
///   order) and as many `f32` combine weights (after normalisation and `routed_scaling_factor`).
///
/// The multi-token-prediction layer is not recorded.
///
/// [`ModelInfo`]: crate::ModelInfo
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RecordShape {
    /// L: layers (without the MTP layer).
    pub n_layers: usize,
    /// K: keys selected per query by the indexer.
    pub index_topk: usize,
    /// M: MoE layers.
    pub n_moe_layers: usize,
    /// k: routed experts per token.
    pub n_experts_per_tok: usize,
}

impl RecordShape {
    /// `L * K`: top-k entries per token.
    pub fn topk_per_token(&self) -> usize {
        self.n_layers * self.index_topk
    }

    /// `M * k`: route entries (ids, and as many weights) per token.
    pub fn routes_per_token(&self) -> usize {
        self.n_moe_layers * self.n_experts_per_tok
    }

    /// `4 L K + 8 M k`: the record's bytes per token.
    pub fn bytes_per_token(&self) -> u64 {
        4 * self.topk_per_token() as u64 + 8 * self.routes_per_token() as u64
    }

    /// `n * per_token`, or InvalidArgument naming `what` if that overflows.
    fn entries(n: usize, per_token: usize, what: &str) -> Result<usize, Error> {
        n.checked_mul(per_token).ok_or_else(|| {
            Error::new(
                Status::InvalidArgument,
                format!("{n} tokens of {what} overflow the address space"),
            )
        })
    }

    /// Checks one replay slice: exactly `n * per_token` entries. The C API cannot see a slice's
    /// length and would read past a short one, so this check is what makes replay safe.
    fn check_len(
        len: usize,
        n: usize,
        per_token: usize,
        what: &str,
        dims: &str,
    ) -> Result<(), Error> {
        let need = RecordShape::entries(n, per_token, what)?;
        if len == need {
            Ok(())
        } else {
            Err(Error::new(
                Status::InvalidArgument,
                format!(
                    "replay {what} has {len} entries; {n} token(s) need [{n}, {dims}] = {need}"
                ),
            ))
        }
    }
}

/// What a session's routing record holds now ([`Session::record_info`]; `glm5_record_info`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordInfo {
    /// Tokens recorded: the session's tokens.
    pub n_tokens: usize,
    /// L.
    pub n_layers: usize,
    /// K.
    pub index_topk: usize,
    /// M.
    pub n_moe_layers: usize,
    /// k.
    pub n_experts_per_tok: usize,
    /// `4 L K + 8 M k`.
    pub bytes_per_token: u64,
    /// Memory the record holds now.
    pub bytes: u64,
    /// Its bound ([`SessionParams::record_max_bytes`](crate::SessionParams::record_max_bytes),
    /// 1 GiB by default).
    pub max_bytes: u64,
}

impl RecordInfo {
    /// L, K, M and k.
    pub fn shape(&self) -> RecordShape {
        RecordShape {
            n_layers: self.n_layers,
            index_topk: self.index_topk,
            n_moe_layers: self.n_moe_layers,
            n_experts_per_tok: self.n_experts_per_tok,
        }
    }
}

/// A copy of (part of) a routing record ([`Session::recorded`]): flat, row-major arrays in the
/// layouts of [`RecordShape`], row `t` = the `t`-th token of the range copied.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recorded {
    /// Tokens covered.
    pub n_tokens: usize,
    pub shape: RecordShape,
    /// `[n_tokens, n_layers, index_topk]`.
    pub topk: Vec<i32>,
    /// `[n_tokens, n_moe_layers, n_experts_per_tok]`.
    pub expert_ids: Vec<i32>,
    /// `[n_tokens, n_moe_layers, n_experts_per_tok]`.
    pub expert_weights: Vec<f32>,
}

impl Recorded {
    /// A replay of all of it: selections, expert ids and their weights.
    pub fn replay(&self) -> Replay<'_> {
        self.replay_range(0..self.n_tokens)
    }

    /// A replay of tokens `range` of it (relative to this copy), for an append of exactly those
    /// tokens. Panics if the range is out of bounds, as slicing does.
    pub fn replay_range(&self, range: Range<usize>) -> Replay<'_> {
        assert!(
            range.start <= range.end && range.end <= self.n_tokens,
            "range {range:?} out of the {} recorded tokens",
            self.n_tokens
        );
        let (t, r) = (self.shape.topk_per_token(), self.shape.routes_per_token());
        Replay {
            topk: Some(&self.topk[range.start * t..range.end * t]),
            expert_ids: Some(&self.expert_ids[range.start * r..range.end * r]),
            expert_weights: Some(&self.expert_weights[range.start * r..range.end * r]),
        }
    }
}

/// Selections and routes to replay for the tokens of one call (`glm5_replay`), in the layouts of
/// [`RecordShape`], for the appended (or scored) tokens only. Every field is optional; all
/// `None` (the default) is a plain append.
///
/// - `topk`: replaces the indexer's choice on every layer (the indexer's keys are still computed
///   and cached, so later tokens can run normally);
/// - `expert_ids`: replace the router's choice;
/// - `expert_weights`: their combine weights; `None` lets the router weigh the replayed ids from
///   its current logits (sigmoid, normalised and scaled as usual). Needs `expert_ids` (the
///   library refuses weights alone).
///
/// Every slice given must have exactly `n_tokens * per_token` entries
/// ([`RecordShape::topk_per_token`], [`RecordShape::routes_per_token`]): the crate checks that
/// before calling the library (which cannot see slice lengths), and refuses a wrong length with
/// InvalidArgument. The library then checks the values: each selection strictly ascending within
/// `[0, position]`, at least one key, -1 only as trailing padding; each route `n_experts_per_tok`
/// distinct ascending ids in `[0, n_routed_experts)`; weights finite.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Replay<'a> {
    pub topk: Option<&'a [i32]>,
    pub expert_ids: Option<&'a [i32]>,
    pub expert_weights: Option<&'a [f32]>,
}

/// `glm5_replay_init` on this crate's layout: NULL arrays, struct_size = our sizeof.
pub(crate) fn new_replay() -> sys::glm5_replay {
    sys::glm5_replay {
        struct_size: std::mem::size_of::<sys::glm5_replay>() as u32,
        reserved0: 0,
        topk: ptr::null(),
        expert_ids: ptr::null(),
        expert_weights: ptr::null(),
    }
}

/// `glm5_record_info_init` on this crate's layout: zeros, struct_size = our sizeof.
pub(crate) fn new_record_info() -> sys::glm5_record_info {
    sys::glm5_record_info {
        struct_size: std::mem::size_of::<sys::glm5_record_info>() as u32,
        ..Default::default()
    }
}

impl Replay<'_> {
    /// The C struct for a call on `n` tokens, after checking every slice's length against
    /// `shape`. It points into the slices, so it must not outlive them.
    fn to_sys(self, n: usize, shape: &RecordShape) -> Result<sys::glm5_replay, Error> {
        let mut r = new_replay();
        let (l, k) = (shape.n_layers, shape.index_topk);
        let (m, e) = (shape.n_moe_layers, shape.n_experts_per_tok);
        if let Some(t) = self.topk {
            let dims = format!("n_layers {l}, index_topk {k}");
            RecordShape::check_len(t.len(), n, shape.topk_per_token(), "topk", &dims)?;
            r.topk = t.as_ptr();
        }
        let dims = format!("n_moe_layers {m}, n_experts_per_tok {e}");
        if let Some(ids) = self.expert_ids {
            let per = shape.routes_per_token();
            RecordShape::check_len(ids.len(), n, per, "expert_ids", &dims)?;
            r.expert_ids = ids.as_ptr();
        }
        if let Some(w) = self.expert_weights {
            let per = shape.routes_per_token();
            RecordShape::check_len(w.len(), n, per, "expert_weights", &dims)?;
            r.expert_weights = w.as_ptr();
        }
        Ok(r)
    }
}

impl Session {
    /// The layout of this session's record and of its replays (the model's, see
    /// [`RecordShape`]).
    pub fn record_shape(&self) -> RecordShape {
        self.shape
    }

    /// What the session's routing record holds (`glm5_session_get_record_info`), or `None` if
    /// the session does not record.
    pub fn record_info(&self) -> Option<RecordInfo> {
        let mut c = new_record_info();
        let raw = unsafe { sys::glm5_session_get_record_info(self.as_ptr(), &mut c) };
        if raw != sys::GLM5_OK {
            panic!(
                "glm5_session_get_record_info failed on a live session: {}",
                Error::last(raw)
            );
        }
        (c.recording != 0).then_some(RecordInfo {
            n_tokens: c.n_tokens as usize,
            n_layers: c.n_layers as usize,
            index_topk: c.index_topk as usize,
            n_moe_layers: c.n_moe_layers as usize,
            n_experts_per_tok: c.n_experts_per_tok as usize,
            bytes_per_token: c.bytes_per_token,
            bytes: c.bytes,
            max_bytes: c.max_bytes,
        })
    }

    /// The recorded selections of every token the session holds: `[n_tokens, n_layers,
    /// index_topk]` (see [`RecordShape`]). InvalidArgument if the session does not record.
    pub fn recorded_topk(&self) -> Result<Vec<i32>, Error> {
        self.recorded_topk_range(0..self.n_tokens())
    }

    /// The recorded selections of tokens `range`: `[range.len(), n_layers, index_topk]`.
    /// InvalidArgument if the session does not record or the range goes beyond its tokens.
    pub fn recorded_topk_range(&self, range: Range<usize>) -> Result<Vec<i32>, Error> {
        let n = range_len(&range)?;
        // Two-call pattern: the library checks the range and tells the size first.
        let mut need = 0usize;
        let raw = unsafe {
            sys::glm5_session_get_recorded_topk(
                self.as_ptr(),
                range.start,
                n,
                ptr::null_mut(),
                0,
                &mut need,
            )
        };
        if raw != sys::GLM5_ERR_BUFFER_TOO_SMALL {
            check(raw)?; // an error, or OK: nothing to copy
            return Ok(Vec::new());
        }
        let mut out = vec![0i32; need];
        let mut got = 0usize;
        check(unsafe {
            sys::glm5_session_get_recorded_topk(
                self.as_ptr(),
                range.start,
                n,
                out.as_mut_ptr(),
                out.len(),
                &mut got,
            )
        })?;
        expect_entries(got, need, n, self.shape.topk_per_token(), "top-k")?;
        Ok(out)
    }

    /// The recorded routes of every token the session holds: `(expert_ids, expert_weights)`,
    /// each `[n_tokens, n_moe_layers, n_experts_per_tok]`. InvalidArgument if the session does
    /// not record.
    pub fn recorded_routes(&self) -> Result<(Vec<i32>, Vec<f32>), Error> {
        self.recorded_routes_range(0..self.n_tokens())
    }

    /// The recorded routes of tokens `range`: each `[range.len(), n_moe_layers,
    /// n_experts_per_tok]`. InvalidArgument if the session does not record or the range goes
    /// beyond its tokens.
    pub fn recorded_routes_range(
        &self,
        range: Range<usize>,
    ) -> Result<(Vec<i32>, Vec<f32>), Error> {
        let n = range_len(&range)?;
        let mut need = 0usize;
        let raw = unsafe {
            sys::glm5_session_get_recorded_routes(
                self.as_ptr(),
                range.start,
                n,
                ptr::null_mut(),
                ptr::null_mut(),
                0,
                &mut need,
            )
        };
        if raw != sys::GLM5_ERR_BUFFER_TOO_SMALL {
            check(raw)?;
            return Ok((Vec::new(), Vec::new()));
        }
        let mut ids = vec![0i32; need];
        let mut weights = vec![0f32; need];
        let mut got = 0usize;
        check(unsafe {
            sys::glm5_session_get_recorded_routes(
                self.as_ptr(),
                range.start,
                n,
                ids.as_mut_ptr(),
                weights.as_mut_ptr(),
                need,
                &mut got,
            )
        })?;
        expect_entries(got, need, n, self.shape.routes_per_token(), "routes")?;
        Ok((ids, weights))
    }

    /// A copy of the whole record (selections and routes of every token held), ready to replay
    /// ([`Recorded::replay`]). InvalidArgument if the session does not record.
    pub fn recorded(&self) -> Result<Recorded, Error> {
        self.recorded_range(0..self.n_tokens())
    }

    /// A copy of the record of tokens `range`.
    pub fn recorded_range(&self, range: Range<usize>) -> Result<Recorded, Error> {
        let topk = self.recorded_topk_range(range.clone())?;
        let (expert_ids, expert_weights) = self.recorded_routes_range(range.clone())?;
        Ok(Recorded {
            n_tokens: range.len(),
            shape: self.shape,
            topk,
            expert_ids,
            expert_weights,
        })
    }

    /// [`Session::append_scaled`] with replayed selections and/or routes
    /// (`glm5_session_append_replay`): the given choices are used instead of the indexer's and
    /// the router's for these tokens (see [`Replay`]). Returns the kept logits and the raw and
    /// temperature-scaled logprobs of the appended tokens; `temperature` as in
    /// [`Session::append_scaled`] (1 when only raw logprobs matter, 0 gives raw twice). A session
    /// that records records what it replayed.
    ///
    /// Errors: as [`Session::append_scaled`]; InvalidArgument for a replay slice whose length is
    /// not `tokens.len()` times its per-token size (refused by this crate, before the library is
    /// called) and for replay values out of range (the library's message names the token, layer
    /// and entry). The session is then unchanged.
    pub fn append_replay(
        &mut self,
        tokens: &[i32],
        logits: Logits,
        replay: &Replay<'_>,
        temperature: f32,
    ) -> Result<Appended, Error> {
        let r = replay.to_sys(tokens.len(), &self.shape)?;
        let mut logprobs = vec![0f32; tokens.len()];
        let mut scaled_logprobs = vec![0f32; tokens.len()];
        check(unsafe {
            sys::glm5_session_append_replay(
                self.as_ptr(),
                tokens.as_ptr(),
                tokens.len(),
                logits.raw(),
                &r,
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

    /// Rebuild the session's caches (and record) from its tokens with the model's current weights
    /// (`glm5_session_recompute`), as a new session appending the same tokens would. After a
    /// weight update a session keeps what the old weights computed (as asynchronous RL does);
    /// this makes it as if it had been built on the new ones. Kept logits are cleared.
    ///
    /// Errors: OutOfMemory; the session is then unchanged.
    pub fn recompute(&mut self) -> Result<(), Error> {
        check(unsafe { sys::glm5_session_recompute(self.as_ptr()) })
    }
}

impl Model {
    /// [`Model::score_scaled`] with replayed selections and/or routes
    /// (`glm5_model_score_replay`): the trainer-side R3 recomputation. Returns `(raw, scaled)`
    /// logprobs, both NaN at index 0. Replaying a sampled trajectory's record
    /// ([`Session::recorded`]) on the same weights gives its logprobs bit for bit.
    ///
    /// Errors: as [`Model::score_scaled`], plus InvalidArgument for a replay slice of the wrong
    /// length (refused by this crate before the library is called) or with values out of range.
    /// Thread-safe.
    pub fn score_replay(
        &self,
        tokens: &[i32],
        replay: &Replay<'_>,
        temperature: f32,
    ) -> Result<(Vec<f32>, Vec<f32>), Error> {
        let r = replay.to_sys(tokens.len(), &self.try_info()?.record_shape())?;
        let mut raw = vec![0f32; tokens.len()];
        let mut scaled = vec![0f32; tokens.len()];
        check(unsafe {
            sys::glm5_model_score_replay(
                self.as_ptr(),
                tokens.as_ptr(),
                tokens.len(),
                &r,
                temperature,
                raw.as_mut_ptr(),
                scaled.as_mut_ptr(),
            )
        })?;
        Ok((raw, scaled))
    }
}

fn range_len(range: &Range<usize>) -> Result<usize, Error> {
    if range.start > range.end {
        return Err(Error::new(
            Status::InvalidArgument,
            format!("token range {range:?} is reversed"),
        ));
    }
    Ok(range.end - range.start)
}

/// The library reported `got` entries for `n` tokens (`need` announced): anything but `need =
/// n * per_token` is an internal error.
fn expect_entries(
    got: usize,
    need: usize,
    n: usize,
    per_token: usize,
    what: &str,
) -> Result<(), Error> {
    if got == need && Some(need) == n.checked_mul(per_token) {
        Ok(())
    } else {
        Err(Error::new(
            Status::Internal,
            format!(
                "the library copied {got} {what} entries (announced {need}) for {n} tokens of \
                 {per_token}"
            ),
        ))
    }
}
