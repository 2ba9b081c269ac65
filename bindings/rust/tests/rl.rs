//! The RL surface of the C API 0.2 through the safe API: the routing record and its replay
//! (R3), weight updates (folder, slime delta, tensor by tensor) and their versions, saving and
//! restoring sessions. Against the fixtures in Tests/Fixtures: tiny-dsa and tiny-dsa-v2 (the
//! same configuration, other weights), deltas/*/weight_v000001 (slime delta folders from v1 to
//! v2), tiny-int4-g32(-v2) and glm5-quantized/{int4,source,source-v2}.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use glm5::{
    DType, Error, Logits, Model, ModelParams, RecordShape, Replay, SampleResult, SamplingParams,
    Session, SessionParams, Status, Tensor, WeightUpdate,
};

// ---- helpers ---------------------------------------------------------------------------------

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Tests/Fixtures")
}

fn fixture(name: &str) -> PathBuf {
    fixtures_dir().join(name)
}

fn load(name: &str) -> Model {
    Model::load(fixture(name), &ModelParams { threads: 2 })
        .unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

const SEQ: [i32; 16] = [3, 41, 7, 200, 15, 9, 77, 120, 5, 64, 31, 2, 250, 18, 99, 42];

/// SEQ within a vocabulary of `vocab` ids.
fn seq_for(m: &Model) -> Vec<i32> {
    let v = m.info().vocab_size as i32;
    SEQ.iter().map(|t| t % v).collect()
}

fn recording(m: &Model, max_bytes: u64) -> Session {
    m.session(&SessionParams {
        record: true,
        record_max_bytes: max_bytes,
        ..Default::default()
    })
    .unwrap()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Equal bit for bit where finite or infinite; NaN exactly where the other is NaN.
fn assert_same_bits(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        if x.is_nan() || y.is_nan() {
            assert!(x.is_nan() && y.is_nan(), "{what}[{i}]: {x} vs {y}");
        } else {
            assert_eq!(x.to_bits(), y.to_bits(), "{what}[{i}]: {x} vs {y}");
        }
    }
}

fn assert_err<T: std::fmt::Debug>(r: Result<T, Error>, status: Status, needle: &str) -> Error {
    match r {
        Ok(v) => panic!("expected {status:?} ({needle:?}), got Ok({v:?})"),
        Err(e) => {
            assert_eq!(e.status, status, "{e}");
            assert!(
                e.message.contains(needle),
                "message {:?} does not contain {needle:?}",
                e.message
            );
            e
        }
    }
}

fn sampling(seed: u64, n: usize) -> SamplingParams {
    SamplingParams {
        temperature: 0.9,
        seed,
        max_new_tokens: n,
        ignore_eos: true,
        top_logprobs: 2,
        ..Default::default()
    }
}

/// What a model computes, to compare two models bit for bit: the scored logprobs of a sequence,
/// every row of its logits, and a sampled continuation.
#[derive(Debug, PartialEq)]
struct Fingerprint {
    score: Vec<u32>,
    logits: Vec<u32>,
    sampled: Vec<i32>,
    sampled_logprobs: Vec<u32>,
}

fn fingerprint(m: &Model) -> Fingerprint {
    let seq = seq_for(m);
    let score = bits(&m.score(&seq).unwrap());
    let mut s = m.session(&SessionParams::default()).unwrap();
    let logits = bits(&s.append(&seq, Logits::All).unwrap());
    let r = s.sample(&sampling(3, 6)).unwrap();
    Fingerprint {
        score,
        logits,
        sampled: r.tokens,
        sampled_logprobs: bits(&r.scaled_logprobs),
    }
}

fn session_state(s: &Session) -> (Vec<i32>, Option<usize>) {
    (s.tokens(), s.record_info().map(|r| r.n_tokens))
}

/// A fresh empty folder under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "glm5-rust-rl-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

// ---- a minimal safetensors reader (for the tensor-by-tensor updates) -------------------------

#[derive(Debug)]
enum Json {
    Null,
    Bool(#[allow(dead_code)] bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(BTreeMap<String, Json>),
}

struct JsonParser<'a> {
    b: &'a [u8],
    i: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self.i < self.b.len() && self.b[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) {
        self.ws();
        assert_eq!(
            self.b[self.i], c,
            "JSON: expected {:?} at {}",
            c as char, self.i
        );
        self.i += 1;
    }

    fn string(&mut self) -> String {
        self.eat(b'"');
        let mut out = Vec::new();
        loop {
            let c = self.b[self.i];
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = self.b[self.i];
                    self.i += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let hex = std::str::from_utf8(&self.b[self.i..self.i + 4]).unwrap();
                            let ch = char::from_u32(u32::from_str_radix(hex, 16).unwrap()).unwrap();
                            self.i += 4;
                            out.extend(ch.to_string().bytes());
                        }
                        other => out.push(other),
                    }
                }
                other => out.push(other),
            }
        }
        String::from_utf8(out).unwrap()
    }

    fn value(&mut self) -> Json {
        self.ws();
        match self.b[self.i] {
            b'{' => {
                self.i += 1;
                let mut m = BTreeMap::new();
                self.ws();
                if self.b[self.i] == b'}' {
                    self.i += 1;
                    return Json::Obj(m);
                }
                loop {
                    let k = self.string();
                    self.eat(b':');
                    m.insert(k, self.value());
                    self.ws();
                    self.i += 1;
                    if self.b[self.i - 1] == b'}' {
                        return Json::Obj(m);
                    }
                }
            }
            b'[' => {
                self.i += 1;
                let mut v = Vec::new();
                self.ws();
                if self.b[self.i] == b']' {
                    self.i += 1;
                    return Json::Arr(v);
                }
                loop {
                    v.push(self.value());
                    self.ws();
                    self.i += 1;
                    if self.b[self.i - 1] == b']' {
                        return Json::Arr(v);
                    }
                }
            }
            b'"' => Json::Str(self.string()),
            b't' => {
                self.i += 4;
                Json::Bool(true)
            }
            b'f' => {
                self.i += 5;
                Json::Bool(false)
            }
            b'n' => {
                self.i += 4;
                Json::Null
            }
            _ => {
                let start = self.i;
                while self.i < self.b.len() && b"+-.eE0123456789".contains(&self.b[self.i]) {
                    self.i += 1;
                }
                Json::Num(
                    std::str::from_utf8(&self.b[start..self.i])
                        .unwrap()
                        .parse()
                        .unwrap(),
                )
            }
        }
    }
}

/// One tensor of a safetensors file.
struct FileTensor {
    name: String,
    dtype: DType,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl FileTensor {
    fn as_tensor(&self) -> Tensor<'_> {
        Tensor {
            name: &self.name,
            dtype: self.dtype,
            shape: &self.shape,
            data: &self.data,
        }
    }
}

fn dtype_named(name: &str) -> DType {
    *DType::ALL
        .iter()
        .find(|d| d.name() == name)
        .unwrap_or_else(|| panic!("dtype {name}"))
}

/// Every tensor of the weight files (model*.safetensors) of a folder, sorted by name.
fn read_weights(folder: &Path) -> Vec<FileTensor> {
    let mut files: Vec<PathBuf> = fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with("model") && n.ends_with(".safetensors")
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no weight files in {}", folder.display());
    let mut out = Vec::new();
    for f in files {
        let b = fs::read(&f).unwrap();
        let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
        let Json::Obj(header) = (JsonParser {
            b: &b[8..8 + n],
            i: 0,
        })
        .value() else {
            panic!("{}: header is not an object", f.display())
        };
        let data = &b[8 + n..];
        for (name, v) in header {
            if name == "__metadata__" {
                continue;
            }
            let Json::Obj(t) = v else { panic!("{name}") };
            let (Some(Json::Str(dt)), Some(Json::Arr(shape)), Some(Json::Arr(offs))) =
                (t.get("dtype"), t.get("shape"), t.get("data_offsets"))
            else {
                panic!("{name}: not a tensor entry")
            };
            let num = |j: &Json| match j {
                Json::Num(x) => *x as usize,
                _ => panic!("{name}: not a number"),
            };
            out.push(FileTensor {
                name: name.clone(),
                dtype: dtype_named(dt),
                shape: shape.iter().map(num).collect(),
                data: data[num(&offs[0])..num(&offs[1])].to_vec(),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

// ---- the routing record ----------------------------------------------------------------------

#[test]
fn sampled_and_scored_records_are_equal() {
    let m = load("tiny-dsa");
    let info = m.info();
    let shape = info.record_shape();
    assert_eq!(
        shape,
        RecordShape {
            n_layers: 3,
            index_topk: 6,
            n_moe_layers: 2,
            n_experts_per_tok: 4
        }
    );

    // Sample on a recording session ...
    let mut a = recording(&m, 0);
    assert_eq!(a.record_shape(), shape);
    a.append(&SEQ[..6], Logits::None).unwrap();
    let r = a.sample(&sampling(9, 10)).unwrap();
    assert_eq!(r.len(), 10);
    assert_eq!(r.weight_version, "default");
    let all = a.tokens();
    assert_eq!(all.len(), 16);

    let ri = a.record_info().expect("a records");
    assert_eq!(ri.n_tokens, 16);
    assert_eq!(ri.shape(), shape);
    assert_eq!(ri.bytes_per_token, shape.bytes_per_token());
    assert_eq!(ri.bytes_per_token, 4 * 3 * 6 + 8 * 2 * 4);
    assert!(ri.bytes >= 16 * ri.bytes_per_token);
    assert_eq!(ri.max_bytes, 1 << 30);

    let rec = a.recorded().unwrap();
    assert_eq!(rec.n_tokens, 16);
    assert_eq!(rec.topk.len(), 16 * shape.topk_per_token());
    assert_eq!(rec.expert_ids.len(), 16 * shape.routes_per_token());
    assert_eq!(rec.expert_weights.len(), 16 * shape.routes_per_token());
    assert_eq!(rec.topk, a.recorded_topk().unwrap());
    let (ids, w) = a.recorded_routes().unwrap();
    assert_eq!(
        (&ids, bits(&w)),
        (&rec.expert_ids, bits(&rec.expert_weights))
    );

    // The layouts: before position index_topk - 1, every earlier key then -1 padding; after,
    // exactly index_topk ascending keys. Routes: k distinct ascending ids, finite weights.
    let (lk, k) = (shape.topk_per_token(), shape.index_topk);
    for t in 0..16 {
        for l in 0..shape.n_layers {
            let row = &rec.topk[t * lk + l * k..t * lk + (l + 1) * k];
            let n_keys = (t + 1).min(k);
            assert_eq!(
                row[..n_keys].iter().filter(|&&x| x >= 0).count(),
                n_keys,
                "token {t} layer {l}: {row:?}"
            );
            assert!(row[n_keys..].iter().all(|&x| x == -1), "{row:?}");
            assert!(row[..n_keys].windows(2).all(|p| p[0] < p[1]), "{row:?}");
            assert!(row[..n_keys].iter().all(|&x| x as usize <= t), "{row:?}");
        }
    }
    for route in rec.expert_ids.chunks(shape.n_experts_per_tok) {
        assert!(route.windows(2).all(|p| p[0] < p[1]), "{route:?}");
        assert!(route
            .iter()
            .all(|&e| (0..info.n_routed_experts as i32).contains(&e)));
    }
    assert!(rec.expert_weights.iter().all(|w| w.is_finite()));

    // ... and score the trajectory on another: the same record, bit for bit.
    let mut b = recording(&m, 0);
    b.append(&all, Logits::None).unwrap();
    let rec_b = b.recorded().unwrap();
    assert_eq!(rec_b.topk, rec.topk);
    assert_eq!(rec_b.expert_ids, rec.expert_ids);
    assert_eq!(bits(&rec_b.expert_weights), bits(&rec.expert_weights));
    // in pieces, too
    let mut c = recording(&m, 0);
    for chunk in all.chunks(5) {
        c.append(chunk, Logits::Last).unwrap();
    }
    assert_eq!(c.recorded().unwrap(), rec);

    // Ranges; beyond the record.
    assert_eq!(
        a.recorded_topk_range(10..16).unwrap(),
        rec.topk[10 * lk..].to_vec()
    );
    assert_eq!(a.recorded_range(3..3).unwrap().topk, Vec::<i32>::new());
    assert_err(
        a.recorded_topk_range(10..17),
        Status::InvalidArgument,
        "beyond the 16 recorded",
    );
    assert_err(
        a.recorded_routes_range(0..17),
        Status::InvalidArgument,
        "beyond",
    );
    #[allow(clippy::reversed_empty_ranges)]
    let reversed = a.recorded_topk_range(5..4);
    assert_err(reversed, Status::InvalidArgument, "reversed");

    // The record follows forks and truncation.
    let mut f = a.fork().unwrap();
    assert_eq!(f.recorded().unwrap(), rec);
    f.append(&[5], Logits::None).unwrap();
    assert_eq!(f.record_info().unwrap().n_tokens, 17);
    assert_eq!(f.recorded_range(0..16).unwrap(), rec);
    a.truncate(7).unwrap();
    assert_eq!(a.record_info().unwrap().n_tokens, 7);
    assert_eq!(a.recorded().unwrap(), rec.replay_range_owned(0..7));

    // A session that does not record.
    let mut plain = m.session(&SessionParams::default()).unwrap();
    plain.append(&SEQ[..3], Logits::None).unwrap();
    assert_eq!(plain.record_info(), None);
    assert_err(
        plain.recorded_topk(),
        Status::InvalidArgument,
        "does not record",
    );
    assert_err(
        plain.recorded_routes(),
        Status::InvalidArgument,
        "does not record",
    );
    assert_err(plain.recorded(), Status::InvalidArgument, "does not record");
}

/// `Recorded` restricted to a token range, as an owned value (test helper).
trait RangeOwned {
    fn replay_range_owned(&self, r: std::ops::Range<usize>) -> glm5::Recorded;
}

impl RangeOwned for glm5::Recorded {
    fn replay_range_owned(&self, r: std::ops::Range<usize>) -> glm5::Recorded {
        let p = self.replay_range(r.clone());
        glm5::Recorded {
            n_tokens: r.len(),
            shape: self.shape,
            topk: p.topk.unwrap().to_vec(),
            expert_ids: p.expert_ids.unwrap().to_vec(),
            expert_weights: p.expert_weights.unwrap().to_vec(),
        }
    }
}

#[test]
fn record_full() {
    let m = load("tiny-dsa");
    let per_token = m.info().record_shape().bytes_per_token();
    let mut s = recording(&m, 4 * per_token);
    assert_eq!(s.record_info().unwrap().max_bytes, 4 * per_token);
    let e = assert_err(
        s.append(&SEQ[..5], Logits::None),
        Status::RecordFull,
        "record bound",
    );
    assert!(e.to_string().starts_with("record full"), "{e}");
    assert_eq!(session_state(&s), (vec![], Some(0)));
    s.append(&SEQ[..4], Logits::None).unwrap();
    assert_eq!(session_state(&s), (SEQ[..4].to_vec(), Some(4)));
    // Sampling one more token would pass the bound: refused before anything changes.
    assert_err(s.sample(&sampling(1, 1)), Status::RecordFull, "");
    assert_err(s.append(&SEQ[4..5], Logits::Last), Status::RecordFull, "");
    assert_eq!(session_state(&s), (SEQ[..4].to_vec(), Some(4)));
    // Truncating frees room.
    s.truncate(3).unwrap();
    s.sample(&sampling(1, 1)).unwrap();
    assert_eq!(s.record_info().unwrap().n_tokens, 4);
    // The bound does not apply to sessions that do not record.
    let mut p = m
        .session(&SessionParams {
            record_max_bytes: 1,
            ..Default::default()
        })
        .unwrap();
    p.append(&SEQ, Logits::None).unwrap();
}

// ---- replay ----------------------------------------------------------------------------------

#[test]
fn replay_reproduces_scoring_bit_for_bit() {
    let m = load("tiny-dsa");
    let mut a = recording(&m, 0);
    a.append(&SEQ[..6], Logits::None).unwrap();
    let sampled = a.sample(&sampling(9, 10)).unwrap();
    let all = a.tokens();
    let rec = a.recorded().unwrap();

    let plain = m.score(&all).unwrap();
    assert!(plain[0].is_nan());
    // the sampled tokens' logprobs are the scored ones
    assert_same_bits(&plain[6..], &sampled.logprobs, "sampled vs score");

    let full = rec.replay();
    let (raw, scaled) = m.score_replay(&all, &full, 1.0).unwrap();
    assert!(raw[0].is_nan() && scaled[0].is_nan());
    assert_same_bits(&raw, &plain, "replay(all) vs score");
    assert_same_bits(&scaled, &plain, "scaled at temperature 1");
    // ids only (the router weighs them), selections only, routes only
    for (what, r) in [
        (
            "ids only",
            Replay {
                expert_weights: None,
                ..full
            },
        ),
        (
            "topk only",
            Replay {
                topk: full.topk,
                ..Default::default()
            },
        ),
        ("routes only", Replay { topk: None, ..full }),
        ("nothing", Replay::default()),
    ] {
        let (raw, _) = m.score_replay(&all, &r, 1.0).unwrap();
        assert_same_bits(&raw, &plain, what);
    }
    // temperature-scaled, as score_scaled and the sampler report it
    let (raw9, scaled9) = m.score_replay(&all, &full, 0.9).unwrap();
    let (want_raw9, want_scaled9) = m.score_scaled(&all, 0.9).unwrap();
    assert_same_bits(&raw9, &want_raw9, "raw at 0.9");
    assert_same_bits(&scaled9, &want_scaled9, "scaled at 0.9");
    assert_same_bits(&scaled9[6..], &sampled.scaled_logprobs, "sampled scaled");

    // A session replaying in two appends, recording what it replays.
    let mut b = recording(&m, 0);
    let first = b
        .append_replay(&all[..9], Logits::All, &rec.replay_range(0..9), 1.0)
        .unwrap();
    let second = b
        .append_replay(&all[9..], Logits::Last, &rec.replay_range(9..16), 0.9)
        .unwrap();
    assert_eq!(first.logits.len(), 9 * m.info().vocab_size as usize);
    assert_eq!(second.logits.len(), m.info().vocab_size as usize);
    assert_same_bits(&first.logprobs, &plain[..9], "first append");
    assert_same_bits(&second.logprobs, &plain[9..], "second append");
    assert_same_bits(&second.scaled_logprobs, &want_scaled9[9..], "second scaled");
    assert_eq!(b.recorded().unwrap(), rec);
    // the logits equal a plain session's
    let mut c = m.session(&SessionParams::default()).unwrap();
    let want_logits = c.append(&all[..9], Logits::All).unwrap();
    assert_eq!(bits(&first.logits), bits(&want_logits));

    // Replayed choices are really used: other (valid) routes change the result.
    let mut other = rec.expert_ids.clone();
    let k = rec.shape.n_experts_per_tok;
    let n_experts = m.info().n_routed_experts as i32;
    for route in other.chunks_mut(k) {
        // the k ids just above the last one, wrapping: still distinct and sortable
        let base = (route[k - 1] + 1) % n_experts;
        let mut ids: Vec<i32> = (0..k as i32).map(|j| (base + j) % n_experts).collect();
        ids.sort();
        route.copy_from_slice(&ids);
    }
    let moved = Replay {
        topk: None,
        expert_ids: Some(&other),
        expert_weights: None,
    };
    let (raw_other, _) = m.score_replay(&all, &moved, 1.0).unwrap();
    assert_ne!(bits(&raw_other[1..]), bits(&plain[1..]));
    // a recording session records what it replayed
    let mut d = recording(&m, 0);
    let got = d.append_replay(&all, Logits::None, &moved, 1.0).unwrap();
    assert_same_bits(
        &got.logprobs,
        &raw_other,
        "replayed other routes in a session",
    );
    let (ids_d, _) = d.recorded_routes().unwrap();
    assert_eq!(ids_d, other);
}

#[test]
fn bad_replay_is_refused_and_changes_nothing() {
    let m = load("tiny-dsa");
    let mut a = recording(&m, 0);
    a.append(&SEQ, Logits::None).unwrap();
    let rec = a.recorded().unwrap();
    let shape = rec.shape;
    let (lk, mk) = (shape.topk_per_token(), shape.routes_per_token());

    let mut s = recording(&m, 0);
    s.append(&SEQ[..3], Logits::Last).unwrap();
    let before = (session_state(&s), bits(&s.logits()));
    let toks = &SEQ[3..7]; // 4 tokens
    let topk = rec.topk_rows(3..7);
    let (ids, w) = (rec.id_rows(3..7), rec.weight_rows(3..7));

    // A wrong slice length is refused by the crate, before the library is called: the
    // thread's last library error stays what a failed call just set.
    let mark = || {
        assert_err(m.score(&[]), Status::InvalidArgument, "");
        let marker = glm5::last_error();
        assert!(marker.contains("glm5_model_score"), "{marker}");
        marker
    };
    let short_topk = &topk[..topk.len() - 1];
    let long_ids = [ids.as_slice(), &[0]].concat();
    let short_w = &w[..mk * 3];
    let cases: Vec<(&str, Replay<'_>)> = vec![
        (
            "replay topk has 71 entries; 4 token(s) need [4, n_layers 3, index_topk 6] = 72",
            Replay {
                topk: Some(short_topk),
                ..Default::default()
            },
        ),
        (
            "replay expert_ids has 33 entries",
            Replay {
                expert_ids: Some(&long_ids),
                ..Default::default()
            },
        ),
        (
            "replay expert_weights has 24 entries; 4 token(s) need [4, n_moe_layers 2, n_experts_per_tok 4] = 32",
            Replay {
                expert_ids: Some(&ids),
                expert_weights: Some(short_w),
                ..Default::default()
            },
        ),
        (
            "replay topk has 0 entries",
            Replay {
                topk: Some(&[]),
                ..Default::default()
            },
        ),
        (
            // the whole record for 4 tokens
            "replay topk has 288 entries",
            rec.replay(),
        ),
    ];
    for (needle, r) in &cases {
        let marker = mark();
        assert_err(
            s.append_replay(toks, Logits::Last, r, 1.0),
            Status::InvalidArgument,
            needle,
        );
        assert_eq!(
            glm5::last_error(),
            marker,
            "{needle}: the library was called"
        );
        assert_eq!((session_state(&s), bits(&s.logits())), before);
        let marker = mark();
        assert_err(
            m.score_replay(&SEQ[..4], r, 1.0),
            Status::InvalidArgument,
            needle,
        );
        assert_eq!(
            glm5::last_error(),
            marker,
            "{needle}: the library was called"
        );
    }
    // (the same slices with the right token count are accepted: lengths only)
    let ok = Replay {
        topk: Some(&topk),
        expert_ids: Some(&ids),
        expert_weights: Some(&w),
    };
    assert_eq!(ok.topk.unwrap().len(), 4 * lk);

    // Values out of range are the library's to refuse (it names token, layer and entry).
    let mut bad_topk = topk.clone();
    bad_topk[0] = 1000;
    let e = assert_err(
        s.append_replay(
            toks,
            Logits::None,
            &Replay {
                topk: Some(&bad_topk),
                ..Default::default()
            },
            1.0,
        ),
        Status::InvalidArgument,
        "replay_topk[0, 0, 0] is key 1000",
    );
    assert!(e.message.contains("position 3"), "{e}");
    assert_eq!((session_state(&s), bits(&s.logits())), before);
    let mut dup = ids.clone();
    dup[1] = dup[0];
    assert_err(
        s.append_replay(
            toks,
            Logits::None,
            &Replay {
                expert_ids: Some(&dup),
                ..Default::default()
            },
            1.0,
        ),
        Status::InvalidArgument,
        "",
    );
    let mut inf = w.clone();
    inf[2] = f32::INFINITY;
    assert_err(
        s.append_replay(
            toks,
            Logits::None,
            &Replay {
                expert_ids: Some(&ids),
                expert_weights: Some(&inf),
                ..Default::default()
            },
            1.0,
        ),
        Status::InvalidArgument,
        "",
    );
    // weights without ids
    assert_err(
        m.score_replay(
            &SEQ[..4],
            &Replay {
                expert_weights: Some(&w),
                ..Default::default()
            },
            1.0,
        ),
        Status::InvalidArgument,
        "expert_ids is NULL",
    );
    // a bad temperature
    assert_err(
        s.append_replay(toks, Logits::None, &ok, -1.0),
        Status::InvalidArgument,
        "temperature",
    );
    assert_eq!((session_state(&s), bits(&s.logits())), before);

    // and the good replay still works on the unchanged session
    let got = s.append_replay(toks, Logits::None, &ok, 1.0).unwrap();
    assert_same_bits(
        &got.logprobs,
        &m.score(&SEQ[..7]).unwrap()[3..],
        "after refusals",
    );
}

/// Row ranges of a record (test helpers).
trait Rows {
    fn topk_rows(&self, r: std::ops::Range<usize>) -> Vec<i32>;
    fn id_rows(&self, r: std::ops::Range<usize>) -> Vec<i32>;
    fn weight_rows(&self, r: std::ops::Range<usize>) -> Vec<f32>;
}

impl Rows for glm5::Recorded {
    fn topk_rows(&self, r: std::ops::Range<usize>) -> Vec<i32> {
        self.replay_range(r).topk.unwrap().to_vec()
    }
    fn id_rows(&self, r: std::ops::Range<usize>) -> Vec<i32> {
        self.replay_range(r).expert_ids.unwrap().to_vec()
    }
    fn weight_rows(&self, r: std::ops::Range<usize>) -> Vec<f32> {
        self.replay_range(r).expert_weights.unwrap().to_vec()
    }
}

// ---- weight updates --------------------------------------------------------------------------

fn v2_fingerprint() -> Fingerprint {
    fingerprint(&load("tiny-dsa-v2"))
}

#[test]
fn update_from_folder_equals_a_fresh_load() {
    let want = v2_fingerprint();
    let m = load("tiny-dsa");
    let v1 = fingerprint(&m);
    assert_ne!(v1, want);
    assert_eq!(m.weight_version().unwrap(), "default");

    m.update_weights(fixture("tiny-dsa-v2"), "v2").unwrap();
    assert_eq!(fingerprint(&m), want);
    assert_eq!(m.weight_version().unwrap(), "v2");
    let info = m.info();
    assert_eq!(info.n_weight_updates, 1);
    // every tensor had the loaded dtype and shape: the folder is adopted, memory-mapped
    assert_eq!(info.updated_weight_bytes, 0);

    // and back
    m.update_weights(fixture("tiny-dsa"), "back").unwrap();
    assert_eq!(fingerprint(&m), v1);
    assert_eq!(m.weight_version().unwrap(), "back");
    assert_eq!(m.info().n_weight_updates, 2);

    // a version of exactly 127 bytes is the longest
    let long = "x".repeat(glm5::WEIGHT_VERSION_MAX_BYTES);
    m.update_weights(fixture("tiny-dsa-v2"), &long).unwrap();
    assert_eq!(m.weight_version().unwrap(), long);
    let r = m
        .session(&SessionParams::default())
        .and_then(|mut s| {
            s.append(&SEQ[..2], Logits::None)?;
            s.sample(&sampling(0, 1))
        })
        .unwrap();
    assert_eq!(r.weight_version, long);
}

#[test]
fn update_from_slime_deltas_equals_a_fresh_load() {
    let want = v2_fingerprint();
    for enc in ["deltas", "deltas_zstd", "indices"] {
        let m = load("tiny-dsa");
        let delta = fixture(&format!("deltas/tiny-dsa-v2.{enc}/weight_v000001"));
        m.update_weights_delta(&delta, None)
            .unwrap_or_else(|e| panic!("{enc}: {e}"));
        assert_eq!(fingerprint(&m), want, "{enc}");
        // the version is the delta's current_version
        assert_eq!(m.weight_version().unwrap(), "1", "{enc}");
        let info = m.info();
        assert_eq!(info.n_weight_updates, 1, "{enc}");
        assert!(info.updated_weight_bytes > 0, "{enc}");
        assert!(
            info.resident_weight_bytes >= info.updated_weight_bytes,
            "{enc}"
        );

        // A caller-set version overrides it.
        let m = load("tiny-dsa");
        m.update_weights_delta(&delta, Some("step-7")).unwrap();
        assert_eq!(m.weight_version().unwrap(), "step-7");
        assert_eq!(fingerprint(&m), want, "{enc}");
    }

    // INT4: a delta of the packed tensors
    let want = fingerprint(&load("tiny-int4-g32-v2"));
    let m = load("tiny-int4-g32");
    assert_ne!(fingerprint(&m), want);
    m.update_weights_delta(
        fixture("deltas/tiny-int4-g32-v2.deltas/weight_v000001"),
        None,
    )
    .unwrap();
    assert_eq!(fingerprint(&m), want);
}

#[test]
fn update_tensor_by_tensor_equals_a_fresh_load() {
    let want = v2_fingerprint();
    let tensors = read_weights(&fixture("tiny-dsa-v2"));
    assert!(tensors.len() > 200);

    // The builder: begin, add each, commit.
    let m = load("tiny-dsa");
    let mut u: WeightUpdate<'_> = m.begin_update().unwrap();
    for t in &tensors {
        u.add(&t.name, t.dtype, &t.shape, &t.data)
            .unwrap_or_else(|e| panic!("{}: {e}", t.name));
    }
    // nothing changes before the commit
    assert_eq!(m.weight_version().unwrap(), "default");
    assert_eq!(m.info().n_weight_updates, 0);
    u.commit("tensors").unwrap();
    assert_eq!(fingerprint(&m), want);
    assert_eq!(m.weight_version().unwrap(), "tensors");
    assert_eq!(m.info().n_weight_updates, 1);
    assert!(m.info().updated_weight_bytes > 0);

    // update_tensors, with F32 as floats through add_f32 for one of them.
    let m = load("tiny-dsa");
    let refs: Vec<Tensor<'_>> = tensors.iter().map(FileTensor::as_tensor).collect();
    m.update_tensors(&refs, "all-at-once").unwrap();
    assert_eq!(fingerprint(&m), want);
    assert_eq!(m.weight_version().unwrap(), "all-at-once");

    let m = load("tiny-dsa");
    let mut u = m.begin_update().unwrap();
    for t in &tensors {
        assert_eq!(t.dtype, DType::F32);
        let floats: Vec<f32> = t
            .data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        u.add_f32(&t.name, &t.shape, &floats).unwrap();
    }
    u.commit("floats").unwrap();
    assert_eq!(fingerprint(&m), want);
}

#[test]
fn float_updates_of_an_int4_model_equal_glm5_quantize() {
    // glm5-quantized/int4 is `glm5 quantize` of glm5-quantized/source (BF16). An INT4 model
    // updated with BF16 weights quantizes them in memory with the quantizer's code.
    let want = fingerprint(&load("glm5-quantized/int4"));
    let m = load("glm5-quantized/int4");
    m.update_weights(fixture("glm5-quantized/source-v2"), "v2")
        .unwrap();
    assert_ne!(fingerprint(&m), want);
    assert!(m.info().updated_weight_bytes > 0);
    // folder (converted)
    m.update_weights(fixture("glm5-quantized/source"), "v1")
        .unwrap();
    assert_eq!(fingerprint(&m), want);
    // tensor by tensor: "<module>.weight" in BF16 for INT4 modules, norms converted
    m.update_weights(fixture("glm5-quantized/source-v2"), "v2")
        .unwrap();
    let tensors = read_weights(&fixture("glm5-quantized/source"));
    let refs: Vec<Tensor<'_>> = tensors.iter().map(FileTensor::as_tensor).collect();
    m.update_tensors(&refs, "v1-again").unwrap();
    assert_eq!(fingerprint(&m), want);
}

#[test]
fn sampling_reports_the_weight_version_and_sessions_continue() {
    let m = load("tiny-dsa");
    let v2 = load("tiny-dsa-v2");
    let mut s = m.session(&SessionParams::default()).unwrap();
    s.append(&SEQ[..5], Logits::None).unwrap();
    let r = s.sample(&sampling(4, 3)).unwrap();
    assert_eq!(r.weight_version, "default");

    m.update_weights_delta(fixture("deltas/tiny-dsa-v2.deltas/weight_v000001"), None)
        .unwrap();
    // the session made before continues, with the new weights for new tokens
    let mut f = s.fork().unwrap();
    let r = s.sample(&sampling(5, 3)).unwrap();
    assert_eq!(r.weight_version, "1");
    assert_eq!(r.len(), 3);
    // batched sampling too
    let mut g = f.fork().unwrap();
    let rs = m
        .sample_batch(&mut [&mut f, &mut g], &[sampling(5, 2)])
        .unwrap();
    assert!(rs.iter().all(|r: &SampleResult| r.weight_version == "1"));

    // recompute rebuilds the caches with the new weights: as a fresh session on v2
    let mut t = m.session(&SessionParams::default()).unwrap();
    t.append(&SEQ[..8], Logits::None).unwrap(); // on v2 weights already
    let mut old = m.session(&SessionParams::default()).unwrap();
    m.update_weights(fixture("tiny-dsa"), "v1").unwrap();
    old.append(&SEQ[..8], Logits::None).unwrap(); // computed with v1
    m.update_weights(fixture("tiny-dsa-v2"), "v2").unwrap();
    old.recompute().unwrap();
    assert!(old.logits().is_empty());
    let want = {
        let mut w = v2.session(&SessionParams::default()).unwrap();
        w.append(&SEQ[..8], Logits::None).unwrap();
        w.sample(&sampling(6, 5)).unwrap()
    };
    let got = old.sample(&sampling(6, 5)).unwrap();
    assert_eq!(got.tokens, want.tokens);
    assert_eq!(bits(&got.logprobs), bits(&want.logprobs));
    assert_eq!(got.weight_version, "v2");
    assert_eq!(want.weight_version, "default");
    let got_t = t.sample(&sampling(6, 5)).unwrap();
    assert_eq!(got_t.tokens, want.tokens);

    // recompute keeps a record consistent with the new weights
    let mut r1 = recording(&m, 0);
    r1.append(&SEQ, Logits::None).unwrap();
    let mut r2 = recording(&v2, 0);
    r2.append(&SEQ, Logits::None).unwrap();
    m.update_weights(fixture("tiny-dsa"), "v1").unwrap();
    r1.recompute().unwrap();
    let mut r3 = recording(&load("tiny-dsa"), 0);
    r3.append(&SEQ, Logits::None).unwrap();
    assert_eq!(r1.recorded().unwrap(), r3.recorded().unwrap());
    assert_eq!(r1.tokens(), SEQ.to_vec());
}

#[test]
fn refused_updates_change_nothing() {
    let m = load("tiny-dsa");
    m.update_weights_delta(
        fixture("deltas/tiny-dsa-v2.deltas_zstd/weight_v000001"),
        None,
    )
    .unwrap();
    let v2 = fingerprint(&m);
    let info = m.info();
    let unchanged = |what: &str| {
        assert_eq!(m.weight_version().unwrap(), "1", "{what}");
        assert_eq!(m.info(), info, "{what}");
        assert_eq!(fingerprint(&m), v2, "{what}");
    };

    // the same delta again: it is a delta against "default"
    assert_err(
        m.update_weights_delta(fixture("deltas/tiny-dsa-v2.deltas/weight_v000001"), None),
        Status::VersionMismatch,
        "\"default\"",
    );
    unchanged("delta against another version");
    // another configuration
    assert_err(
        m.update_weights(fixture("tiny-int4-g32"), "x"),
        Status::Incompatible,
        "another configuration",
    );
    unchanged("another configuration");
    // bad versions
    assert_err(
        m.update_weights(fixture("tiny-dsa"), ""),
        Status::InvalidArgument,
        "weight version",
    );
    assert_err(
        m.update_weights(fixture("tiny-dsa"), &"y".repeat(128)),
        Status::InvalidArgument,
        "",
    );
    assert_err(
        m.update_weights(fixture("tiny-dsa"), "a\0b"),
        Status::InvalidArgument,
        "NUL",
    );
    unchanged("bad versions");
    // (a delta with a bad version: on a model where the delta itself applies)
    let m0 = load("tiny-dsa");
    let before0 = fingerprint(&m0);
    for bad in ["", &"z".repeat(128)] {
        assert_err(
            m0.update_weights_delta(
                fixture("deltas/tiny-dsa-v2.deltas/weight_v000001"),
                Some(bad),
            ),
            Status::InvalidArgument,
            "",
        );
    }
    assert_eq!(m0.weight_version().unwrap(), "default");
    assert_eq!(m0.info().n_weight_updates, 0);
    assert_eq!(fingerprint(&m0), before0);
    // missing folders
    assert_err(
        m.update_weights(fixture("no-such-model"), "x"),
        Status::Io,
        "",
    );
    assert_err(
        m.update_weights_delta(fixture("deltas/no-such-delta"), None),
        Status::Io,
        "",
    );
    unchanged("missing folders");
    // a delta folder without DONE, and one with a damaged file
    let tmp = TempDir::new();
    let src = fixture("deltas/tiny-dsa-v2.deltas/weight_v000001");
    let copy = |dir: &Path| {
        fs::create_dir_all(dir).unwrap();
        for e in fs::read_dir(&src).unwrap() {
            let p = e.unwrap().path();
            fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
        }
    };
    let m1 = load("tiny-dsa");
    let before = fingerprint(&m1);
    let no_done = tmp.0.join("no-done/weight_v000001");
    copy(&no_done);
    fs::remove_file(no_done.join("DONE")).unwrap();
    assert_err(
        m1.update_weights_delta(&no_done, None),
        Status::BadFormat,
        "DONE",
    );
    let damaged = tmp.0.join("damaged/weight_v000001");
    copy(&damaged);
    let f = damaged.join("rank0000_flush000002.safetensors");
    let mut b = fs::read(&f).unwrap();
    b.truncate(b.len() - 10);
    fs::write(&f, &b).unwrap();
    assert_err(
        m1.update_weights_delta(&damaged, None),
        Status::BadFormat,
        "",
    );
    assert_eq!(fingerprint(&m1), before);
    assert_eq!(m1.weight_version().unwrap(), "default");
    assert_eq!(m1.info().n_weight_updates, 0);

    // tensor updates: refused adds, an empty commit, an abandoned update
    let mut norm = Vec::new();
    for _ in 0..64 {
        norm.extend_from_slice(&0x4000u16.to_le_bytes()); // bf16 2.0
    }
    let mut u = m.begin_update().unwrap();
    assert_err(
        u.add("model.norm.weight", DType::BF16, &[63], &norm[..126]),
        Status::BadFormat,
        "shape",
    );
    assert_err(
        u.add("model.norm.weight", DType::BF16, &[64], &norm[..100]),
        Status::InvalidArgument,
        "needs 128 bytes",
    );
    assert_err(
        u.add("no.such.tensor", DType::BF16, &[64], &norm),
        Status::InvalidArgument,
        "no tensor",
    );
    assert_err(
        u.add("model.norm.weight", DType::BF16, &[1; 9], &norm[..2]),
        Status::InvalidArgument,
        "n_dims",
    );
    assert_err(
        u.add("bad\0name", DType::BF16, &[64], &norm),
        Status::InvalidArgument,
        "NUL",
    );
    assert_err(
        u.commit("empty"),
        Status::InvalidArgument,
        "holds no tensor",
    );
    unchanged("empty commit");
    let mut u = m.begin_update().unwrap();
    u.add("model.norm.weight", DType::BF16, &[64], &norm)
        .unwrap();
    drop(u); // abandoned: nothing installed
    unchanged("abandoned update");
    let mut u = m.begin_update().unwrap();
    u.add("model.norm.weight", DType::BF16, &[64], &norm)
        .unwrap();
    assert_err(u.commit("a\0b"), Status::InvalidArgument, "NUL");
    unchanged("commit with a NUL in the version");
    let mut u = m.begin_update().unwrap();
    u.add("model.norm.weight", DType::BF16, &[64], &norm)
        .unwrap();
    assert_err(u.commit(""), Status::InvalidArgument, "");
    unchanged("commit with an empty version");

    // a non-finite INT4 scale is refused (at the add or at the commit), nothing changes
    let q = load("tiny-int4-g32");
    let qv = fingerprint(&q);
    let qi = q.info();
    let scale = read_weights(&fixture("tiny-int4-g32"))
        .into_iter()
        .find(|t| t.name.ends_with("q_a_proj.weight_scale"))
        .expect("an INT4 scale tensor");
    let mut data = scale.data.clone();
    match scale.dtype {
        DType::BF16 => data[..2].copy_from_slice(&0x7fc0u16.to_le_bytes()),
        DType::F32 => data[..4].copy_from_slice(&f32::NAN.to_le_bytes()),
        DType::F16 => data[..2].copy_from_slice(&0x7e00u16.to_le_bytes()),
        other => panic!("scale dtype {other}"),
    }
    let mut u = q.begin_update().unwrap();
    let r = u
        .add(&scale.name, scale.dtype, &scale.shape, &data)
        .and_then(|()| u.commit("nan"));
    let e = r.expect_err("a NaN scale was accepted");
    assert_eq!(e.status, Status::BadFormat, "{e}");
    assert_eq!(q.weight_version().unwrap(), "default");
    assert_eq!(q.info(), qi);
    assert_eq!(fingerprint(&q), qv);

    // and a good update still works afterwards
    let mut u = m.begin_update().unwrap();
    u.add("model.norm.weight", DType::BF16, &[64], &norm)
        .unwrap();
    u.commit("norm2").unwrap();
    assert_eq!(m.weight_version().unwrap(), "norm2");
    assert_ne!(fingerprint(&m).score, v2.score);
}

#[test]
fn updates_are_atomic_for_concurrent_callers() {
    // While one thread flips the weights between v1 and v2, scores on other threads always
    // equal one of the two bit for bit (no call straddles an update).
    let m = load("tiny-dsa");
    let seq = SEQ.to_vec();
    let s1 = bits(&m.score(&seq).unwrap());
    let s2 = bits(&load("tiny-dsa-v2").score(&seq).unwrap());
    assert_ne!(s1, s2);
    let done = AtomicBool::new(false);
    let seen = [AtomicUsize::new(0), AtomicUsize::new(0)];
    std::thread::scope(|sc| {
        sc.spawn(|| {
            for i in 0..12 {
                let (dir, v) = if i % 2 == 0 {
                    ("tiny-dsa-v2", "v2")
                } else {
                    ("tiny-dsa", "v1")
                };
                m.update_weights(fixture(dir), v).unwrap();
            }
            done.store(true, Ordering::SeqCst);
        });
        sc.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                let got = bits(&m.score(&seq).unwrap());
                if got == s1 {
                    seen[0].fetch_add(1, Ordering::Relaxed);
                } else if got == s2 {
                    seen[1].fetch_add(1, Ordering::Relaxed);
                } else {
                    panic!("a score matching neither v1 nor v2");
                }
            }
        });
    });
    assert_eq!(m.weight_version().unwrap(), "v1");
    assert_eq!(bits(&m.score(&seq).unwrap()), s1);
}

// ---- saving sessions -------------------------------------------------------------------------

#[test]
fn save_restore_continues_as_the_original() {
    for name in ["tiny-int4-g32", "tiny-dsa"] {
        let m = load(name);
        let seq = seq_for(&m);
        let mut s = recording(&m, 0);
        s.append(&seq[..8], Logits::Last).unwrap();
        let bytes = s.save().unwrap();
        assert!(bytes.len() > 64);
        // deterministic
        assert_eq!(s.save().unwrap(), bytes, "{name}");

        let mut r = m.restore(&bytes, false).unwrap();
        assert_eq!(r.tokens(), s.tokens());
        assert_eq!(r.recorded().unwrap(), s.recorded().unwrap());
        assert_eq!(r.vocab_size(), s.vocab_size());
        // through a file
        let tmp = TempDir::new();
        let path = tmp.0.join("s.glm5");
        let n = s.save_to(&path).unwrap();
        assert_eq!(n, fs::metadata(&path).unwrap().len() as usize);
        assert_eq!(fs::read(&path).unwrap(), bytes);
        let mut rf = m.restore_file(&path, false).unwrap();

        let p = sampling(4, 6);
        let want = s.sample(&p).unwrap();
        for (what, x) in [("bytes", &mut r), ("file", &mut rf)] {
            let got = x.sample(&p).unwrap();
            assert_eq!(got.tokens, want.tokens, "{name} {what}");
            assert_eq!(bits(&got.logprobs), bits(&want.logprobs), "{name} {what}");
            assert_eq!(
                bits(&got.scaled_logprobs),
                bits(&want.scaled_logprobs),
                "{name} {what}"
            );
            assert_eq!(got.top_ids, want.top_ids, "{name} {what}");
            assert_eq!(got.weight_version, want.weight_version);
            assert_eq!(x.record_info().unwrap().n_tokens, 14);
            assert_eq!(x.recorded().unwrap(), s.recorded().unwrap());
        }
        // a restored session can be forked, saved and restored again
        let again = m
            .restore(&r.fork().unwrap().save().unwrap(), false)
            .unwrap();
        assert_eq!(again.tokens(), s.tokens());

        // a session that does not record restores without a record
        let mut plain = m.session(&SessionParams::default()).unwrap();
        plain.append(&seq[..3], Logits::None).unwrap();
        let pr = m.restore(&plain.save().unwrap(), false).unwrap();
        assert_eq!(pr.record_info(), None);
        assert_eq!(pr.tokens(), seq[..3].to_vec());
        // an empty session
        let e = m.session(&SessionParams::default()).unwrap();
        assert_eq!(m.restore(&e.save().unwrap(), false).unwrap().n_tokens(), 0);
    }
}

#[test]
fn damaged_or_foreign_bytes_are_refused() {
    let m = load("tiny-int4-g32");
    let mut s = recording(&m, 0);
    s.append(&seq_for(&m)[..8], Logits::None).unwrap();
    let bytes = s.save().unwrap();

    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 1;
    assert_err(m.restore(&flipped, false), Status::BadFormat, "checksum");
    assert_err(m.restore(&flipped, true), Status::BadFormat, "checksum");
    assert_err(
        m.restore(&bytes[..bytes.len() - 1], false),
        Status::BadFormat,
        "",
    );
    assert_err(
        m.restore(&bytes[..3], false),
        Status::BadFormat,
        "truncated",
    );
    assert_err(m.restore(&[], false), Status::BadFormat, "");
    assert_err(m.restore(&[0u8; 4096], false), Status::BadFormat, "");
    let mut longer = bytes.clone();
    longer.push(0);
    assert_err(m.restore(&longer, false), Status::BadFormat, "");
    // every single-byte corruption of the header and a sweep through the rest: refused, no crash
    for i in (0..bytes.len()).step_by(if bytes.len() > 512 { 7 } else { 1 }) {
        let mut b = bytes.clone();
        b[i] = b[i].wrapping_add(0x55);
        let e = m
            .restore(&b, true)
            .err()
            .unwrap_or_else(|| panic!("byte {i} changed and still restored"));
        assert!(
            matches!(
                e.status,
                Status::BadFormat | Status::Unsupported | Status::Incompatible
            ),
            "byte {i}: {e}"
        );
    }
    // another configuration
    let other = load("tiny-dsa");
    assert_err(
        other.restore(&bytes, false),
        Status::Incompatible,
        "another model configuration",
    );
    assert_err(other.restore(&bytes, true), Status::Incompatible, "");
    // files
    let tmp = TempDir::new();
    assert_err(
        m.restore_file(tmp.0.join("nonexistent.glm5"), false),
        Status::Io,
        "nonexistent",
    );
    let bad = tmp.0.join("bad.glm5");
    fs::write(&bad, &flipped).unwrap();
    assert_err(m.restore_file(&bad, false), Status::BadFormat, "checksum");
    assert_err(s.save_to(tmp.0.join("no/such/dir/s.glm5")), Status::Io, "");
    assert_err(
        m.restore_file("bad\0path", false),
        Status::InvalidArgument,
        "NUL",
    );
    // the original is intact
    assert_eq!(m.restore(&bytes, false).unwrap().tokens(), s.tokens());
}

#[test]
fn other_weight_versions_need_permission() {
    let m = load("tiny-int4-g32");
    let mut s = recording(&m, 0);
    s.append(&seq_for(&m)[..8], Logits::None).unwrap();
    let bytes = s.save().unwrap();
    let tmp = TempDir::new();
    let path = tmp.0.join("s.glm5");
    s.save_to(&path).unwrap();

    m.update_weights(fixture("tiny-int4-g32-v2"), "v2").unwrap();
    assert_err(
        m.restore(&bytes, false),
        Status::VersionMismatch,
        "\"default\"",
    );
    assert_err(
        m.restore_file(&path, false),
        Status::VersionMismatch,
        "\"default\"",
    );
    let mut r = m.restore(&bytes, true).unwrap();
    let mut rf = m.restore_file(&path, true).unwrap();
    assert_eq!(r.tokens(), s.tokens());
    assert_eq!(rf.tokens(), s.tokens());
    // the caches hold what the old weights computed, as `s` (which continues on v2 too)
    let p = sampling(2, 4);
    let want = s.sample(&p).unwrap();
    assert_eq!(want.weight_version, "v2");
    for x in [&mut r, &mut rf] {
        let got = x.sample(&p).unwrap();
        assert_eq!(got.weight_version, "v2");
        assert_eq!(got.tokens, want.tokens);
        assert_eq!(bits(&got.logprobs), bits(&want.logprobs));
    }
    // saved under "v2", restored under "v2" without permission
    let saved_v2 = r.save().unwrap();
    m.restore(&saved_v2, false).unwrap();
    // and refused again once the version moves on
    m.update_weights(fixture("tiny-int4-g32"), "v3").unwrap();
    assert_err(
        m.restore(&saved_v2, false),
        Status::VersionMismatch,
        "\"v2\"",
    );
}

#[test]
fn new_types_are_send() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    send::<WeightUpdate<'static>>();
    send_sync::<Replay<'static>>();
    send_sync::<glm5::Recorded>();
    send_sync::<glm5::RecordInfo>();
    send_sync::<Tensor<'static>>();
}

#[test]
fn restored_session_reports_its_saved_max_tokens() {
    let m = load("tiny-dsa");
    let mut s = m
        .session(&SessionParams {
            max_tokens: 10,
            ..Default::default()
        })
        .unwrap();
    s.append(&[1, 2, 3, 4, 5, 6, 7, 8], Logits::None).unwrap();
    let r = m.restore(&s.save().unwrap(), false).unwrap();
    assert_eq!(r.max_tokens(), 10);
}
