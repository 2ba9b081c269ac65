//! The tokenizer API (C API 0.3) on the bundled model's tokenizer. Expected ids come from HF
//! tokenizers (Tests/Fixtures/tokenizers/expected.json, written by
//! tools/reference/tokenizer_expected.py); the corpus-wide comparison is the Python suite's.

use std::path::{Path, PathBuf};

use glm5::{Model, ModelParams, Status, Tokenizer};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tiny() -> Tokenizer {
    Tokenizer::load(repo().join("models/glm5-tiny")).expect("load models/glm5-tiny")
}

#[test]
fn encode_matches_hf_and_round_trips() {
    let t = tiny();
    assert_eq!(t.n_ids(), 4096);
    assert_eq!(t.eos_id(), Some(4087));
    assert_eq!(t.bos_id(), None);
    // From expected.json (HF tokenizers 0.23.3).
    assert_eq!(
        t.encode("hello world", true).unwrap(),
        vec![274, 75, 333, 313, 269, 1349]
    );
    assert_eq!(
        t.encode("<|user|>hi<|assistant|><think>x</think>", true)
            .unwrap(),
        vec![4091, 71, 72, 4092, 4094, 87, 4095]
    );
    for text in [
        "def f(x):\n    return x * 2\n",
        "你好，世界！😀👨\u{200d}👩\u{200d}👧",
        "  \t\r\n x",
        "",
    ] {
        let ids = t.encode(text, true).unwrap();
        assert_eq!(t.decode(&ids, false).unwrap(), text);
    }
    let ids = t.encode("<|user|>", false).unwrap();
    assert!(ids.len() > 1 && ids.iter().all(|&i| i < 4087));
    assert_eq!(
        t.decode(&t.encode("a<|user|>b", true).unwrap(), true)
            .unwrap(),
        "ab"
    );
    assert_eq!(t.token_to_id("<|user|>").unwrap(), Some(4091));
    assert_eq!(t.id_to_token(4091).unwrap(), ("<|user|>".to_string(), true));
    assert_eq!(
        t.token_to_piece(t.encode(" x", true).unwrap()[0]).unwrap(),
        b" x"
    );
}

#[test]
fn streaming_holds_back_partial_utf8() {
    let t = tiny();
    let text = "ok 😀 世界";
    let ids = t.encode(text, true).unwrap();
    let mut s = t.stream(false).unwrap();
    let mut out = String::new();
    let mut empty = 0;
    for id in &ids {
        let chunk = s.push(&[*id]).unwrap();
        empty += chunk.is_empty() as usize;
        out += &chunk;
    }
    out += &s.finish().unwrap();
    assert_eq!(out, text);
    assert!(empty > 0);
}

#[test]
fn errors_are_statuses() {
    let t = tiny();
    let e = t.encode_bytes(b"ab\xff", true).unwrap_err();
    assert_eq!(e.status, Status::InvalidArgument);
    assert!(e.message.contains("UTF-8"), "{}", e.message);
    assert_eq!(
        t.decode(&[1, 1 << 20], false).unwrap_err().status,
        Status::InvalidArgument
    );
    assert_eq!(
        Tokenizer::load(repo().join("no/such")).unwrap_err().status,
        Status::Io
    );
    let m = Model::load(
        repo().join("Tests/Fixtures/tiny-dsa"),
        &ModelParams { threads: 1 },
    )
    .unwrap();
    assert!(m.tokenizer().unwrap().is_none());
}

#[test]
fn shared_between_threads() {
    let t = std::sync::Arc::new(tiny());
    let want = t.encode("threads share one tokenizer 🧵", true).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let t = t.clone();
            std::thread::spawn(move || t.encode("threads share one tokenizer 🧵", true).unwrap())
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), want);
    }
}
