//! Sampling, forks, cancellation, batches and scaled scoring on the tiny-dsa fixture (vocab 320,
//! eos id 1, max_position_embeddings 256), and the draw reproduced from the header's
//! specification (Philox4x32-10 and the inverse-CDF walk, here in f64).

use std::path::{Path, PathBuf};
use std::thread;
use std::time::Instant;

use glm5::{
    Canceller, Error, FinishReason, Logits, Model, ModelParams, SampleResult, SamplingParams,
    Session, SessionParams, Status, MAX_TOP_LOGPROBS,
};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Tests/Fixtures/tiny-dsa")
}

fn load(threads: usize) -> Model {
    let dir = fixture();
    Model::load(&dir, &ModelParams { threads }).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

const VOCAB: usize = 320;

fn ids_for(n: usize, mul: usize, add: usize) -> Vec<i32> {
    (0..n).map(|i| ((i * mul + add) % VOCAB) as i32).collect()
}

/// A session holding `prompt`, keeping the last logits.
fn prefilled(m: &Model, prompt: &[i32]) -> Session {
    let mut s = m.session(&SessionParams::default()).unwrap();
    s.append(prompt, Logits::Last).unwrap();
    s
}

/// Bitwise equality (NaN equal to the same NaN).
fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// What a host can observe of a session.
fn state(s: &Session) -> (usize, Vec<i32>, Vec<u32>) {
    (s.n_tokens(), s.tokens(), bits(&s.logits()))
}

fn assert_err(r: Result<impl std::fmt::Debug, Error>, status: Status, needle: &str) -> Error {
    let e = r.expect_err("expected an error");
    assert_eq!(e.status, status, "{e}");
    assert!(
        e.message.contains(needle),
        "message {:?} lacks {:?}",
        e.message,
        needle
    );
    e
}

/// Two results are the same bits, field by field (`what` names the case on failure).
fn assert_same(a: &SampleResult, b: &SampleResult, what: &str) {
    assert_eq!(a.tokens, b.tokens, "{what}: tokens");
    assert_eq!(bits(&a.logprobs), bits(&b.logprobs), "{what}: logprobs");
    assert_eq!(
        bits(&a.scaled_logprobs),
        bits(&b.scaled_logprobs),
        "{what}: scaled_logprobs"
    );
    assert_eq!(
        bits(&a.processed_logprobs),
        bits(&b.processed_logprobs),
        "{what}: processed_logprobs"
    );
    assert_eq!(a.finish_reason, b.finish_reason, "{what}: finish_reason");
    assert_eq!(a.stop_token_id, b.stop_token_id, "{what}: stop_token_id");
    assert_eq!(a.top_n, b.top_n, "{what}: top_n");
    assert_eq!(a.top_ids, b.top_ids, "{what}: top_ids");
    assert_eq!(
        bits(&a.top_logprobs),
        bits(&b.top_logprobs),
        "{what}: top_logprobs"
    );
}

/// Every per-token array has one entry per token, the alternatives `top_n` per token.
fn assert_shape(r: &SampleResult) {
    let n = r.tokens.len();
    assert_eq!(r.len(), n);
    assert_eq!(r.logprobs.len(), n);
    assert_eq!(r.scaled_logprobs.len(), n);
    assert_eq!(r.processed_logprobs.len(), n);
    assert_eq!(r.top_ids.len(), n * r.top_n);
    assert_eq!(r.top_logprobs.len(), n * r.top_n);
    assert!(r.tokens.iter().all(|&t| t >= 0 && (t as usize) < VOCAB));
}

fn params(temperature: f32, seed: u64, max_new_tokens: usize) -> SamplingParams {
    SamplingParams {
        temperature,
        seed,
        max_new_tokens,
        ignore_eos: true,
        ..Default::default()
    }
}

// ---- 1. greedy -----------------------------------------------------------------------------------

#[test]
fn temperature_zero_is_generate() {
    let m = load(2);
    let prompt = ids_for(7, 5, 3);
    let mut a = prefilled(&m, &prompt);
    let (ids, lp) = a.generate(40).unwrap();
    // greedy ignores the filters and the seed
    for (top_k, top_p, min_p, seed) in [(0, 1.0, 0.0, 0), (3, 0.5, 0.3, 99)] {
        let mut b = prefilled(&m, &prompt);
        let r = b
            .sample(&SamplingParams {
                top_k,
                top_p,
                min_p,
                ..params(0.0, seed, 40)
            })
            .unwrap();
        assert_shape(&r);
        assert_eq!(r.tokens, ids);
        assert_eq!(bits(&r.logprobs), bits(&lp));
        assert_eq!(bits(&r.scaled_logprobs), bits(&r.logprobs));
        assert!(
            r.processed_logprobs.iter().all(|&x| x == 0.0),
            "{:?}",
            r.processed_logprobs
        );
        assert_eq!(r.finish_reason, FinishReason::Length);
        assert_eq!(r.stop_token_id, None);
        assert_eq!(b.tokens(), a.tokens());
        assert!(b.logits().is_empty()); // sampling clears the kept logits
    }
    // without ignore_eos, greedy stops at the first eos (id 1) generate produced, if any
    let mut b = prefilled(&m, &prompt);
    let r = b
        .sample(&SamplingParams {
            ignore_eos: false,
            ..params(0.0, 0, 40)
        })
        .unwrap();
    match ids.iter().position(|&t| t == 1) {
        Some(j) => {
            assert_eq!(r.tokens, &ids[..=j]);
            assert_eq!(
                (r.finish_reason, r.stop_token_id),
                (FinishReason::Stop, Some(1))
            );
        }
        None => {
            assert_eq!(r.tokens, ids);
            assert_eq!(r.finish_reason, FinishReason::Length);
        }
    }
}

// ---- 2. scaled logprobs score back ----------------------------------------------------------------

#[test]
fn sampled_logprobs_score_back_bitwise() {
    let m = load(2);
    let prompt = ids_for(9, 7, 2);
    let p0 = prompt.len();
    for (i, (temperature, top_k, top_p, min_p)) in [
        (1.0f32, 0, 1.0f32, 0.0f32),
        (0.7, 20, 0.9, 0.02),
        (1.3, 0, 0.8, 0.0),
        (0.5, 5, 1.0, 0.1),
    ]
    .into_iter()
    .enumerate()
    {
        let what = format!(
            "case {i}: temperature {temperature} top_k {top_k} top_p {top_p} min_p {min_p}"
        );
        let mut s = prefilled(&m, &prompt);
        let r = s
            .sample(&SamplingParams {
                top_k,
                top_p,
                min_p,
                ..params(temperature, 7 + i as u64, 60)
            })
            .unwrap();
        assert_shape(&r);
        assert_eq!(r.len(), 60, "{what}");
        let all: Vec<i32> = prompt.iter().chain(&r.tokens).copied().collect();
        assert_eq!(s.tokens(), all, "{what}");

        let (raw, scaled) = m.score_scaled(&all, temperature).unwrap();
        assert!(raw[0].is_nan() && scaled[0].is_nan(), "{what}");
        assert_eq!(
            bits(&raw[p0..]),
            bits(&r.logprobs),
            "{what}: raw vs score_scaled"
        );
        assert_eq!(
            bits(&scaled[p0..]),
            bits(&r.scaled_logprobs),
            "{what}: scaled vs score_scaled"
        );
        assert_eq!(
            bits(&m.score(&all).unwrap()),
            bits(&raw),
            "{what}: raw vs score"
        );

        // teacher-forced through a session, in two appends
        let mut t = m.session(&SessionParams::default()).unwrap();
        let a = t
            .append_scaled(&all[..p0 + 5], Logits::None, temperature)
            .unwrap();
        let b = t
            .append_scaled(&all[p0 + 5..], Logits::Last, temperature)
            .unwrap();
        assert!(a.logits.is_empty());
        assert_eq!(b.logits.len(), VOCAB);
        assert_eq!(bits(&b.logits), bits(&t.logits()));
        assert_eq!(
            bits(&[a.logprobs, b.logprobs].concat()),
            bits(&raw),
            "{what}: append_scaled raw"
        );
        assert_eq!(
            bits(&[a.scaled_logprobs, b.scaled_logprobs].concat()),
            bits(&scaled),
            "{what}: append_scaled scaled"
        );

        // processed >= scaled (renormalised over a subset); equal up to rounding with no filter
        for (k, (&pr, &sc)) in r
            .processed_logprobs
            .iter()
            .zip(&r.scaled_logprobs)
            .enumerate()
        {
            assert!(pr <= 0.0 && pr.is_finite(), "{what}: processed[{k}] = {pr}");
            assert!(pr >= sc - 1e-5, "{what}: processed[{k}] {pr} < scaled {sc}");
            if top_k == 0 && top_p == 1.0 && min_p == 0.0 {
                assert!(
                    (pr - sc).abs() <= 1e-5 * (1.0 + sc.abs()),
                    "{what}: {pr} vs {sc}"
                );
            }
        }
        if temperature == 1.0 {
            assert_eq!(bits(&r.scaled_logprobs), bits(&r.logprobs), "{what}");
        }
    }
    // temperature 0 scores the raw values twice
    let ids = ids_for(20, 3, 1);
    let (raw, scaled) = m.score_scaled(&ids, 0.0).unwrap();
    assert_eq!(bits(&raw), bits(&scaled));
    assert_eq!(bits(&raw), bits(&m.score(&ids).unwrap()));
    let mut t = m.session(&SessionParams::default()).unwrap();
    let a = t.append_scaled(&ids, Logits::All, 0.0).unwrap();
    assert_eq!(a.logits.len(), ids.len() * VOCAB);
    assert_eq!(bits(&a.logprobs), bits(&raw));
    assert_eq!(bits(&a.scaled_logprobs), bits(&raw));
}

#[test]
fn bad_temperature_in_scaled_scoring() {
    let m = load(1);
    let ids = ids_for(6, 5, 1);
    let mut s = prefilled(&m, &ids);
    let before = state(&s);
    for t in [-1.0f32, f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        assert_err(
            m.score_scaled(&ids, t),
            Status::InvalidArgument,
            "temperature",
        );
        assert_err(
            s.append_scaled(&[3], Logits::Last, t),
            Status::InvalidArgument,
            "temperature",
        );
        assert_eq!(state(&s), before);
    }
    assert_err(
        m.score_scaled(&[], 1.0),
        Status::InvalidArgument,
        "n_tokens",
    );
    assert_err(
        m.score_scaled(&[1, 320], 1.0),
        Status::InvalidArgument,
        "index 1",
    );
    assert_err(
        s.append_scaled(&[0, -1], Logits::All, 1.0),
        Status::InvalidArgument,
        "index 1",
    );
    assert_eq!(state(&s), before);
}

// ---- 3. fork --------------------------------------------------------------------------------------

#[test]
fn fork_continues_as_the_original() {
    let m = load(2);
    let prompt = ids_for(11, 13, 4);
    let s = prefilled(&m, &prompt);
    let f = s.fork().unwrap();
    assert_eq!(f.tokens(), s.tokens());
    assert_eq!(f.max_tokens(), s.max_tokens());
    assert!(f.logits().is_empty(), "kept logits are not copied");
    assert_eq!(s.logits().len(), VOCAB, "the original keeps its logits");

    let p = SamplingParams {
        top_p: 0.9,
        top_logprobs: 4,
        ..params(0.9, 11, 50)
    };
    let (mut s, mut f) = (s, f);
    let mut fresh = prefilled(&m, &prompt);
    let r_fork = f.sample(&p).unwrap();
    assert_eq!(
        s.tokens(),
        prompt,
        "sampling on the fork leaves the original alone"
    );
    let r_orig = s.sample(&p).unwrap();
    let r_fresh = fresh.sample(&p).unwrap();
    assert_same(&r_fork, &r_orig, "fork vs original");
    assert_same(&r_fresh, &r_orig, "fresh vs original");
    assert_eq!(f.tokens(), s.tokens());

    // a fork in the middle of a trajectory continues it: position-keyed draws
    let mut whole = prefilled(&m, &prompt);
    let r_whole = whole.sample(&params(1.0, 5, 40)).unwrap();
    let mut half = prefilled(&m, &prompt);
    let r_a = half.sample(&params(1.0, 5, 15)).unwrap();
    let mut g = half.fork().unwrap();
    drop(half); // the fork does not need its original
    let r_b = g.sample(&params(1.0, 5, 25)).unwrap();
    assert_eq!([r_a.tokens, r_b.tokens].concat(), r_whole.tokens);
    assert_eq!(
        bits(&[r_a.scaled_logprobs, r_b.scaled_logprobs].concat()),
        bits(&r_whole.scaled_logprobs)
    );
    assert_eq!(g.tokens(), whole.tokens());

    // forks with their own seeds diverge and do not disturb each other
    let base = prefilled(&m, &prompt);
    let mut forks: Vec<Session> = (0..4).map(|_| base.fork().unwrap()).collect();
    let rs: Vec<SampleResult> = forks
        .iter_mut()
        .enumerate()
        .map(|(i, f)| f.sample(&params(1.0, 100 + i as u64, 30)).unwrap())
        .collect();
    assert!(
        rs.windows(2).any(|w| w[0].tokens != w[1].tokens),
        "4 seeds gave one trajectory"
    );
    for (i, r) in rs.iter().enumerate() {
        let mut alone = prefilled(&m, &prompt);
        assert_same(
            r,
            &alone.sample(&params(1.0, 100 + i as u64, 30)).unwrap(),
            "fork i",
        );
    }
    assert_eq!(base.tokens(), prompt);
}

// ---- 4. batches -----------------------------------------------------------------------------------

/// Five sessions: prompts of different lengths, and different temperatures, filters, seeds,
/// lengths, stop ids and alternatives.
fn batch_specs() -> Vec<(Vec<i32>, SamplingParams)> {
    vec![
        (ids_for(1, 1, 17), params(1.0, 1, 20)),
        (
            ids_for(4, 7, 3),
            SamplingParams {
                top_logprobs: 3,
                ..params(0.0, 2, 35)
            },
        ),
        (
            ids_for(9, 11, 5),
            SamplingParams {
                top_k: 10,
                top_p: 0.9,
                top_logprobs: 5,
                ..params(0.7, 3, 5)
            },
        ),
        (
            ids_for(17, 3, 8),
            SamplingParams {
                top_p: 0.8,
                min_p: 0.05,
                ignore_eos: false,
                stop_token_ids: vec![7, 42, 199],
                ..params(1.5, 4, 50)
            },
        ),
        (
            ids_for(30, 19, 2),
            SamplingParams {
                min_p: 0.01,
                top_k: 40,
                top_logprobs: MAX_TOP_LOGPROBS,
                ..params(0.9, 5, 12)
            },
        ),
    ]
}

#[test]
fn batch_equals_each_alone() {
    let specs = batch_specs();
    let m1 = load(1);
    let alone: Vec<(SampleResult, Vec<i32>)> = specs
        .iter()
        .map(|(prompt, p)| {
            let mut s = prefilled(&m1, prompt);
            let r = s.sample(p).unwrap();
            assert_shape(&r);
            (r, s.tokens())
        })
        .collect();
    for m in [m1, load(3)] {
        for order in [[0usize, 1, 2, 3, 4], [4, 2, 0, 3, 1]] {
            let mut sessions: Vec<Session> =
                order.iter().map(|&i| prefilled(&m, &specs[i].0)).collect();
            let ps: Vec<SamplingParams> = order.iter().map(|&i| specs[i].1.clone()).collect();
            let mut refs: Vec<&mut Session> = sessions.iter_mut().collect();
            let rs = m.sample_batch(&mut refs, &ps).unwrap();
            assert_eq!(rs.len(), 5);
            for (k, &i) in order.iter().enumerate() {
                let what = format!("session {i} at batch index {k}, order {order:?}");
                assert_same(&rs[k], &alone[i].0, &what);
                assert_eq!(sessions[k].tokens(), alone[i].1, "{what}");
            }
        }
    }
}

#[test]
fn batch_with_shared_params_and_batched_prefill() {
    let m = load(2);
    let prompts: Vec<Vec<i32>> = (0..4).map(|i| ids_for(3 + 5 * i, 7 + i, i)).collect();
    let shared = SamplingParams {
        top_k: 30,
        ..params(0.8, 77, 16)
    };
    // alone: each prompt appended on its own
    let alone: Vec<(Vec<f32>, Vec<f32>, SampleResult)> = prompts
        .iter()
        .map(|p| {
            let mut s = m.session(&SessionParams::default()).unwrap();
            let (l, lp) = s.append_with_logprobs(p, Logits::All).unwrap();
            (l, lp, s.sample(&shared).unwrap())
        })
        .collect();
    // batched prefill, then one batch with one params entry for all
    let mut sessions: Vec<Session> = (0..4)
        .map(|_| m.session(&SessionParams::default()).unwrap())
        .collect();
    let chunks: Vec<&[i32]> = prompts.iter().map(|p| p.as_slice()).collect();
    let mut refs: Vec<&mut Session> = sessions.iter_mut().collect();
    let pre = m
        .append_batch_with_logprobs(&mut refs, &chunks, Logits::All)
        .unwrap();
    for (i, (l, lp)) in pre.iter().enumerate() {
        assert_eq!(bits(l), bits(&alone[i].0), "prefill logits {i}");
        assert_eq!(bits(lp), bits(&alone[i].1), "prefill logprobs {i}");
        assert_eq!(refs[i].tokens(), prompts[i]);
        assert_eq!(bits(&refs[i].logits()), bits(l));
    }
    let rs = m
        .sample_batch(&mut refs, std::slice::from_ref(&shared))
        .unwrap();
    for (i, r) in rs.iter().enumerate() {
        assert_same(r, &alone[i].2, &format!("shared params, session {i}"));
    }
    // Logits::None / Last through append_batch
    let mut a = m.session(&SessionParams::default()).unwrap();
    let mut b = m.session(&SessionParams::default()).unwrap();
    let out = m
        .append_batch(
            &mut [&mut a, &mut b],
            &[&prompts[0], &prompts[1]],
            Logits::Last,
        )
        .unwrap();
    assert_eq!(
        bits(&out[0]),
        bits(&alone[0].0[(prompts[0].len() - 1) * VOCAB..])
    );
    assert_eq!(
        bits(&out[1]),
        bits(&alone[1].0[(prompts[1].len() - 1) * VOCAB..])
    );
    let out = m
        .append_batch(&mut [&mut a, &mut b], &[&[5], &[6, 7]], Logits::None)
        .unwrap();
    assert!(out.iter().all(Vec::is_empty));
    assert!(a.logits().is_empty() && b.logits().is_empty());
}

#[test]
fn batch_errors_change_nothing() {
    let m = load(2);
    let other = load(1);
    let specs = batch_specs();
    let mut sessions: Vec<Session> = specs.iter().map(|(p, _)| prefilled(&m, p)).collect();
    let before: Vec<_> = sessions.iter().map(state).collect();
    let good: Vec<SamplingParams> = specs.iter().map(|(_, p)| p.clone()).collect();
    let check_unchanged = |sessions: &Vec<Session>| {
        for (s, b) in sessions.iter().zip(&before) {
            assert_eq!(&state(s), b);
        }
    };
    for (field, bad) in [
        (
            "top_k",
            SamplingParams {
                top_k: -1,
                ..good[3].clone()
            },
        ),
        (
            "temperature",
            SamplingParams {
                temperature: f32::NAN,
                ..good[3].clone()
            },
        ),
        (
            "top_p",
            SamplingParams {
                top_p: 0.0,
                ..good[3].clone()
            },
        ),
        (
            "stop_token_ids",
            SamplingParams {
                stop_token_ids: vec![320],
                ..good[3].clone()
            },
        ),
    ] {
        let mut ps = good.clone();
        ps[3] = bad;
        let mut refs: Vec<&mut Session> = sessions.iter_mut().collect();
        let e = assert_err(
            m.sample_batch(&mut refs, &ps),
            Status::InvalidArgument,
            field,
        );
        assert!(e.message.contains('3'), "the message names the index: {e}");
        check_unchanged(&sessions);
    }
    // too many new tokens for one session
    let mut ps = good.clone();
    ps[2].max_new_tokens = 256 - specs[2].0.len() + 1;
    let mut refs: Vec<&mut Session> = sessions.iter_mut().collect();
    assert_err(m.sample_batch(&mut refs, &ps), Status::ContextFull, "");
    check_unchanged(&sessions);
    // params of the wrong length
    let mut refs: Vec<&mut Session> = sessions.iter_mut().collect();
    assert_err(
        m.sample_batch(&mut refs, &good[..2]),
        Status::InvalidArgument,
        "params",
    );
    assert_err(
        m.sample_batch(&mut refs, &[]),
        Status::InvalidArgument,
        "params",
    );
    // a session of another model, through the crate's check ...
    let mut foreign = prefilled(&other, &[1, 2, 3]);
    let mut refs: Vec<&mut Session> = sessions.iter_mut().take(2).collect();
    refs.push(&mut foreign);
    let e = assert_err(
        m.sample_batch(&mut refs, &good[..1]),
        Status::InvalidArgument,
        "model",
    );
    assert!(e.message.contains('2'), "{e}");
    let chunks: [&[i32]; 3] = [&[1], &[2], &[3]];
    assert_err(
        m.append_batch(&mut refs, &chunks, Logits::None),
        Status::InvalidArgument,
        "model",
    );
    // ... and through the library's (the raw call, which has no model argument)
    let handles = [sessions[0].as_ptr(), foreign.as_ptr()];
    let chunk = [4i32];
    let tok = [chunk.as_ptr(), chunk.as_ptr()];
    let lens = [1usize, 1];
    let raw = unsafe {
        glm5::sys::glm5_append_batch(
            handles.as_ptr(),
            2,
            tok.as_ptr(),
            lens.as_ptr(),
            glm5::sys::GLM5_LOGITS_NONE,
            std::ptr::null(),
        )
    };
    assert_eq!(
        Status::from_raw(raw),
        Status::InvalidArgument,
        "{}",
        glm5::last_error()
    );
    assert!(
        glm5::last_error().contains("model"),
        "{}",
        glm5::last_error()
    );
    assert_eq!(foreign.tokens(), [1, 2, 3]);
    check_unchanged(&sessions);
    // no sessions at all
    assert_err(
        m.sample_batch(&mut [], &good[..1]),
        Status::InvalidArgument,
        "",
    );
    assert_err(
        m.append_batch(&mut [], &[], Logits::None),
        Status::InvalidArgument,
        "",
    );
    // append_batch: a bad id in chunk 2, an empty chunk, chunk count
    let mut refs: Vec<&mut Session> = sessions.iter_mut().take(3).collect();
    let e = assert_err(
        m.append_batch(&mut refs, &[&[1, 3], &[3], &[4, 999]], Logits::All),
        Status::InvalidArgument,
        "2",
    );
    assert!(e.message.contains("999"), "{e}");
    assert_err(
        m.append_batch_with_logprobs(&mut refs, &[&[1, 2], &[], &[4]], Logits::All),
        Status::InvalidArgument,
        "1",
    );
    assert_err(
        m.append_batch(&mut refs, &[&[1, 2]], Logits::All),
        Status::InvalidArgument,
        "chunks",
    );
    check_unchanged(&sessions);
    // and everything still works afterwards
    let mut refs: Vec<&mut Session> = sessions.iter_mut().collect();
    assert_eq!(m.sample_batch(&mut refs, &good).unwrap().len(), 5);
}

// ---- 5. stop ids, eos, alternatives, bad parameters ------------------------------------------------

#[test]
fn eos_ids() {
    assert_eq!(load(1).eos_token_ids(), [1]);
}

#[test]
fn stop_ids_and_eos() {
    let m = load(2);
    let prompt = ids_for(6, 9, 10);
    let mut s = prefilled(&m, &prompt);
    let free = s.sample(&params(1.0, 3, 100)).unwrap();
    assert_eq!(free.len(), 100);
    assert_eq!(free.finish_reason, FinishReason::Length);
    // stop at a token the free run produced: the same prefix, that token included
    for pick in [0usize, 10, 99] {
        let t = free.tokens[pick];
        let j = free.tokens.iter().position(|&x| x == t).unwrap();
        for stops in [vec![t], vec![t, (t + 1) % VOCAB as i32, t]] {
            let mut s = prefilled(&m, &prompt);
            let r = s
                .sample(&SamplingParams {
                    stop_token_ids: stops.clone(),
                    ..params(1.0, 3, 100)
                })
                .unwrap();
            let first = free.tokens.iter().position(|x| stops.contains(x)).unwrap();
            assert!(first <= j);
            assert_eq!(r.tokens, &free.tokens[..=first], "stops {stops:?}");
            assert_eq!(
                bits(&r.scaled_logprobs),
                bits(&free.scaled_logprobs[..=first])
            );
            assert_eq!(r.finish_reason, FinishReason::Stop);
            assert_eq!(r.stop_token_id, Some(free.tokens[first]));
            assert_eq!(
                s.n_tokens(),
                prompt.len() + first + 1,
                "the stop id is appended"
            );
        }
    }
    // eos (id 1): find a hot seed whose free trajectory holds a 1
    let (seed, free, j) = (0..200u64)
        .find_map(|seed| {
            let mut s = prefilled(&m, &prompt);
            let r = s.sample(&params(3.0, seed, 120)).unwrap();
            let j = r.tokens.iter().position(|&t| t == 1)?;
            Some((seed, r, j))
        })
        .expect("no seed in 0..200 produced eos at temperature 3");
    let mut s = prefilled(&m, &prompt);
    let r = s
        .sample(&SamplingParams {
            ignore_eos: false,
            ..params(3.0, seed, 120)
        })
        .unwrap();
    assert_eq!(r.tokens, &free.tokens[..=j]);
    assert_eq!(
        (r.finish_reason, r.stop_token_id),
        (FinishReason::Stop, Some(1))
    );
    // ignore_eos with 1 as an explicit stop id still stops there
    let mut s = prefilled(&m, &prompt);
    let r = s
        .sample(&SamplingParams {
            stop_token_ids: vec![1],
            ..params(3.0, seed, 120)
        })
        .unwrap();
    assert_eq!(r.tokens, &free.tokens[..=j]);
    assert_eq!(r.stop_token_id, Some(1));
    // and a later call continues after the stop id
    if j + 4 <= free.len() {
        let next = s.sample(&params(3.0, seed, 3)).unwrap();
        assert_eq!(next.tokens, &free.tokens[j + 1..j + 4]);
    }
}

/// The header's rank order (logit descending, equal logits by the lower id; no NaN here) with
/// each token's scaled logprob s_x - (m + log Z): (id, scaled logprob), best first.
fn reference_ranks(logits: &[f32], temperature: f32) -> Vec<(i32, f64)> {
    let s: Vec<f64> = logits
        .iter()
        .map(|&l| l as f64 / temperature as f64)
        .collect();
    let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let lse = m + s.iter().map(|&x| (x - m).exp()).sum::<f64>().ln();
    let mut order: Vec<usize> = (0..s.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    order.into_iter().map(|i| (i as i32, s[i] - lse)).collect()
}

#[test]
fn top_alternatives() {
    let m = load(2);
    let prompt = ids_for(8, 21, 6);
    for (top_k, n_top, temperature) in [
        (5, 5, 0.9f32),
        (0, 8, 1.0),
        (0, 1, 0.6),
        (0, MAX_TOP_LOGPROBS, 1.2),
    ] {
        let what = format!("top_k {top_k}, top_logprobs {n_top}, temperature {temperature}");
        let mut s = prefilled(&m, &prompt);
        let first_logits = s.logits();
        let r = s
            .sample(&SamplingParams {
                top_k,
                top_logprobs: n_top,
                ..params(temperature, 21, 30)
            })
            .unwrap();
        assert_shape(&r);
        assert_eq!(r.top_n, n_top, "{what}");
        for i in 0..r.len() {
            let (ids, lps) = r.top(i);
            assert_eq!(ids.len(), n_top);
            let mut seen = ids.to_vec();
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), n_top, "{what}: row {i} repeats an id: {ids:?}");
            // descending (distinct logits may round to one float: non-increasing)
            for k in 1..n_top {
                assert!(
                    lps[k - 1] >= lps[k],
                    "{what}: row {i} not descending at {k}: {ids:?} {lps:?}"
                );
            }
            match ids.iter().position(|&t| t == r.tokens[i]) {
                Some(k) => assert_eq!(
                    lps[k].to_bits(),
                    r.scaled_logprobs[i].to_bits(),
                    "{what}: row {i}"
                ),
                None => {
                    assert!(
                        top_k == 0 || top_k as usize > n_top,
                        "{what}: token {i} was in the top {top_k} but not reported"
                    );
                    assert!(r.scaled_logprobs[i] <= lps[n_top - 1], "{what}: row {i}");
                }
            }
        }
        // every row against the rank order of the logits at its position (teacher-forced)
        let mut t = prefilled(&m, &prompt);
        assert_eq!(bits(&t.logits()), bits(&first_logits));
        for i in 0..r.len() {
            let want = reference_ranks(&t.logits(), temperature);
            let (ids, lps) = r.top(i);
            let want_ids: Vec<i32> = want[..n_top].iter().map(|w| w.0).collect();
            assert_eq!(ids, want_ids.as_slice(), "{what}: row {i}");
            for (k, &lp) in lps.iter().enumerate() {
                let w = want[k].1;
                assert!(
                    (lp as f64 - w).abs() <= 2e-6 * (1.0 + w.abs()),
                    "{what}: row {i} alternative {k}: {lp} vs {w}"
                );
            }
            t.append(&r.tokens[i..=i], Logits::Last).unwrap();
        }
    }
    // none asked: empty
    let mut s = prefilled(&m, &prompt);
    let r = s.sample(&params(1.0, 1, 4)).unwrap();
    assert_eq!((r.top_n, r.top_ids.len(), r.top_logprobs.len()), (0, 0, 0));
}

#[test]
fn bad_parameters_name_the_field_and_change_nothing() {
    let m = load(2);
    let mut s = m
        .session(&SessionParams {
            max_tokens: 16,
            ..Default::default()
        })
        .unwrap();
    // an empty session cannot be sampled from
    assert_err(s.sample(&params(1.0, 0, 2)), Status::InvalidArgument, "");
    assert_eq!(s.n_tokens(), 0);
    s.append(&ids_for(10, 3, 3), Logits::Last).unwrap();
    let before = state(&s);
    let base = params(1.0, 0, 4);
    let many_stops: Vec<i32> = (0..4097).map(|i| i % VOCAB as i32).collect();
    for (field, bad) in [
        (
            "temperature",
            SamplingParams {
                temperature: -1.0,
                ..base.clone()
            },
        ),
        (
            "temperature",
            SamplingParams {
                temperature: f32::NAN,
                ..base.clone()
            },
        ),
        (
            "temperature",
            SamplingParams {
                temperature: f32::INFINITY,
                ..base.clone()
            },
        ),
        (
            "top_p",
            SamplingParams {
                top_p: 0.0,
                ..base.clone()
            },
        ),
        (
            "top_p",
            SamplingParams {
                top_p: 1.5,
                ..base.clone()
            },
        ),
        (
            "top_p",
            SamplingParams {
                top_p: f32::NAN,
                ..base.clone()
            },
        ),
        (
            "top_p",
            SamplingParams {
                top_p: -0.5,
                ..base.clone()
            },
        ),
        (
            "top_k",
            SamplingParams {
                top_k: -1,
                ..base.clone()
            },
        ),
        (
            "top_k",
            SamplingParams {
                top_k: i32::MIN,
                ..base.clone()
            },
        ),
        (
            "min_p",
            SamplingParams {
                min_p: 1.0,
                ..base.clone()
            },
        ),
        (
            "min_p",
            SamplingParams {
                min_p: -0.1,
                ..base.clone()
            },
        ),
        (
            "min_p",
            SamplingParams {
                min_p: f32::NAN,
                ..base.clone()
            },
        ),
        (
            "top_logprobs",
            SamplingParams {
                top_logprobs: MAX_TOP_LOGPROBS + 1,
                ..base.clone()
            },
        ),
        (
            "top_logprobs",
            SamplingParams {
                top_logprobs: 1 << 20,
                ..base.clone()
            },
        ),
        (
            "top_logprobs",
            SamplingParams {
                top_logprobs: usize::MAX,
                ..base.clone()
            },
        ),
        (
            "stop_token_ids",
            SamplingParams {
                stop_token_ids: vec![320],
                ..base.clone()
            },
        ),
        (
            "stop_token_ids",
            SamplingParams {
                stop_token_ids: vec![5, -1],
                ..base.clone()
            },
        ),
        (
            "stop_token_ids",
            SamplingParams {
                stop_token_ids: many_stops,
                ..base.clone()
            },
        ),
    ] {
        let what = format!("{field}: {bad:?}");
        let e = s.sample(&bad).expect_err(&what);
        assert_eq!(e.status, Status::InvalidArgument, "{what}: {e}");
        assert!(
            e.message.contains(field),
            "{what}: the message {:?} does not name the field",
            e.message
        );
        assert_eq!(state(&s), before, "{what}");
    }
    // the edges that are allowed
    for ok in [
        SamplingParams {
            top_p: 1.0,
            min_p: 0.999,
            top_k: 1,
            ..base.clone()
        },
        SamplingParams {
            top_p: 1e-6,
            ..base.clone()
        },
        SamplingParams {
            top_logprobs: MAX_TOP_LOGPROBS,
            ..base.clone()
        },
        SamplingParams {
            stop_token_ids: (0..4096).map(|i| 2 + i % 318).collect(),
            ..base.clone()
        },
    ] {
        let mut f = s.fork().unwrap();
        f.sample(&ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
    }
    // room: 6 more fit, 7 do not (nothing generated), more than the session could ever hold is
    // refused before anything is allocated
    for n in [7, 17, usize::MAX] {
        assert_err(s.sample(&params(1.0, 0, n)), Status::ContextFull, "");
        assert_eq!(state(&s), before);
    }
    let r = s.sample(&params(1.0, 0, 0)).unwrap();
    assert!(r.is_empty());
    assert_eq!(r.finish_reason, FinishReason::Length);
    assert_eq!(s.n_tokens(), 10);
    let r = s.sample(&params(1.0, 0, 6)).unwrap();
    assert_eq!((r.len(), s.n_tokens()), (6, 16));
    assert_err(s.sample(&params(1.0, 0, 1)), Status::ContextFull, "");
    // the same session twice in a batch cannot be written: see the compile_fail example on
    // Model::sample_batch (two `&mut` borrows of one session).
}

// ---- 6. cancellation ------------------------------------------------------------------------------

#[test]
fn canceller_is_send_sync_clone() {
    fn assert_traits<T: Send + Sync + Clone + 'static>() {}
    assert_traits::<Canceller>();
}

#[test]
fn cancel_before_sampling_stops_the_next_call() {
    let m = load(2);
    let prompt = ids_for(5, 3, 2);
    let mut s = prefilled(&m, &prompt);
    let c = s.canceller();
    c.clone().cancel().unwrap();
    let r = s.sample(&params(1.0, 9, 20)).unwrap();
    assert!(r.is_empty());
    assert_eq!(
        (r.finish_reason, r.stop_token_id),
        (FinishReason::Cancelled, None)
    );
    assert_eq!(s.tokens(), prompt);
    // consumed: the next call runs, and draws as if nothing happened
    let r = s.sample(&params(1.0, 9, 20)).unwrap();
    assert_eq!(r.finish_reason, FinishReason::Length);
    let mut fresh = prefilled(&m, &prompt);
    assert_same(
        &r,
        &fresh.sample(&params(1.0, 9, 20)).unwrap(),
        "after a consumed cancel",
    );

    // in a batch, only the cancelled session stops
    let specs = batch_specs();
    let alone: Vec<SampleResult> = specs
        .iter()
        .map(|(p, sp)| prefilled(&m, p).sample(sp).unwrap())
        .collect();
    let mut sessions: Vec<Session> = specs.iter().map(|(p, _)| prefilled(&m, p)).collect();
    sessions[1].canceller().cancel().unwrap();
    let ps: Vec<SamplingParams> = specs.iter().map(|(_, p)| p.clone()).collect();
    let mut refs: Vec<&mut Session> = sessions.iter_mut().collect();
    let rs = m.sample_batch(&mut refs, &ps).unwrap();
    for (i, r) in rs.iter().enumerate() {
        if i == 1 {
            assert!(r.is_empty());
            assert_eq!(r.finish_reason, FinishReason::Cancelled);
            assert_eq!(sessions[1].tokens(), specs[1].0);
        } else {
            assert_same(r, &alone[i], &format!("batch session {i}"));
        }
    }
}

/// `r` is what a run cancelled part-way may report: a prefix of the uncancelled `full`, with
/// the session holding exactly the prompt and the reported tokens; or `full` itself.
fn assert_cancelled_or_finished(
    r: &SampleResult,
    full: &SampleResult,
    s: &Session,
    prompt: &[i32],
) -> bool {
    assert_shape(r);
    assert_eq!(
        s.n_tokens(),
        prompt.len() + r.len(),
        "the session holds what was reported"
    );
    assert_eq!(&s.tokens()[prompt.len()..], r.tokens.as_slice());
    match r.finish_reason {
        FinishReason::Cancelled => {
            assert!(r.len() <= full.len());
            assert_eq!(r.tokens, &full.tokens[..r.len()]);
            assert_eq!(bits(&r.logprobs), bits(&full.logprobs[..r.len()]));
            assert_eq!(
                bits(&r.scaled_logprobs),
                bits(&full.scaled_logprobs[..r.len()])
            );
            assert_eq!(r.stop_token_id, None);
            true
        }
        FinishReason::Length => {
            assert_same(r, full, "finished before the cancel");
            false
        }
        other => panic!("finish_reason {other:?}"),
    }
}

#[test]
fn cancel_from_another_thread() {
    let m = load(1);
    let prompt = ids_for(8, 5, 1);
    let p = params(1.0, 4, 240);
    let t0 = Instant::now();
    let full = prefilled(&m, &prompt).sample(&p).unwrap();
    let took = t0.elapsed();
    assert_eq!(full.len(), 240);
    let mut cancelled = 0;
    for trial in 0..6u32 {
        let mut s = prefilled(&m, &prompt);
        let c = s.canceller();
        let delay = took * (trial + 1) / 12;
        let h = thread::spawn(move || {
            thread::sleep(delay);
            c.cancel().unwrap();
        });
        let r = s.sample(&p).unwrap();
        h.join().unwrap();
        if assert_cancelled_or_finished(&r, &full, &s, &prompt) {
            cancelled += 1;
        } else {
            // the cancel came after the call: it is kept for the next one, or was seen too late
            let n = s.n_tokens();
            let next = s.sample(&params(1.0, 4, 1)).unwrap();
            assert!(
                (next.finish_reason == FinishReason::Cancelled && next.is_empty())
                    || next.finish_reason == FinishReason::Length,
                "{next:?}"
            );
            assert_eq!(s.n_tokens(), n + next.len());
        }
    }
    eprintln!("cancel_from_another_thread: {cancelled} of 6 runs were cancelled part-way (one run: {took:?})");

    // in a batch: the cancelled session stops, the others run to their end
    let specs: Vec<(Vec<i32>, SamplingParams)> = (0..3)
        .map(|i| (ids_for(4 + i, 7, i), params(1.0, 40 + i as u64, 200)))
        .collect();
    let alone: Vec<SampleResult> = specs
        .iter()
        .map(|(q, sp)| prefilled(&m, q).sample(sp).unwrap())
        .collect();
    let mut sessions: Vec<Session> = specs.iter().map(|(q, _)| prefilled(&m, q)).collect();
    let c = sessions[1].canceller();
    let h = thread::spawn(move || {
        thread::sleep(took / 4);
        c.cancel().unwrap();
    });
    let ps: Vec<SamplingParams> = specs.iter().map(|(_, p)| p.clone()).collect();
    let mut refs: Vec<&mut Session> = sessions.iter_mut().collect();
    let rs = m.sample_batch(&mut refs, &ps).unwrap();
    h.join().unwrap();
    for (i, r) in rs.iter().enumerate() {
        if i == 1 {
            assert_cancelled_or_finished(r, &alone[1], &sessions[1], &specs[1].0);
        } else {
            assert_same(r, &alone[i], &format!("batch session {i}"));
        }
    }
}

#[test]
fn canceller_outlives_its_session() {
    let m = load(1);
    let s = prefilled(&m, &[1, 2, 3]);
    let c = s.canceller();
    let c2 = c.clone();
    drop(s);
    // the handle is still alive (the canceller holds it): cancelling is harmless
    c.cancel().unwrap();
    drop(c);
    let h = thread::spawn(move || c2.cancel());
    h.join().unwrap().unwrap();
    // a fork does not share its original's canceller
    let mut s = prefilled(&m, &[4, 5, 6]);
    let mut f = s.fork().unwrap();
    s.canceller().cancel().unwrap();
    assert_eq!(
        f.sample(&params(1.0, 0, 3)).unwrap().finish_reason,
        FinishReason::Length
    );
    assert_eq!(
        s.sample(&params(1.0, 0, 3)).unwrap().finish_reason,
        FinishReason::Cancelled
    );
}

// ---- 7. the draw, reproduced --------------------------------------------------------------------

/// Philox4x32-10 (Salmon et al., SC'11; Random123's philox4x32 with 10 rounds).
fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    fn mulhilo(a: u32, b: u32) -> (u32, u32) {
        let p = a as u64 * b as u64;
        ((p >> 32) as u32, p as u32)
    }
    let (mut c, mut k) = (ctr, key);
    for round in 0..10 {
        let (hi0, lo0) = mulhilo(0xD251_1F53, c[0]);
        let (hi1, lo1) = mulhilo(0xCD9E_8D57, c[2]);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
        if round < 9 {
            k[0] = k[0].wrapping_add(0x9E37_79B9);
            k[1] = k[1].wrapping_add(0xBB67_AE85);
        }
    }
    c
}

#[test]
fn philox_known_answers() {
    // Random123 kat_vectors, philox4x32 10
    assert_eq!(
        philox4x32_10([0; 4], [0; 2]),
        [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
    );
    assert_eq!(
        philox4x32_10([0xffff_ffff; 4], [0xffff_ffff; 2]),
        [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
    );
    assert_eq!(
        philox4x32_10(
            [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
            [0xa4093822, 0x299f31d0]
        ),
        [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
    );
}

/// The header's sampler ("Sampling", steps 1-8) in f64 from float32 logits: (token, scaled
/// logprob, processed logprob). Temperature > 0.
fn reference_draw(l: &[f32], p: &SamplingParams, pos: u64) -> (i32, f64, f64) {
    let t = p.temperature as f64;
    let s: Vec<f64> = l.iter().map(|&x| x as f64 / t).collect();
    let m = s
        .iter()
        .copied()
        .filter(|x| !x.is_nan())
        .fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = s
        .iter()
        .map(|&x| if x.is_nan() { 0.0 } else { (x - m).exp() })
        .collect();
    let mut sum = 0.0f64;
    for &x in &w {
        sum += x;
    }
    let prob: Vec<f64> = w.iter().map(|&x| x / sum).collect();
    let mut order: Vec<usize> = (0..l.len()).collect();
    // by logit descending (the order of s), equal logits by the lower id, NaN last
    order.sort_by(|&a, &b| match (l[a].is_nan(), l[b].is_nan()) {
        (false, false) => l[b].partial_cmp(&l[a]).unwrap().then(a.cmp(&b)),
        (x, y) => x.cmp(&y).then(a.cmp(&b)),
    });
    let mut keep = order.len();
    if p.top_k > 0 {
        keep = keep.min(p.top_k as usize);
    }
    if p.top_p < 1.0 {
        let (mut before, mut n) = (0.0f64, 0);
        for &i in &order {
            if before >= p.top_p as f64 {
                break; // before < top_p keeps the token (no NaN here: p is finite)
            }
            n += 1;
            before += prob[i];
        }
        keep = keep.min(n);
    }
    if p.min_p > 0.0 {
        // w_i >= min_p, that is p_i >= min_p * max_j p_j (the most likely token has w = 1)
        let floor = p.min_p as f64;
        keep = keep.min(order.iter().take_while(|&&i| w[i] >= floor).count());
    }
    let mut kept: Vec<usize> = order[..keep].to_vec();
    kept.sort();
    let mut big_w = 0.0f64;
    for &i in &kept {
        big_w += w[i];
    }
    let x = philox4x32_10(
        [pos as u32, (pos >> 32) as u32, 0, 0],
        [p.seed as u32, (p.seed >> 32) as u32],
    );
    let u = ((((x[1] as u64) << 32) | x[0] as u64) >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
    let target = u * big_w;
    let mut c = 0.0f64;
    let mut token = None;
    for &i in &kept {
        c += w[i];
        if c > target {
            token = Some(i);
            break;
        }
    }
    let token = token.unwrap_or_else(|| *kept.iter().rev().find(|&&i| w[i] > 0.0).unwrap());
    let lse = m + sum.ln(); // m + log Z
    (token as i32, s[token] - lse, (s[token] - m) - big_w.ln())
}

fn assert_close(got: f32, want: f64, what: &str) {
    assert!(
        (got as f64 - want).abs() <= 2e-6 * (1.0 + want.abs()),
        "{what}: library {got}, reference {want}"
    );
}

#[test]
fn draws_follow_the_specification() {
    let m = load(2);
    let prompt = ids_for(12, 17, 9);
    let cases = [
        params(1.0, 0, 1),
        SamplingParams {
            top_k: 3,
            ..params(0.8, 0, 1)
        },
        SamplingParams {
            top_p: 0.3,
            ..params(1.0, 0, 1)
        },
        SamplingParams {
            top_p: 0.9,
            top_k: 50,
            min_p: 0.05,
            ..params(0.7, 0, 1)
        },
        SamplingParams {
            min_p: 0.2,
            ..params(1.5, 0, 1)
        },
        params(0.25, 0, 1),
    ];
    // one draw at the end of the prompt, for many seeds (including seeds above 2^32)
    let mut s = prefilled(&m, &prompt);
    let logits = s.logits();
    assert_eq!(logits.len(), VOCAB);
    let pos = prompt.len() as u64;
    for (ci, case) in cases.iter().enumerate() {
        for seed in (0..48u64).chain([1 << 32, u64::MAX, 0x1234_5678_9abc_def0]) {
            let p = SamplingParams {
                seed,
                ..case.clone()
            };
            let what = format!("case {ci} seed {seed:#x}");
            let r = s.sample(&p).unwrap();
            let (tok, scaled, processed) = reference_draw(&logits, &p, pos);
            assert_eq!(r.tokens, [tok], "{what}");
            assert_close(r.scaled_logprobs[0], scaled, &what);
            assert_close(r.processed_logprobs[0], processed, &what);
            s.truncate(prompt.len()).unwrap();
        }
    }
    // a whole trajectory: every position's draw from the logits at that position
    for (ci, case) in cases.iter().enumerate() {
        let p = SamplingParams {
            seed: 1000 + ci as u64,
            max_new_tokens: 24,
            ..case.clone()
        };
        let mut s = prefilled(&m, &prompt);
        let r = s.sample(&p).unwrap();
        assert_eq!(r.len(), 24);
        let mut t = prefilled(&m, &prompt);
        for (i, &tok) in r.tokens.iter().enumerate() {
            let what = format!("case {ci} token {i}");
            let (want, scaled, processed) =
                reference_draw(&t.logits(), &p, (prompt.len() + i) as u64);
            assert_eq!(tok, want, "{what}");
            assert_close(r.scaled_logprobs[i], scaled, &what);
            assert_close(r.processed_logprobs[i], processed, &what);
            t.append(&[tok], Logits::Last).unwrap();
        }
    }
}

// ---- the raw C calls: what the safe API cannot express ----------------------------------------

/// An output struct over `tokens` (as glm5_sample_output_init, then the arrays).
fn raw_output(tokens: &mut [i32]) -> glm5::sys::glm5_sample_output {
    glm5::sys::glm5_sample_output {
        struct_size: std::mem::size_of::<glm5::sys::glm5_sample_output>() as u32,
        finish_reason: 0,
        capacity: tokens.len(),
        tokens: tokens.as_mut_ptr(),
        logprobs: std::ptr::null_mut(),
        scaled_logprobs: std::ptr::null_mut(),
        processed_logprobs: std::ptr::null_mut(),
        top_ids: std::ptr::null_mut(),
        top_logprobs: std::ptr::null_mut(),
        n_tokens: 0,
        stop_token_id: -1,
        status: 0,
        weight_version: [0; glm5::sys::GLM5_WEIGHT_VERSION_SIZE],
    }
}

#[test]
fn raw_calls_guard_what_the_safe_api_cannot_express() {
    use glm5::sys;
    let m = load(2);
    let prompt = ids_for(5, 11, 3);
    let s = prefilled(&m, &prompt);
    let before = state(&s);

    // the same session twice in a batch (two &mut borrows in safe Rust): refused, nothing changes
    let h = [s.as_ptr(), s.as_ptr()];
    let mut toks = [[0i32; 8]; 2];
    let [t0, t1] = &mut toks;
    let mut outs = [raw_output(t0), raw_output(t1)];
    let out_ptrs: Vec<*mut sys::glm5_sample_output> =
        outs.iter_mut().map(|o| o as *mut _).collect();
    let raw = unsafe { sys::glm5_sample_batch(h.as_ptr(), 2, std::ptr::null(), out_ptrs.as_ptr()) };
    assert_eq!(Status::from_raw(raw), Status::InvalidArgument);
    assert!(
        glm5::last_error().contains("twice"),
        "{}",
        glm5::last_error()
    );
    assert_eq!(state(&s), before);
    let chunk = [4i32];
    let tp = [chunk.as_ptr(), chunk.as_ptr()];
    let lens = [1usize, 1];
    let raw = unsafe {
        sys::glm5_append_batch(
            h.as_ptr(),
            2,
            tp.as_ptr(),
            lens.as_ptr(),
            sys::GLM5_LOGITS_NONE,
            std::ptr::null(),
        )
    };
    assert_eq!(Status::from_raw(raw), Status::InvalidArgument);
    assert!(
        glm5::last_error().contains("twice"),
        "{}",
        glm5::last_error()
    );
    assert_eq!(state(&s), before);

    // struct_size: smaller than the first version is refused, a larger (newer) one accepted
    #[repr(C)]
    struct Newer {
        p: sys::glm5_sampling_params,
        tail: [u64; 4],
    }
    let d = SamplingParams::default();
    let p = sys::glm5_sampling_params {
        struct_size: 0,
        temperature: d.temperature,
        top_k: d.top_k,
        top_p: d.top_p,
        min_p: d.min_p,
        max_new_tokens: 8,
        seed: 5,
        stop_token_ids: std::ptr::null(),
        n_stop_token_ids: 0,
        ignore_eos: 1,
        n_top_logprobs: 0,
        speculative: 0,
    };
    let mut tokens = [0i32; 8];
    for size in [0u32, 4, 52] {
        let mut out = raw_output(&mut tokens);
        let q = sys::glm5_sampling_params {
            struct_size: size,
            ..p
        };
        let raw = unsafe { sys::glm5_session_sample(s.as_ptr(), &q, &mut out) };
        assert_eq!(
            Status::from_raw(raw),
            Status::InvalidArgument,
            "struct_size {size}"
        );
        assert!(
            glm5::last_error().contains("struct_size"),
            "{}",
            glm5::last_error()
        );
        assert_eq!(state(&s), before);
    }
    let newer = Newer {
        p: sys::glm5_sampling_params {
            struct_size: std::mem::size_of::<Newer>() as u32,
            ..p
        },
        tail: [u64::MAX; 4],
    };
    let mut out = raw_output(&mut tokens);
    let raw = unsafe { sys::glm5_session_sample(s.as_ptr(), &newer.p, &mut out) };
    assert_eq!(Status::from_raw(raw), Status::Ok, "{}", glm5::last_error());
    assert_eq!(out.n_tokens, 8);
    let want = prefilled(&m, &prompt).sample(&params(1.0, 5, 8)).unwrap();
    assert_eq!(tokens, want.tokens.as_slice());
    assert_eq!(newer.tail, [u64::MAX; 4]); // the unknown tail is ignored, not written

    // NULL params are the defaults
    let t = prefilled(&m, &prompt);
    let mut tokens = [0i32; 128];
    let mut out = raw_output(&mut tokens);
    let raw = unsafe { sys::glm5_session_sample(t.as_ptr(), std::ptr::null(), &mut out) };
    assert_eq!(Status::from_raw(raw), Status::Ok, "{}", glm5::last_error());
    let want = prefilled(&m, &prompt)
        .sample(&SamplingParams::default())
        .unwrap();
    assert_eq!(&tokens[..out.n_tokens], want.tokens.as_slice());
    assert_eq!(
        FinishReason::from_raw(out.finish_reason),
        Some(want.finish_reason)
    );
}
