//! Saving and restoring sessions (`glm5_session_save`, `glm5_session_save_file`,
//! `glm5_session_restore`, `glm5_session_restore_file`, `glm5_free`): include/glm5.h, "Saving
//! sessions".
//!
//! A saved session holds its tokens, caches, kept hidden rows and routing record, behind a
//! versioned header with the model's configuration fingerprint and the weight version in force,
//! a zstd-compressed payload and a checksum. A restored session continues bit for bit as the
//! original would (the sampler has no state: a draw depends on the seed and the position).

use std::os::raw::c_void;
use std::path::Path;
use std::ptr;

use crate::{check, path_to_cstring, sys, Error, Model, Session, Status};

/// Frees a buffer the library allocated (`glm5_free`) when dropped, also on unwinding.
struct LibBuffer(*mut c_void);

impl Drop for LibBuffer {
    fn drop(&mut self) {
        unsafe { sys::glm5_free(self.0) }
    }
}

/// The saved bound on tokens of a session the library just restored (glm5_session_max_tokens);
/// the session is freed if it cannot be read.
fn restored_max_tokens(s: *mut sys::glm5_session) -> Result<usize, Error> {
    let mut max = 0usize;
    let status = unsafe { sys::glm5_session_max_tokens(s, &mut max) };
    if let Err(e) = check(status) {
        unsafe { sys::glm5_session_free(s) };
        return Err(e);
    }
    Ok(max)
}

fn restore_flags(allow_other_version: bool) -> u32 {
    if allow_other_version {
        sys::GLM5_RESTORE_ANY_WEIGHT_VERSION
    } else {
        0
    }
}

impl Session {
    /// The session saved to bytes (`glm5_session_save`; the library's buffer is copied and
    /// freed). [`Model::restore`] turns them back into a session, in this process or another,
    /// on a model of the same configuration.
    ///
    /// Errors: OutOfMemory.
    pub fn save(&self) -> Result<Vec<u8>, Error> {
        let mut data: *mut c_void = ptr::null_mut();
        let mut size = 0usize;
        check(unsafe { sys::glm5_session_save(self.as_ptr(), &mut data, &mut size) })?;
        let buf = LibBuffer(data);
        if buf.0.is_null() {
            return Err(Error::new(
                Status::Internal,
                format!("glm5_session_save returned GLM5_OK and {size} bytes but no buffer"),
            ));
        }
        // SAFETY: on success the library hands over `size` initialised bytes at `data`, which
        // stay valid until glm5_free (done by `buf` after the copy).
        let bytes = unsafe { std::slice::from_raw_parts(buf.0.cast::<u8>(), size) }.to_vec();
        Ok(bytes)
    }

    /// The session saved to a file, created or replaced (`glm5_session_save_file`). Returns the
    /// file's size in bytes.
    ///
    /// Errors: Io (the file cannot be written), OutOfMemory.
    pub fn save_to(&self, path: impl AsRef<Path>) -> Result<usize, Error> {
        let p = path_to_cstring(path.as_ref())?;
        let mut size = 0usize;
        check(unsafe { sys::glm5_session_save_file(self.as_ptr(), p.as_ptr(), &mut size) })?;
        Ok(size)
    }
}

impl Model {
    /// A new session from bytes of [`Session::save`] (`glm5_session_restore`). It continues bit
    /// for bit as the saved session would, with the same tokens, caches, routing record and
    /// bound on tokens ([`Session::max_tokens`] reports the saved one). Kept logits are not restored
    /// ([`Session::logits`] is empty, as after a fork).
    ///
    /// `allow_other_version`: accept bytes saved under another weight version than the one in
    /// force (`GLM5_RESTORE_ANY_WEIGHT_VERSION`; the caches then hold what the old weights
    /// computed, as after an update; [`Session::recompute`] rebuilds them).
    ///
    /// Errors, each with its own message, and no byte string crashes: BadFormat (truncated or
    /// corrupt bytes), Unsupported (a future format version), Incompatible (saved on another
    /// model configuration), VersionMismatch (another weight version, unless
    /// `allow_other_version`), OutOfMemory.
    pub fn restore(&self, data: &[u8], allow_other_version: bool) -> Result<Session, Error> {
        let info = self.try_info()?;
        let mut out: *mut sys::glm5_session = ptr::null_mut();
        check(unsafe {
            sys::glm5_session_restore(
                self.as_ptr(),
                data.as_ptr().cast(),
                data.len(),
                restore_flags(allow_other_version),
                &mut out,
            )
        })?;
        let max = restored_max_tokens(out)?;
        self.wrap_session(out, "glm5_session_restore", &info, max)
    }

    /// [`Model::restore`] from a file written by [`Session::save_to`]
    /// (`glm5_session_restore_file`). Errors: as [`Model::restore`], plus Io when the file
    /// cannot be read.
    pub fn restore_file(
        &self,
        path: impl AsRef<Path>,
        allow_other_version: bool,
    ) -> Result<Session, Error> {
        let info = self.try_info()?;
        let p = path_to_cstring(path.as_ref())?;
        let mut out: *mut sys::glm5_session = ptr::null_mut();
        check(unsafe {
            sys::glm5_session_restore_file(
                self.as_ptr(),
                p.as_ptr(),
                restore_flags(allow_other_version),
                &mut out,
            )
        })?;
        let max = restored_max_tokens(out)?;
        self.wrap_session(out, "glm5_session_restore_file", &info, max)
    }
}
