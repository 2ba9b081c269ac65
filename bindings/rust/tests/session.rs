//! Sessions and scoring: against golden.safetensors, splits, truncation, bad inputs, lifetime,
//! threads.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;

use glm5::{Error, Logits, Model, ModelParams, Session, SessionParams, Status};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Tests/Fixtures")
}

/// The fixture models that carry golden.safetensors, sorted.
fn golden_fixtures() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(fixtures_dir())
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.join("config.json").is_file() && p.join("golden.safetensors").is_file()
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    assert!(
        !out.is_empty(),
        "no fixture with golden.safetensors under Tests/Fixtures"
    );
    out
}

/// tiny-dsa (sparse attention with a short index_topk) for the API tests.
fn api_fixture() -> PathBuf {
    let d = fixtures_dir().join("tiny-dsa");
    if d.join("config.json").is_file() {
        d
    } else {
        golden_fixtures().remove(0)
    }
}

fn load(dir: &Path, threads: usize) -> Model {
    Model::load(dir, &ModelParams { threads }).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

fn session(model: &Model) -> Session {
    model.session(&SessionParams::default()).unwrap()
}

// ---- a tiny safetensors reader (8-byte LE header length, JSON header, data) -------------------

/// The tensors of a small safetensors file whose entries are flat objects
/// `"name":{"dtype":"F32","shape":[...],"data_offsets":[begin,end]}`; F32 and I32 only.
struct Golden {
    data: Vec<u8>,
    tensors: HashMap<String, (String, Vec<usize>, usize, usize)>,
}

impl Golden {
    fn open(dir: &Path) -> Golden {
        let bytes = fs::read(dir.join("golden.safetensors")).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap().to_string();
        let data = bytes[8 + n..].to_vec();
        let mut tensors = HashMap::new();
        let mut rest = header.as_str();
        // Every entry: "name":{...}; the metadata entry has no data_offsets and is skipped.
        while let Some(q) = rest.find('"') {
            let after = &rest[q + 1..];
            let end = after.find('"').unwrap();
            let name = &after[..end];
            let tail = after[end + 1..].trim_start();
            let Some(obj) = tail.strip_prefix(':').map(str::trim_start) else {
                rest = &after[end + 1..];
                continue;
            };
            if !obj.starts_with('{') {
                rest = &after[end + 1..];
                continue;
            }
            let close = obj.find('}').unwrap();
            let body = &obj[..close];
            rest = &obj[close + 1..];
            if name == "__metadata__" {
                continue;
            }
            let dtype = string_after(body, "\"dtype\"");
            let shape = numbers_after(body, "\"shape\"");
            let offsets = numbers_after(body, "\"data_offsets\"");
            assert_eq!(offsets.len(), 2, "{name}");
            tensors.insert(name.to_string(), (dtype, shape, offsets[0], offsets[1]));
        }
        Golden { data, tensors }
    }

    fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    fn raw(&self, name: &str, dtype: &str) -> (&[u8], &[usize]) {
        let (d, shape, begin, end) = self
            .tensors
            .get(name)
            .unwrap_or_else(|| panic!("no tensor {name}"));
        assert_eq!(d, dtype, "{name}");
        assert_eq!((end - begin) / 4, shape.iter().product::<usize>(), "{name}");
        (&self.data[*begin..*end], shape)
    }

    fn f32s(&self, name: &str) -> (Vec<f32>, Vec<usize>) {
        let (b, shape) = self.raw(name, "F32");
        (
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            shape.to_vec(),
        )
    }

    fn i32s(&self, name: &str) -> Vec<i32> {
        let (b, _) = self.raw(name, "I32");
        b.chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    /// (tokens, logits [T*V], logprobs [T]) of seq0, seq1, ...
    fn sequences(&self) -> Vec<(Vec<i32>, Vec<f32>, Vec<f32>)> {
        let mut out = Vec::new();
        let mut i = 0;
        while self.has(&format!("seq{i}.tokens")) {
            let tokens = self.i32s(&format!("seq{i}.tokens"));
            let (logits, shape) = self.f32s(&format!("seq{i}.logits"));
            assert_eq!(shape[0], tokens.len());
            let (logprobs, _) = self.f32s(&format!("seq{i}.logprobs"));
            out.push((tokens, logits, logprobs));
            i += 1;
        }
        assert!(!out.is_empty());
        out
    }
}

fn string_after(body: &str, key: &str) -> String {
    let at = body.find(key).unwrap() + key.len();
    let rest = body[at..]
        .trim_start()
        .strip_prefix(':')
        .unwrap()
        .trim_start();
    let rest = rest.strip_prefix('"').unwrap();
    rest[..rest.find('"').unwrap()].to_string()
}

fn numbers_after(body: &str, key: &str) -> Vec<usize> {
    let at = body.find(key).unwrap() + key.len();
    let rest = body[at..]
        .trim_start()
        .strip_prefix(':')
        .unwrap()
        .trim_start();
    let rest = rest.strip_prefix('[').unwrap();
    let list = &rest[..rest.find(']').unwrap()];
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect()
}

// ---- comparisons --------------------------------------------------------------------------------

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, |m, d| if d.is_nan() || d > m { d } else { m })
}

/// Bitwise equality (NaN equal to the same NaN).
fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
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

/// What a host can observe of a session.
fn state(s: &Session) -> (usize, Vec<i32>, Vec<u32>) {
    (s.n_tokens(), s.tokens(), bits(&s.logits()))
}

fn ids_for(vocab: usize, n: usize, mul: usize, add: usize) -> Vec<i32> {
    (0..n).map(|i| ((i * mul + add) % vocab) as i32).collect()
}

// ---- against the goldens -------------------------------------------------------------------------

#[test]
fn score_matches_golden() {
    for dir in golden_fixtures() {
        let g = Golden::open(&dir);
        let m = load(&dir, 2);
        for (tokens, _, logprobs) in g.sequences() {
            let lp = m.score(&tokens).unwrap();
            assert_eq!(lp.len(), tokens.len());
            assert!(lp[0].is_nan() && logprobs[0].is_nan());
            let d = max_abs_diff(&lp[1..], &logprobs[1..]);
            assert!(d <= 1e-4, "{}: |score - golden| = {d}", dir.display());
        }
    }
}

#[test]
fn append_matches_golden() {
    for dir in golden_fixtures() {
        let g = Golden::open(&dir);
        let m = load(&dir, 2);
        let v = m.info().vocab_size as usize;
        for (tokens, logits, _) in g.sequences() {
            let mut s = session(&m);
            assert_eq!(s.vocab_size(), v);
            let all = s.append(&tokens, Logits::All).unwrap();
            assert_eq!(all.len(), tokens.len() * v);
            let d = max_abs_diff(&all, &logits);
            assert!(d <= 5e-4, "{}: |logits - golden| = {d}", dir.display());
            assert_eq!(bits(&s.logits()), bits(&all));

            let mut t = session(&m);
            let last = t.append(&tokens, Logits::Last).unwrap();
            assert_eq!(bits(&last), bits(&all[(tokens.len() - 1) * v..]));
            let mut u = session(&m);
            assert!(u.append(&tokens, Logits::None).unwrap().is_empty());
            let mut w = session(&m);
            let (none, lp) = w.append_with_logprobs(&tokens, Logits::None).unwrap();
            assert!(none.is_empty());
            assert_eq!(bits(&lp), bits(&m.score(&tokens).unwrap()));
        }
    }
}

#[test]
fn chunked_appends_equal_one_append() {
    for dir in golden_fixtures() {
        let g = Golden::open(&dir);
        let m = load(&dir, 2);
        for (tokens, _, _) in g.sequences() {
            let mut one = session(&m);
            let (logits1, lp1) = one.append_with_logprobs(&tokens, Logits::All).unwrap();
            for split in [&[1usize][..], &[2, 3], &[5, 1, 7], &[4]] {
                let mut s = session(&m);
                let (mut logits, mut lp) = (Vec::new(), Vec::new());
                let (mut at, mut k) = (0, 0);
                while at < tokens.len() {
                    let n = split[k % split.len()].min(tokens.len() - at);
                    k += 1;
                    let (l, p) = s
                        .append_with_logprobs(&tokens[at..at + n], Logits::All)
                        .unwrap();
                    logits.extend(l);
                    lp.extend(p);
                    at += n;
                }
                assert_eq!(
                    bits(&logits),
                    bits(&logits1),
                    "{} split {split:?}",
                    dir.display()
                );
                assert_eq!(bits(&lp), bits(&lp1), "{} split {split:?}", dir.display());
                assert_eq!(s.tokens(), tokens);
            }
        }
    }
}

#[test]
fn generate_matches_golden() {
    for dir in golden_fixtures() {
        let g = Golden::open(&dir);
        let prompt = g.i32s("greedy.prompt");
        let want = g.i32s("greedy.tokens");
        let (want_lp, _) = g.f32s("greedy.logprobs");
        let m = load(&dir, 2);
        let mut s = session(&m);
        s.append(&prompt, Logits::None).unwrap();
        let (ids, lp) = s.generate(want.len()).unwrap();
        assert_eq!(ids, want, "{}", dir.display());
        let d = max_abs_diff(&lp, &want_lp);
        assert!(d <= 1e-4, "{}: |logprob - golden| = {d}", dir.display());
        assert_eq!(s.n_tokens(), prompt.len() + want.len());
        let all: Vec<i32> = prompt.iter().chain(&want).copied().collect();
        assert_eq!(s.tokens(), all);
        // the generated logprobs are what scoring the whole sequence says, bit for bit
        assert_eq!(bits(&m.score(&all).unwrap()[prompt.len()..]), bits(&lp));
        // one at a time is the same as all at once
        s.truncate(prompt.len()).unwrap();
        for i in 0..want.len() {
            let (t, l) = s.generate(1).unwrap();
            assert_eq!(t[0], want[i]);
            assert_eq!(l[0].to_bits(), lp[i].to_bits());
        }
    }
}

#[test]
fn truncate_and_reappend() {
    for dir in golden_fixtures() {
        let g = Golden::open(&dir);
        let m = load(&dir, 2);
        let v = m.info().vocab_size as usize;
        for (tokens, _, _) in g.sequences() {
            let t = tokens.len();
            let mut s = session(&m);
            let (logits1, lp1) = s.append_with_logprobs(&tokens, Logits::All).unwrap();
            let mut keeps = vec![0, 1, t / 3, t / 2, t - 1];
            keeps.dedup();
            for keep in keeps {
                s.truncate(keep).unwrap();
                assert_eq!(s.n_tokens(), keep);
                assert_eq!(s.tokens(), &tokens[..keep]);
                assert!(s.logits().is_empty());
                let (l, p) = s
                    .append_with_logprobs(&tokens[keep..], Logits::All)
                    .unwrap();
                assert_eq!(bits(&l), bits(&logits1[keep * v..]));
                assert_eq!(bits(&p), bits(&lp1[keep..]));
            }
            // a divergent tail, truncated away, leaves no trace
            s.truncate(t / 2).unwrap();
            s.append(&[0, 1, 2], Logits::None).unwrap();
            s.truncate(t / 2).unwrap();
            let (l, p) = s
                .append_with_logprobs(&tokens[t / 2..], Logits::All)
                .unwrap();
            assert_eq!(bits(&l), bits(&logits1[(t / 2) * v..]));
            assert_eq!(bits(&p), bits(&lp1[t / 2..]));
        }
    }
}

// ---- the API -------------------------------------------------------------------------------------

#[test]
fn session_basics() {
    let m = load(&api_fixture(), 2);
    let info = m.info();
    let v = info.vocab_size as usize;
    let mut s = session(&m);
    assert_eq!(s.max_tokens(), info.max_position_embeddings as usize);
    assert_eq!(s.n_tokens(), 0);
    assert!(s.tokens().is_empty() && s.logits().is_empty());
    assert_eq!(s.append(&[1, 2, 3], Logits::Last).unwrap().len(), v);
    assert_eq!(s.tokens(), [1, 2, 3]);
    assert_eq!(s.logits().len(), v);
    assert_eq!(s.append(&[4, 5], Logits::All).unwrap().len(), 2 * v);
    assert!(s.append(&[6], Logits::None).unwrap().is_empty());
    assert!(s.logits().is_empty());
    let (ids, lp) = s.generate(0).unwrap();
    assert!(ids.is_empty() && lp.is_empty());
    let (ids, lp) = s.generate(2).unwrap();
    assert!(ids.iter().all(|&t| t >= 0 && (t as usize) < v));
    assert!(lp.iter().all(|&l| l <= 0.0));
    assert!(s.logits().is_empty()); // generate clears the kept logits
    assert_eq!(s.n_tokens(), 8);
    let shown = format!("{s:?}");
    assert!(
        shown.contains("Session") && shown.contains("n_tokens: 8"),
        "{shown}"
    );
}

#[test]
fn bad_ids_leave_the_session_unchanged() {
    let m = load(&api_fixture(), 2);
    let v = m.info().vocab_size as i32;
    let mut s = session(&m);
    s.append(&[3, 1, 4, 1, 5], Logits::All).unwrap();
    let before = state(&s);
    for (bad, index, value) in [
        (vec![1, 2, -1], 2, -1),
        (vec![1, v, 2], 1, v),
        (vec![i32::MIN], 0, i32::MIN),
    ] {
        for keep in [Logits::None, Logits::Last, Logits::All] {
            let e = assert_err(
                s.append(&bad, keep),
                Status::InvalidArgument,
                &format!("index {index}"),
            );
            assert!(e.message.contains(&value.to_string()), "{e}");
            assert_eq!(state(&s), before);
            assert_err(
                s.append_with_logprobs(&bad, keep),
                Status::InvalidArgument,
                &format!("index {index}"),
            );
            assert_eq!(state(&s), before);
        }
        assert_err(
            m.score(&bad),
            Status::InvalidArgument,
            &format!("index {index}"),
        );
    }
    assert_err(
        s.append(&[], Logits::Last),
        Status::InvalidArgument,
        "n_tokens",
    );
    assert_err(
        s.append_with_logprobs(&[], Logits::None),
        Status::InvalidArgument,
        "n_tokens",
    );
    assert_eq!(state(&s), before);
    assert_err(m.score(&[]), Status::InvalidArgument, "n_tokens");
    // still usable: the caches are intact
    let (_, lp) = s.append_with_logprobs(&[7], Logits::None).unwrap();
    let all: Vec<i32> = before.1.iter().copied().chain([7]).collect();
    assert_eq!(lp[0].to_bits(), m.score(&all).unwrap()[5].to_bits());
}

#[test]
fn context_full() {
    let m = load(&api_fixture(), 2);
    let info = m.info();
    let v = info.vocab_size as usize;
    let ids = ids_for(v, 9, 7, 3);
    let mut s = m
        .session(&SessionParams {
            max_tokens: 6,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(s.max_tokens(), 6);
    s.append(&ids[..4], Logits::Last).unwrap();
    let before = state(&s);
    assert_err(s.append(&ids[4..7], Logits::All), Status::ContextFull, "6");
    assert_eq!(state(&s), before);
    assert_err(s.generate(3), Status::ContextFull, "6");
    assert_eq!(state(&s), before); // checked before anything is generated
    assert_err(s.generate(usize::MAX), Status::ContextFull, "6"); // and no huge allocation
    assert_eq!(state(&s), before);
    // still usable, up to exactly 6
    let (_, lp) = s.generate(1).unwrap();
    let (_, lp2) = s.append_with_logprobs(&ids[5..6], Logits::None).unwrap();
    assert_eq!(s.n_tokens(), 6);
    let whole = m.score(&s.tokens()).unwrap();
    assert_eq!(lp[0].to_bits(), whole[4].to_bits());
    assert_eq!(lp2[0].to_bits(), whole[5].to_bits());
    assert_err(s.append(&[1], Logits::None), Status::ContextFull, "");
    assert_err(s.generate(1), Status::ContextFull, "");
    s.truncate(5).unwrap();
    s.append(&[1], Logits::None).unwrap();

    let p = info.max_position_embeddings as usize;
    let long = ids_for(v, p + 1, 7, 3);
    assert_err(m.score(&long), Status::ContextFull, "");
    assert_eq!(m.score(&long[..p]).unwrap().len(), p);
}

#[test]
fn session_params() {
    let m = load(&api_fixture(), 2);
    let p = m.info().max_position_embeddings as usize;
    assert_err(
        m.session(&SessionParams {
            max_tokens: p + 1,
            ..Default::default()
        }),
        Status::InvalidArgument,
        "max_tokens",
    );
    assert_err(
        m.session(&SessionParams {
            max_tokens: u32::MAX as usize,
            ..Default::default()
        }),
        Status::InvalidArgument,
        "max_tokens",
    );
    assert_err(
        m.session(&SessionParams {
            max_tokens: usize::MAX,
            ..Default::default()
        }),
        Status::InvalidArgument,
        "max_tokens",
    );
    for (arg, want) in [(0, p), (p, p), (1, 1)] {
        assert_eq!(
            m.session(&SessionParams {
                max_tokens: arg,
                ..Default::default()
            })
            .unwrap()
            .max_tokens(),
            want
        );
    }
}

#[test]
fn generate_and_truncate_arguments() {
    let m = load(&api_fixture(), 2);
    let mut s = session(&m);
    assert_err(s.generate(2), Status::InvalidArgument, "token"); // empty session
    assert_eq!(s.n_tokens(), 0);
    s.append(&[1, 2, 3, 4], Logits::All).unwrap();
    let before = state(&s);
    assert_err(s.truncate(5), Status::InvalidArgument, "5");
    assert_eq!(state(&s), before);
    assert_err(s.truncate(usize::MAX), Status::InvalidArgument, "n_tokens");
    assert_eq!(state(&s), before);
    s.truncate(0).unwrap();
    assert_eq!(s.n_tokens(), 0);
    assert_err(s.generate(1), Status::InvalidArgument, "token");
}

// ---- lifetime ------------------------------------------------------------------------------------

#[test]
fn session_outlives_its_model() {
    let m = load(&api_fixture(), 2);
    let v = m.info().vocab_size as usize;
    let ids = ids_for(v, 12, 5, 2);
    let want = m.score(&ids).unwrap();
    let mut s = session(&m);
    let mut s2 = session(&m);
    s.append(&ids[..4], Logits::None).unwrap();
    drop(m);
    let (_, lp) = s.append_with_logprobs(&ids[4..], Logits::All).unwrap();
    assert_eq!(bits(&lp), bits(&want[4..]));
    let (g1, _) = s.generate(3).unwrap();
    s.truncate(12).unwrap();
    assert_eq!(s.generate(3).unwrap().0, g1);
    drop(s);
    let (_, lp) = s2.append_with_logprobs(&ids, Logits::Last).unwrap();
    assert_eq!(bits(&lp), bits(&want));
}

/// A session made in a function that only borrows its model, returned after the model is gone.
fn session_without_model(dir: &Path) -> Session {
    let m = load(dir, 1);
    m.session(&SessionParams::default()).unwrap()
}

#[test]
fn session_is_not_tied_to_the_model_borrow() {
    let mut s = session_without_model(&api_fixture());
    s.append(&[1, 2, 3], Logits::Last).unwrap();
    assert_eq!(s.generate(2).unwrap().0.len(), 2);
}

#[test]
fn freed_session_handle_is_refused_by_the_library() {
    let m = load(&api_fixture(), 1);
    let s = session(&m);
    let raw = s.as_ptr();
    drop(s);
    let mut n = 99usize;
    let status = unsafe { glm5::sys::glm5_session_n_tokens(raw, &mut n) };
    assert_eq!(Status::from_raw(status), Status::InvalidArgument);
    assert!(glm5::last_error().contains("session"));
    assert_eq!(n, 99);
}

// ---- threads -------------------------------------------------------------------------------------

#[test]
fn session_is_send_not_sync() {
    fn assert_send<T: Send>() {}
    assert_send::<Session>();
    // Not Sync: if Session were Sync, `<Session as NotSync<_>>::check` would be ambiguous and
    // this would not compile.
    trait NotSync<A> {
        fn check() {}
    }
    impl<T: ?Sized> NotSync<()> for T {}
    struct IsSync;
    impl<T: ?Sized + Sync> NotSync<IsSync> for T {}
    <Session as NotSync<_>>::check();
}

#[test]
fn sessions_move_between_threads() {
    let m = load(&api_fixture(), 2);
    let v = m.info().vocab_size as usize;
    let ids = ids_for(v, 10, 3, 1);
    let want = m.score(&ids).unwrap();
    let mut s = session(&m);
    s.append(&ids[..5], Logits::None).unwrap();
    let s = thread::spawn(move || {
        let mut s = s;
        let (_, lp) = s.append_with_logprobs(&ids[5..], Logits::None).unwrap();
        (s, lp)
    });
    let (s, lp) = s.join().unwrap();
    assert_eq!(bits(&lp), bits(&want[5..]));
    assert_eq!(s.n_tokens(), 10);
}

#[test]
fn one_model_many_sessions_in_threads() {
    let m = Arc::new(load(&api_fixture(), 2));
    let v = m.info().vocab_size as usize;
    let ids = Arc::new(ids_for(v, 24, 11, 3));
    let want = Arc::new(bits(&m.score(&ids).unwrap()));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (m, ids, want) = (Arc::clone(&m), Arc::clone(&ids), Arc::clone(&want));
            thread::spawn(move || {
                for _ in 0..3 {
                    assert_eq!(bits(&m.score(&ids).unwrap()), *want);
                    let mut s = m.session(&SessionParams::default()).unwrap();
                    let (_, mut a) = s.append_with_logprobs(&ids[..10], Logits::None).unwrap();
                    let (_, b) = s.append_with_logprobs(&ids[10..], Logits::Last).unwrap();
                    a.extend(b);
                    assert_eq!(bits(&a), *want);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn thread_count_does_not_change_results() {
    let dir = api_fixture();
    let (m1, m2) = (load(&dir, 1), load(&dir, 2));
    let ids = ids_for(m1.info().vocab_size as usize, 20, 13, 5);
    assert_eq!(
        bits(&m1.score(&ids).unwrap()),
        bits(&m2.score(&ids).unwrap())
    );
    let (mut a, mut b) = (session(&m1), session(&m2));
    assert_eq!(
        bits(&a.append(&ids, Logits::All).unwrap()),
        bits(&b.append(&ids, Logits::All).unwrap())
    );
    let (ga, gb) = (a.generate(5).unwrap(), b.generate(5).unwrap());
    assert_eq!(ga.0, gb.0);
    assert_eq!(bits(&ga.1), bits(&gb.1));
}
