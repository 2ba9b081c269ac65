//! Tokenizers (C API 0.3): a Hugging Face tokenizer.json run by libglm5, id for id what the
//! `tokenizers` library gives. [`Tokenizer`] is `Send + Sync` (immutable once loaded);
//! [`Detokenizer`] streams the text of generated ids, holding back incomplete UTF-8.

use std::fmt;
use std::os::raw::c_char;
use std::path::{Path, PathBuf};
use std::ptr::{self, NonNull};

use crate::{check, check_abi, path_to_cstring, sys, Error, Model, Status};

/// A loaded tokenizer (`glm5_tokenizer`), freed on drop.
pub struct Tokenizer {
    ptr: NonNull<sys::glm5_tokenizer>,
    path: PathBuf,
    info: sys::glm5_tokenizer_info,
}

// SAFETY: the header: "A tokenizer is immutable once loaded; every function below may be called
// from any number of threads at once on the same tokenizer."
unsafe impl Send for Tokenizer {}
unsafe impl Sync for Tokenizer {}

/// The two-call pattern for a bytes output: `call(buf, capacity, &mut n)`.
fn read_bytes(
    guess: usize,
    mut call: impl FnMut(*mut c_char, usize, &mut usize) -> sys::glm5_status,
) -> Result<Vec<u8>, Error> {
    let mut cap = guess.max(1);
    loop {
        let mut buf = vec![0u8; cap];
        let mut n = 0usize;
        let raw = call(buf.as_mut_ptr() as *mut c_char, cap, &mut n);
        if raw == sys::GLM5_ERR_BUFFER_TOO_SMALL && n + 1 > cap {
            cap = n + 1;
            continue;
        }
        check(raw)?;
        buf.truncate(n);
        return Ok(buf);
    }
}

fn utf8(bytes: Vec<u8>) -> Result<String, Error> {
    String::from_utf8(bytes).map_err(|e| {
        Error::new(
            Status::Internal,
            format!("the library returned invalid UTF-8: {e}"),
        )
    })
}

impl Tokenizer {
    /// `glm5_tokenizer_load`: a folder with tokenizer.json (and tokenizer_config.json), or a
    /// tokenizer.json file (zstd-compressed too).
    pub fn load(path: impl AsRef<Path>) -> Result<Tokenizer, Error> {
        check_abi()?;
        let path = path.as_ref();
        let c_path = path_to_cstring(path)?;
        let mut out: *mut sys::glm5_tokenizer = ptr::null_mut();
        check(unsafe { sys::glm5_tokenizer_load(c_path.as_ptr(), &mut out) })?;
        Tokenizer::from_raw(out, path.to_path_buf())
    }

    fn from_raw(out: *mut sys::glm5_tokenizer, path: PathBuf) -> Result<Tokenizer, Error> {
        let ptr = NonNull::new(out)
            .ok_or_else(|| Error::new(Status::Internal, "GLM5_OK but no tokenizer"))?;
        let mut info = sys::glm5_tokenizer_info {
            struct_size: std::mem::size_of::<sys::glm5_tokenizer_info>() as u32,
            ..Default::default()
        };
        // Owned from here on (freed on drop even if get_info fails).
        let mut t = Tokenizer { ptr, path, info };
        check(unsafe { sys::glm5_tokenizer_get_info(t.ptr.as_ptr(), &mut info) })?;
        t.info = info;
        Ok(t)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn as_ptr(&self) -> *mut sys::glm5_tokenizer {
        self.ptr.as_ptr()
    }

    /// One more than the largest id.
    pub fn n_ids(&self) -> usize {
        self.info.n_ids as usize
    }

    pub fn vocab_size(&self) -> usize {
        self.info.n_vocab as usize
    }

    fn id(v: i32) -> Option<i32> {
        (v >= 0).then_some(v)
    }

    /// tokenizer_config.json's eos_token.
    pub fn eos_id(&self) -> Option<i32> {
        Tokenizer::id(self.info.eos_id)
    }

    pub fn bos_id(&self) -> Option<i32> {
        Tokenizer::id(self.info.bos_id)
    }

    pub fn pad_id(&self) -> Option<i32> {
        Tokenizer::id(self.info.pad_id)
    }

    /// `glm5_tokenize`: the ids of `text`, no special tokens added. `parse_special`: special
    /// tokens written in the text become their ids (HF's default).
    pub fn encode(&self, text: &str, parse_special: bool) -> Result<Vec<i32>, Error> {
        self.encode_bytes(text.as_bytes(), parse_special)
    }

    /// [`Tokenizer::encode`] of UTF-8 bytes (invalid UTF-8 is an error).
    pub fn encode_bytes(&self, text: &[u8], parse_special: bool) -> Result<Vec<i32>, Error> {
        let flags = if parse_special {
            sys::GLM5_TOKENIZE_PARSE_SPECIAL
        } else {
            0
        };
        let mut cap = text.len() + 16;
        loop {
            let mut out = vec![0i32; cap];
            let mut n = 0usize;
            let raw = unsafe {
                sys::glm5_tokenize(
                    self.as_ptr(),
                    text.as_ptr() as *const c_char,
                    text.len(),
                    flags,
                    out.as_mut_ptr(),
                    cap,
                    &mut n,
                )
            };
            if raw == sys::GLM5_ERR_BUFFER_TOO_SMALL && n > cap {
                cap = n;
                continue;
            }
            check(raw)?;
            out.truncate(n);
            return Ok(out);
        }
    }

    /// `glm5_detokenize` as bytes.
    pub fn decode_bytes(&self, ids: &[i32], skip_special_tokens: bool) -> Result<Vec<u8>, Error> {
        let flags = if skip_special_tokens {
            sys::GLM5_DETOKENIZE_SKIP_SPECIAL
        } else {
            0
        };
        read_bytes(4 * ids.len() + 16, |buf, cap, n| unsafe {
            sys::glm5_detokenize(self.as_ptr(), ids.as_ptr(), ids.len(), flags, buf, cap, n)
        })
    }

    /// `glm5_detokenize`: the text of `ids` (invalid UTF-8 replaced by U+FFFD, as HF).
    pub fn decode(&self, ids: &[i32], skip_special_tokens: bool) -> Result<String, Error> {
        utf8(self.decode_bytes(ids, skip_special_tokens)?)
    }

    /// `glm5_token_to_piece`: the bytes one token decodes to on its own.
    pub fn token_to_piece(&self, id: i32) -> Result<Vec<u8>, Error> {
        read_bytes(64, |buf, cap, n| unsafe {
            sys::glm5_token_to_piece(self.as_ptr(), id, buf, cap, n)
        })
    }

    /// `glm5_tokenizer_token_text`: the vocabulary string of an id and whether it is special.
    pub fn id_to_token(&self, id: i32) -> Result<(String, bool), Error> {
        let mut special = 0i32;
        let bytes = read_bytes(64, |buf, cap, n| unsafe {
            sys::glm5_tokenizer_token_text(self.as_ptr(), id, buf, cap, n, &mut special)
        })?;
        Ok((utf8(bytes)?, special != 0))
    }

    /// `glm5_tokenizer_token_id`: the id of a token string.
    pub fn token_to_id(&self, token: &str) -> Result<Option<i32>, Error> {
        let mut id = -1i32;
        check(unsafe {
            sys::glm5_tokenizer_token_id(
                self.as_ptr(),
                token.as_ptr() as *const c_char,
                token.len(),
                &mut id,
            )
        })?;
        Ok(Tokenizer::id(id))
    }

    /// A streaming detokenizer (`glm5_detokenizer_new`).
    pub fn stream(&self, skip_special_tokens: bool) -> Result<Detokenizer<'_>, Error> {
        let flags = if skip_special_tokens {
            sys::GLM5_DETOKENIZE_SKIP_SPECIAL
        } else {
            0
        };
        let mut out: *mut sys::glm5_detokenizer = ptr::null_mut();
        check(unsafe { sys::glm5_detokenizer_new(self.as_ptr(), flags, &mut out) })?;
        let ptr = NonNull::new(out)
            .ok_or_else(|| Error::new(Status::Internal, "GLM5_OK but no detokenizer"))?;
        Ok(Detokenizer {
            ptr,
            _tokenizer: self,
        })
    }
}

impl Drop for Tokenizer {
    fn drop(&mut self) {
        unsafe { sys::glm5_tokenizer_free(self.ptr.as_ptr()) }
    }
}

impl fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokenizer")
            .field("path", &self.path)
            .field("n_ids", &self.info.n_ids)
            .finish()
    }
}

/// Streaming decode (`glm5_detokenizer`): [`Detokenizer::push`] returns the text the ids
/// complete; an incomplete UTF-8 sequence waits for the next ids. `Send`, not `Sync`.
pub struct Detokenizer<'a> {
    ptr: NonNull<sys::glm5_detokenizer>,
    _tokenizer: &'a Tokenizer,
}

// SAFETY: one stream per handle, used through &mut self only; the library serialises calls.
unsafe impl Send for Detokenizer<'_> {}

impl Detokenizer<'_> {
    pub fn push(&mut self, ids: &[i32]) -> Result<String, Error> {
        let p = self.ptr.as_ptr();
        utf8(read_bytes(4 * ids.len() + 64, |buf, cap, n| unsafe {
            sys::glm5_detokenizer_push(p, ids.as_ptr(), ids.len(), buf, cap, n)
        })?)
    }

    /// What is held back (U+FFFD for an incomplete sequence); the stream starts over.
    pub fn finish(&mut self) -> Result<String, Error> {
        let p = self.ptr.as_ptr();
        utf8(read_bytes(16, |buf, cap, n| unsafe {
            sys::glm5_detokenizer_finish(p, buf, cap, n)
        })?)
    }
}

impl Drop for Detokenizer<'_> {
    fn drop(&mut self) {
        unsafe { sys::glm5_detokenizer_free(self.ptr.as_ptr()) }
    }
}

impl Model {
    /// The folder's tokenizer (`glm5_model_tokenizer`), `None` when it has no tokenizer.json.
    /// The returned tokenizer stays valid after the model is dropped.
    pub fn tokenizer(&self) -> Result<Option<Tokenizer>, Error> {
        let mut out: *mut sys::glm5_tokenizer = ptr::null_mut();
        check(unsafe { sys::glm5_model_tokenizer(self.as_ptr(), &mut out) })?;
        if out.is_null() {
            return Ok(None);
        }
        Tokenizer::from_raw(out, self.path().to_path_buf()).map(Some)
    }
}
