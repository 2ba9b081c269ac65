//! Weight updates and weight versions (`glm5_model_weight_version`,
//! `glm5_model_update_from_folder`, `glm5_model_update_from_delta`, `glm5_weight_update_*`):
//! include/glm5.h, "Weight updates".
//!
//! Every way of updating has the same semantics:
//!
//! - Atomic: everything is read, checked (as a load checks) and converted before the weights
//!   change; a failed update leaves the model exactly as it was, version included.
//! - No waiting: a call in flight (on another thread) finishes on the weights it started with;
//!   calls that start after the update returns use the new ones. A sampling call never
//!   straddles an update: all its tokens carry one [`SampleResult::weight_version`]. Updates on
//!   one model are serialised.
//! - Sessions continue: sessions made before keep their caches (what the old weights computed)
//!   and compute new tokens with the new weights; [`Session::recompute`] rebuilds a session's
//!   caches with them.
//! - The loaded format: updated tensors are kept in the format the model was loaded with (a float
//!   tensor for an INT4 module is quantized with the loaded group size exactly as
//!   `glm5 quantize` does; for an FP8 module it is block-encoded; float dtypes convert).
//!
//! [`SampleResult::weight_version`]: crate::SampleResult::weight_version
//! [`Session::recompute`]: crate::Session::recompute

use std::ffi::CString;
use std::fmt;
use std::marker::PhantomData;
use std::os::raw::c_char;
use std::path::Path;
use std::ptr::{self, NonNull};

use crate::{check, path_to_cstring, sys, DType, Error, Model, Status};

/// The longest weight version: versions are 1 to 127 bytes of UTF-8 (`GLM5_WEIGHT_VERSION_SIZE`
/// with its NUL).
pub const WEIGHT_VERSION_MAX_BYTES: usize = sys::GLM5_WEIGHT_VERSION_SIZE - 1;

/// A version string as a C string. Its length and encoding are the library's to check (it names
/// the problem); only an interior NUL, which C cannot carry, is refused here.
fn version_cstring(version: &str) -> Result<CString, Error> {
    CString::new(version).map_err(|_| {
        Error::new(
            Status::InvalidArgument,
            format!("weight version {version:?} contains a NUL byte"),
        )
    })
}

/// The NUL-terminated version in a `char[GLM5_WEIGHT_VERSION_SIZE]` (the whole array if it has
/// no NUL, which the library never writes).
pub(crate) fn version_from_c(buf: &[c_char]) -> String {
    let bytes: Vec<u8> = buf
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// One tensor of [`Model::update_tensors`]: a checkpoint name, its dtype, shape and raw
/// little-endian bytes (as in a safetensors file). See [`WeightUpdate::add`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tensor<'a> {
    pub name: &'a str,
    pub dtype: DType,
    pub shape: &'a [usize],
    pub data: &'a [u8],
}

impl Model {
    /// The version of the weights in force (`glm5_model_weight_version`): "default" after
    /// loading, then the version of the last successful update. Thread-safe.
    pub fn weight_version(&self) -> Result<String, Error> {
        // Versions fit GLM5_WEIGHT_VERSION_SIZE, so one call suffices (no race between a size
        // query and a copy with an update on another thread).
        let mut buf = [0 as c_char; sys::GLM5_WEIGHT_VERSION_SIZE];
        let mut n = 0usize;
        check(unsafe {
            sys::glm5_model_weight_version(self.as_ptr(), buf.as_mut_ptr(), buf.len(), &mut n)
        })?;
        Ok(version_from_c(&buf))
    }

    /// Replace every weight with those of a Hugging Face folder of the same configuration
    /// (`glm5_model_update_from_folder`), in any supported format (the quantization scheme may
    /// differ), as weight version `version` (1 to [`WEIGHT_VERSION_MAX_BYTES`] bytes). When every
    /// tensor has the loaded dtype and shape the folder is adopted as it is: memory-mapped, bit
    /// for bit a fresh load of it (it must then stay unchanged on disk, as a loaded folder must);
    /// otherwise each tensor is converted to the loaded format.
    ///
    /// Errors: InvalidArgument (a bad version), Io / BadFormat / Unsupported (as loading the
    /// folder), Incompatible (another configuration: the message names the first differing
    /// key), OutOfMemory. On failure nothing changes, version included. Thread-safe.
    pub fn update_weights(&self, path: impl AsRef<Path>, version: &str) -> Result<(), Error> {
        let p = path_to_cstring(path.as_ref())?;
        let v = version_cstring(version)?;
        check(unsafe { sys::glm5_model_update_from_folder(self.as_ptr(), p.as_ptr(), v.as_ptr()) })
    }

    /// Apply a delta in the layout of slime's delta weight sync (`glm5_model_update_from_delta`;
    /// `--update-weight-mode delta`, disk transport): the `weight_vNNNNNN/` folder slime passes
    /// to `update_weights_from_disk`, with its `rank*_flush*.safetensors` files (encodings
    /// "indices", "deltas", "deltas_zstd") and the DONE marker. The changed elements overwrite
    /// the loaded bytes exactly, so a delta must be in each tensor's loaded dtype (for an INT4
    /// module, a delta of its INT4 tensors). `version` `None` takes the delta's
    /// `current_version`.
    ///
    /// Errors: InvalidArgument, Io, BadFormat (no DONE, a truncated or corrupt file, a position
    /// out of range, a tensor the model does not hold with that dtype and shape), Unsupported (an
    /// unknown encoding, a float delta for an INT4 module), VersionMismatch (the manifest's
    /// `prev_version` is not the loaded version), OutOfMemory. On failure nothing changes.
    /// Thread-safe.
    pub fn update_weights_delta(
        &self,
        path: impl AsRef<Path>,
        version: Option<&str>,
    ) -> Result<(), Error> {
        let p = path_to_cstring(path.as_ref())?;
        let v = version.map(version_cstring).transpose()?;
        check(unsafe {
            sys::glm5_model_update_from_delta(
                self.as_ptr(),
                p.as_ptr(),
                v.as_ref().map_or(ptr::null(), |v| v.as_ptr()),
            )
        })
    }

    /// Start a tensor-by-tensor update, as a trainer streams one (`glm5_weight_update_begin`):
    /// [`WeightUpdate::add`] each tensor, then [`WeightUpdate::commit`] once. Dropping the
    /// update without committing discards what was staged.
    pub fn begin_update(&self) -> Result<WeightUpdate<'_>, Error> {
        let mut out: *mut sys::glm5_weight_update = ptr::null_mut();
        check(unsafe { sys::glm5_weight_update_begin(self.as_ptr(), &mut out) })?;
        let ptr = NonNull::new(out).ok_or_else(|| {
            Error::new(
                Status::Internal,
                "glm5_weight_update_begin returned GLM5_OK but no update",
            )
        })?;
        Ok(WeightUpdate {
            ptr,
            model: PhantomData,
        })
    }

    /// Replace the given tensors as weight version `version`, in one atomic update
    /// ([`Model::begin_update`], [`WeightUpdate::add`] for each, [`WeightUpdate::commit`]).
    /// A name given twice keeps the last. On failure (of any tensor or of the commit) nothing
    /// changes.
    pub fn update_tensors(&self, tensors: &[Tensor<'_>], version: &str) -> Result<(), Error> {
        let mut u = self.begin_update()?;
        for t in tensors {
            u.add(t.name, t.dtype, t.shape, t.data)?;
        }
        u.commit(version)
    }
}

/// A staged tensor-by-tensor weight update (`glm5_weight_update`), from [`Model::begin_update`].
/// Nothing changes until [`WeightUpdate::commit`]; dropping it uncommitted discards it
/// (`glm5_weight_update_free`).
///
/// It borrows its model. `Send` (the library does not tie it to a thread), not `Sync` (one call
/// at a time; `add` takes `&mut self`).
pub struct WeightUpdate<'m> {
    ptr: NonNull<sys::glm5_weight_update>,
    model: PhantomData<&'m Model>,
}

// SAFETY: a handle may be used from any thread, one call at a time: `add` takes &mut self and
// `commit` takes self, so no two calls can overlap; the borrowed Model is Sync.
unsafe impl Send for WeightUpdate<'_> {}

impl WeightUpdate<'_> {
    /// The raw handle, for calling [`sys`] functions directly. Valid while `self` lives.
    pub fn as_ptr(&self) -> *mut sys::glm5_weight_update {
        self.ptr.as_ptr()
    }

    /// Stage one tensor by its checkpoint name (`glm5_weight_update_add`); it is checked and
    /// converted now, and `data` is copied (not kept). `data` holds the tensor's raw
    /// little-endian bytes, `shape` its sizes (at most 8 dimensions). Accepted:
    ///
    /// - a tensor the model holds, in its dtype and shape (an INT4 module's `weight_packed`,
    ///   `weight_scale`, `weight_zero_point` included), replaces it as given;
    /// - `"<module>.weight"` in F32, BF16 or F16 `[out, in]`, for any Linear module, is encoded in
    ///   the module's loaded format (INT4 with its group size, FP8 with its blocks, or its float
    ///   dtype);
    /// - any other float tensor (norm, embedding) in another float dtype is converted.
    ///
    /// Adding a name twice keeps the last. Errors: InvalidArgument (`data.len()` is not the
    /// shape's size, a name the model does not have, more than 8 dimensions), BadFormat (a dtype
    /// or shape that cannot become the loaded tensor: the message says what is expected),
    /// OutOfMemory. A failed add changes nothing (earlier adds stay staged).
    pub fn add(
        &mut self,
        name: &str,
        dtype: DType,
        shape: &[usize],
        data: &[u8],
    ) -> Result<(), Error> {
        let c_name = CString::new(name).map_err(|_| {
            Error::new(
                Status::InvalidArgument,
                format!("tensor name {name:?} contains a NUL byte"),
            )
        })?;
        let dims: Vec<i64> = shape
            .iter()
            .enumerate()
            .map(|(i, &d)| {
                i64::try_from(d).map_err(|_| {
                    Error::new(
                        Status::InvalidArgument,
                        format!("{name}: shape[{i}] is {d}, not a plausible size"),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        check(unsafe {
            sys::glm5_weight_update_add(
                self.ptr.as_ptr(),
                c_name.as_ptr(),
                dtype as sys::glm5_dtype,
                if dims.is_empty() {
                    ptr::null()
                } else {
                    dims.as_ptr()
                },
                dims.len(),
                data.as_ptr().cast(),
                data.len(),
            )
        })
    }

    /// [`WeightUpdate::add`] of an F32 tensor given as floats.
    pub fn add_f32(&mut self, name: &str, shape: &[usize], data: &[f32]) -> Result<(), Error> {
        let bytes: Vec<u8> = data.iter().flat_map(|f| f.to_le_bytes()).collect();
        self.add(name, DType::F32, shape, &bytes)
    }

    /// Install every staged tensor as weight version `version` (`glm5_weight_update_commit`),
    /// checked as a load checks (a non-finite scale is refused). The update is spent either way.
    ///
    /// Errors: InvalidArgument (nothing staged, a bad version), BadFormat, OutOfMemory; on
    /// failure nothing changes, version included.
    pub fn commit(self, version: &str) -> Result<(), Error> {
        let v = version_cstring(version)?;
        check(unsafe { sys::glm5_weight_update_commit(self.ptr.as_ptr(), v.as_ptr()) })
        // `self` drops here: glm5_weight_update_free.
    }
}

impl Drop for WeightUpdate<'_> {
    fn drop(&mut self) {
        unsafe { sys::glm5_weight_update_free(self.ptr.as_ptr()) }
    }
}

impl fmt::Debug for WeightUpdate<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeightUpdate")
            .field("ptr", &self.ptr)
            .finish()
    }
}
