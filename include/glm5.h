/*
 * glm5.h — the C interface of glm5, a CPU inference library for the GLM-5 model family
 * (Hugging Face `glm_moe_dsa`, `GlmMoeDsaForCausalLM`, GLM-5.2's shared indexer layers included)
 * and DeepSeek-V3.2 (`deepseek_v32`, `DeepseekV32ForCausalLM`), whose sparse attention it shares
 * (docs/architecture.md lists the differences).
 *
 * This header is the contract and the manual. It is written by hand; the Swift implementation
 * (Sources/GLM5CAPI) follows it, and a C test (Tests/c/test_capi.c) compiles against it and
 * links libglm5.so so that the two cannot drift apart. Whatever is not declared here is not API.
 *
 * ---------------------------------------------------------------------------------------------
 * Conventions (they hold for every function unless its own block says otherwise)
 *
 *  - Status codes. Every fallible function returns a glm5_status. GLM5_OK is 0; every other
 *    value names the kind of failure and glm5_last_error() returns a message that names what was
 *    wrong (the file, the tensor, expected and found shapes). Values are pinned forever.
 *  - State after failure. A failed call leaves its output arguments untouched (unless the block
 *    says otherwise) and every handle exactly as it was before the call.
 *  - Handles are opaque. Every *_free function accepts NULL and does nothing with it. The library
 *    keeps a registry of live handles: passing a handle that was already freed (or was never
 *    returned by the library) returns GLM5_ERR_INVALID_ARGUMENT instead of crashing. A handle is
 *    never given out twice (it is not the object's address), so a freed handle cannot reach a
 *    newer object. It is still the host's error.
 *  - Parameter structs are passed by pointer, start with `uint32_t struct_size`, are filled with
 *    defaults by the static inline glm5_*_init() functions of this header (so the size is always
 *    the one the host was compiled with), and only ever grow by appending fields. A struct_size
 *    smaller than the first version of the struct is rejected with GLM5_ERR_INVALID_ARGUMENT; a
 *    larger one (a host built against a newer header) is accepted and the unknown tail ignored.
 *    Passing NULL instead of a params pointer means "all defaults".
 *  - Strings are UTF-8 and NUL-terminated. Paths are file system paths.
 *  - Threads. Functions on different handles may be called from different threads at the same
 *    time. A single handle must not be used from two threads at once unless its block says so;
 *    a model is read-only after loading and may be shared by any number of threads.
 *  - Nothing a host passes in crashes the host: bad input returns a status.
 *  - Floating point. Every call computes in the standard environment (round to nearest,
 *    subnormals kept) on every thread it uses, whatever the host set (FTZ, DAZ, another rounding
 *    mode), and restores the calling thread's environment before returning. Results are
 *    therefore the same bits in any host on the same machine.
 *  - Instruction sets. The library needs AVX2 + FMA (x86-64-v3). Where the CPU has AVX-512 (F, VL,
 *    BW and DQ, as every AVX-512 CPU since 2017), the hot kernels use it, chosen once at run time; every choice gives the same bits. The
 *    environment variable GLM5_ISA=avx2, read at the first computation, forces the AVX2 kernels.
 *
 * Sample usage (error handling shortened):
 *
 *     glm5_model_params mp;
 *     glm5_model_params_init(&mp);
 *     mp.n_threads = 2;
 *     glm5_model *model = NULL;
 *     if (glm5_model_load("path/to/hf-folder", &mp, &model) != GLM5_OK) {
 *         fprintf(stderr, "load failed: %s\n", glm5_last_error());
 *         return 1;
 *     }
 *     glm5_model_info info;
 *     glm5_model_info_init(&info);
 *     glm5_model_get_info(model, &info);
 *     printf("vocab %u, layers %u\n", info.vocab_size, info.n_layers);
 *     glm5_model_free(model);
 * ---------------------------------------------------------------------------------------------
 */
#ifndef GLM5_H
#define GLM5_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* =============================================================================================
 * Versions
 * ============================================================================================= */

/* Library version (semantic versioning) of this header. */
#define GLM5_VERSION_MAJOR 0
#define GLM5_VERSION_MINOR 4
#define GLM5_VERSION_PATCH 0
#define GLM5_VERSION_NUMBER (GLM5_VERSION_MAJOR * 10000 + GLM5_VERSION_MINOR * 100 + GLM5_VERSION_PATCH)

/* ABI version: bumped whenever a change would break a host compiled against an older header
 * (a removed function, a changed signature or struct layout). Appending fields to a params
 * struct or adding functions does not bump it. Bindings compare GLM5_ABI_VERSION with
 * glm5_abi_version() at load time and refuse a mismatch. */
#define GLM5_ABI_VERSION 1

/* The ABI version of the loaded library (compare with GLM5_ABI_VERSION). Never fails. */
uint32_t glm5_abi_version(void);

/* The version of the loaded library as GLM5_VERSION_NUMBER computes it. Never fails. */
uint32_t glm5_version_number(void);

/* The version of the loaded library as text, e.g. "0.1.0". Static storage, never NULL,
 * never freed. */
const char *glm5_version_string(void);

/* =============================================================================================
 * Status codes and errors
 * ============================================================================================= */

/* Values are pinned: they never change meaning and are never reused. */
typedef enum glm5_status {
    GLM5_OK = 0,
    GLM5_ERR_INVALID_ARGUMENT = 1, /* NULL pointer, bad struct_size, value out of range, dead handle */
    GLM5_ERR_IO = 2,               /* a file or folder could not be opened, read or mapped */
    GLM5_ERR_BAD_FORMAT = 3,       /* a file is malformed: JSON, safetensors header, missing or
                                      mis-shaped tensor, inconsistent config */
    GLM5_ERR_UNSUPPORTED = 4,      /* well-formed, but something this version cannot run
                                      (model_type, dtype, quantization method) */
    GLM5_ERR_OUT_OF_MEMORY = 5,    /* an allocation failed or a size would overflow */
    GLM5_ERR_CONTEXT_FULL = 6,     /* a session would exceed its maximum number of tokens */
    GLM5_ERR_BUSY = 7,             /* the handle is in use by another call right now */
    GLM5_ERR_INTERNAL = 8,         /* a bug in glm5; the message says where */
    GLM5_ERR_BUFFER_TOO_SMALL = 9, /* a caller-allocated buffer is too small; the call reports
                                      the size needed */
    GLM5_ERR_RECORD_FULL = 10,     /* a session's routing record would pass its byte bound
                                      (glm5_session_params.record_max_bytes) */
    GLM5_ERR_VERSION_MISMATCH = 11,/* weight versions disagree: a delta or a saved session was made
                                      against other weights than the loaded ones */
    GLM5_ERR_INCOMPATIBLE = 12     /* made for another model configuration (an update folder, a
                                      saved session) */
} glm5_status;

/* A short, static description of a status code ("invalid argument", ...). Unknown values give
 * "unknown status". Never NULL, never freed. */
const char *glm5_status_string(glm5_status status);

/* The message of the most recent failed call made on this thread, or "" if no call on this
 * thread has failed. The message names what was wrong: the file, the tensor name, the expected
 * and the found shape. The pointer is valid until the next glm5 call on the same thread; copy it
 * to keep it. Successful calls do not clear it. Never NULL. */
const char *glm5_last_error(void);

/* =============================================================================================
 * Limits
 *
 * Every size a host passes in has an upper bound, checked before anything is read or allocated;
 * a value above it returns the status given here and changes nothing. The per-function blocks
 * repeat each bound where it applies.
 *
 *   any size_t count, capacity or offset   at most 2^40 (so (size_t)-1 is refused):
 *   argument                               GLM5_ERR_INVALID_ARGUMENT
 *   glm5_model_params.n_threads            0 ..= 1024                            INVALID_ARGUMENT
 *   config.json sizes (vocab_size, max_position_embeddings, layers, heads, ranks, experts, ...)
 *                                          1 ..= 2^24 each, per-token widths ..= 2^30: loading
 *                                          fails with GLM5_ERR_BAD_FORMAT above them
 *   glm5_session_params.max_tokens         0 ..= max_position_embeddings         INVALID_ARGUMENT
 *   glm5_session_params.record_max_bytes   0 (1 GiB) ..= 2^62 - 1                INVALID_ARGUMENT;
 *                                          a record that would pass it: GLM5_ERR_RECORD_FULL
 *   tokens per append (n_tokens, each n_tokens[i] of a batch), n_new, max_new_tokens
 *                                          at most max_tokens - the tokens held:
 *                                          GLM5_ERR_CONTEXT_FULL
 *   tokens scored (glm5_model_score*, glm5_model_mtp_draft_logits)
 *                                          1 ..= max_position_embeddings         CONTEXT_FULL
 *   glm5_sample_output.capacity            >= max_new_tokens                     INVALID_ARGUMENT
 *   sessions per batched call (n)          1 ..= GLM5_MAX_BATCH                  INVALID_ARGUMENT
 *   n_stop_token_ids                       0 ..= GLM5_MAX_STOP_TOKEN_IDS         INVALID_ARGUMENT
 *   n_top_logprobs                         0 ..= GLM5_MAX_TOP_LOGPROBS           INVALID_ARGUMENT
 *   speculative                            0 ..= GLM5_MAX_SPECULATIVE            INVALID_ARGUMENT
 *   text_len (glm5_tokenize, glm5_tokenizer_token_id)
 *                                          0 ..= GLM5_MAX_TEXT_BYTES             INVALID_ARGUMENT
 *   n_ids (glm5_detokenize, glm5_detokenizer_push)
 *                                          0 ..= GLM5_MAX_DETOKENIZE_IDS         INVALID_ARGUMENT
 *   glm5_weight_update_add                 n_dims 0 ..= 8, each shape[i] 0 ..= 2^40, n_bytes
 *                                          = the shape's bytes (a product that overflows is
 *                                          INVALID_ARGUMENT)
 *   weight versions                        1 ..= 127 bytes (GLM5_WEIGHT_VERSION_SIZE with the NUL)
 *
 * Memory grows with use, not with a bound: a session of max_position_embeddings tokens costs
 * nothing until its tokens are appended. When memory runs out, the call returns
 * GLM5_ERR_OUT_OF_MEMORY; its block says what it leaves (as a rule, every handle as it was).
 * The library keeps 8 MiB of headroom for its own small allocations: a call that allocates
 * returns GLM5_ERR_OUT_OF_MEMORY, before it changes anything, when fewer than 8 MiB of address
 * space could be mapped as it starts, and a large allocation that would leave less is refused
 * the same way (glm5_session_n_tokens, glm5_session_max_tokens and
 * glm5_session_get_record_info do not check, so a host can inspect its sessions at the limit).
 * Each thread that runs the library's kernels keeps one scratch region for its life (a token
 * block's activations and a work item's decoded weights: about 2 MB on the calling thread on
 * the bench model, a few MB on GLM-5's widest layers), grown on first need and freed when the thread
 * exits; when it cannot grow, the kernels take a slower path with the same results.
 * ============================================================================================= */

/* Most sessions in one glm5_sample_batch or glm5_append_batch call. */
#define GLM5_MAX_BATCH 4096
/* Most ids in glm5_sampling_params.stop_token_ids. */
#define GLM5_MAX_STOP_TOKEN_IDS 4096
/* Most bytes of text one glm5_tokenize (or glm5_tokenizer_token_id) call takes: 2^28 (256 MiB). */
#define GLM5_MAX_TEXT_BYTES 268435456
/* Most ids one glm5_detokenize or glm5_detokenizer_push call takes: 2^28. */
#define GLM5_MAX_DETOKENIZE_IDS 268435456

/* =============================================================================================
 * Weight data types
 * ============================================================================================= */

/* Element types of checkpoint tensors. Values are pinned. glm5_model_info.weight_dtypes is a
 * bit mask with bit (1u << dtype) set for each type present among the model's weights. */
typedef enum glm5_dtype {
    GLM5_DTYPE_F32 = 0,
    GLM5_DTYPE_BF16 = 1,
    GLM5_DTYPE_F16 = 2,
    GLM5_DTYPE_F8_E4M3 = 3,
    GLM5_DTYPE_F8_E5M2 = 4,
    GLM5_DTYPE_I8 = 5,
    GLM5_DTYPE_U8 = 6,
    GLM5_DTYPE_I16 = 7,
    GLM5_DTYPE_I32 = 8,
    GLM5_DTYPE_I64 = 9,
    GLM5_DTYPE_F64 = 10,
    GLM5_DTYPE_BOOL = 11,
    GLM5_DTYPE_U16 = 12,
    GLM5_DTYPE_U32 = 13,
    GLM5_DTYPE_U64 = 14
} glm5_dtype;

/* The safetensors name of a dtype ("F32", "BF16", "F8_E4M3", ...), or "unknown". Static. */
const char *glm5_dtype_name(glm5_dtype dtype);

/* =============================================================================================
 * Models
 * ============================================================================================= */

/* A loaded checkpoint: its configuration and its memory-mapped weights. Read-only after loading
 * and safe to share between threads. */
typedef struct glm5_model glm5_model;

/* Options for glm5_model_load. Fill with glm5_model_params_init, then change fields. */
typedef struct glm5_model_params {
    uint32_t struct_size; /* sizeof(glm5_model_params), set by glm5_model_params_init */
    int32_t n_threads;    /* compute threads; 0 (the default) = one per available CPU;
                             must be in [0, 1024] */
} glm5_model_params;

/* Fill *params with the defaults and struct_size = sizeof(glm5_model_params) as this header
 * defines it. NULL is ignored. Inline, so that a host never gets a size it was not built with. */
static inline void glm5_model_params_init(glm5_model_params *params) {
    if (!params) return;
    memset(params, 0, sizeof *params);
    params->struct_size = (uint32_t)sizeof *params;
    params->n_threads = 0;
}

/* Load a Hugging Face model folder.
 *
 *   path       IN  folder holding config.json and either model.safetensors or
 *                  model.safetensors.index.json with its shards.
 *   params     IN  options, or NULL for defaults.
 *   out_model  OUT on success, a new model; free it with glm5_model_free.
 *
 * Weights may be F32, BF16 or F16; FP8 e4m3 with block scales (quantization_config quant_method
 * "fp8", weight_block_size, as the official GLM-5-FP8 release); or INT4 in the compressed-tensors
 * "pack-quantized" format (groups of 32, 64 or 128, symmetric or asymmetric, any subset of modules
 * quantized). Which Linear layers are quantized is read from the tensors present; compute reads
 * every format in place (nothing is expanded to fp32). Scales are checked to be finite at load;
 * FP8 weight codes are not scanned (a NaN code 0x7F/0xFF computes as +-480 x scale).
 *
 * The weight files are memory-mapped read-only and stay mapped until the model is freed (and
 * every session using it is freed). Loading checks that config.json is complete and consistent,
 * that every tensor the configuration implies is present with the implied shape and a supported
 * dtype, and that no tensor is left over; the multi-token-prediction layer
 * (model.layers.{num_hidden_layers}.*) is recognised and recorded (glm5_model_info.has_mtp).
 *
 * Returns GLM5_OK; GLM5_ERR_INVALID_ARGUMENT (NULL path or out_model, bad struct_size, n_threads
 * out of range); GLM5_ERR_IO (the folder, config.json or a weight file cannot be opened or
 * mapped); GLM5_ERR_BAD_FORMAT (invalid JSON, a missing or inconsistent config key, a malformed
 * safetensors file, a missing, mis-shaped or unexpected tensor, a shard index naming a missing
 * file); GLM5_ERR_UNSUPPORTED (a model_type or dtype this version cannot run);
 * GLM5_ERR_OUT_OF_MEMORY. On failure *out_model is not written and nothing stays mapped. */
glm5_status glm5_model_load(const char *path, const glm5_model_params *params, glm5_model **out_model);

/* Release a model. NULL is ignored. Sessions created from the model keep its weights alive, so
 * freeing a model while sessions exist is allowed; the memory goes with the last of them. After
 * this call the handle itself is invalid. */
void glm5_model_free(glm5_model *model);

/* Facts about a loaded model. Fill with glm5_model_info_init before glm5_model_get_info. */
typedef struct glm5_model_info {
    uint32_t struct_size;             /* sizeof(glm5_model_info), set by glm5_model_info_init */
    uint32_t vocab_size;              /* rows of embed_tokens and lm_head */
    uint32_t hidden_size;
    uint32_t n_layers;                /* num_hidden_layers, without the MTP layer */
    uint32_t n_dense_layers;          /* leading layers with a dense SwiGLU MLP (first_k_dense_replace) */
    uint32_t n_moe_layers;            /* n_layers - n_dense_layers */
    uint32_t n_heads;                 /* attention heads */
    uint32_t q_lora_rank;
    uint32_t kv_lora_rank;            /* width of the cached latent */
    uint32_t qk_nope_head_dim;
    uint32_t qk_rope_head_dim;        /* width of the cached RoPE key */
    uint32_t v_head_dim;
    uint32_t n_routed_experts;
    uint32_t n_experts_per_tok;
    uint32_t n_shared_experts;
    uint32_t index_n_heads;           /* DSA lightning indexer heads */
    uint32_t index_head_dim;
    uint32_t index_topk;              /* keys selected per query by the indexer */
    uint32_t max_position_embeddings;
    uint32_t has_mtp;                 /* 1 if the checkpoint holds the multi-token-prediction layer */
    uint32_t n_mtp_layers;            /* number of MTP layers present (0 or num_nextn_predict_layers) */
    uint32_t weight_dtypes;           /* bit mask: bit (1u << glm5_dtype) per dtype among the weights */
    uint64_t n_parameters;            /* elements in all weight tensors, MTP layer included */
    uint64_t weight_file_bytes;       /* bytes of tensor data in the weight files */
    uint32_t weight_formats;          /* bit mask of glm5_weight_format among the Linear weights */
    uint32_t reserved0;               /* 0 */
    uint64_t resident_weight_bytes;   /* memory the weights take once every one has been used: the
                                         mapped tensor data plus what loading copied or repacked
                                         (fp32 norm vectors, ...) plus what updates hold. Quantized
                                         weights are never expanded to fp32. */
    /* --- appended in 0.2 --- */
    uint64_t updated_weight_bytes;    /* of those, bytes of tensors weight updates replaced, held in
                                         owned memory (0 until an update) */
    uint64_t n_weight_updates;        /* updates applied since loading */
} glm5_model_info;

/* How Linear weights are stored (bits of glm5_model_info.weight_formats). Values are pinned. */
typedef enum glm5_weight_format {
    GLM5_FORMAT_FLOAT = 1,      /* F32, BF16 or F16 [out, in] */
    GLM5_FORMAT_FP8_BLOCK = 2,  /* F8_E4M3 with F32 block scales (weight_scale_inv), e.g. 128x128 */
    GLM5_FORMAT_INT4_GROUP = 4  /* compressed-tensors pack-quantized INT4, groups of 32/64/128 */
} glm5_weight_format;

/* Fill *info with zeros and set struct_size = sizeof(glm5_model_info) of this header. Inline. */
static inline void glm5_model_info_init(glm5_model_info *info) {
    if (!info) return;
    memset(info, 0, sizeof *info);
    info->struct_size = (uint32_t)sizeof *info;
}

/* Write the model's facts into *info (only the first info->struct_size bytes are written).
 * Returns GLM5_OK or GLM5_ERR_INVALID_ARGUMENT (NULL or dead model, NULL info, struct_size too
 * small). Thread-safe. */
glm5_status glm5_model_get_info(const glm5_model *model, glm5_model_info *info);

/* Log-probabilities of every token of a sequence under the model, from an empty context:
 *
 *   logprobs[i] = log p(tokens[i] | tokens[0..i-1])   for i >= 1, and NaN for i = 0,
 *
 * the raw model distribution at temperature 1 (log-softmax of the unprocessed logits, computed
 * with a stable log-sum-exp in double precision). This is what a trainer recomputes for
 * teacher-forced scoring; it equals, bit for bit, the logprobs of appending the same tokens to a
 * session in any split (see glm5_session_append).
 *
 *   model     IN  a loaded model.
 *   tokens    IN  n_tokens ids, each in [0, vocab_size).
 *   n_tokens  IN  1 ..= max_position_embeddings.
 *   logprobs  OUT n_tokens floats.
 *
 * Returns GLM5_OK; GLM5_ERR_INVALID_ARGUMENT (NULL or dead model, NULL tokens or logprobs,
 * n_tokens 0, an id out of range: the message names its index); GLM5_ERR_CONTEXT_FULL (longer
 * than max_position_embeddings); GLM5_ERR_OUT_OF_MEMORY. On failure logprobs is not written.
 * Thread-safe: any number of threads may score with one model at once. */
glm5_status glm5_model_score(const glm5_model *model, const int32_t *tokens, size_t n_tokens, float *logprobs);

/* =============================================================================================
 * Sessions
 *
 * A session is one token sequence and its caches: per layer, the compressed attention latent and
 * the RoPE key (kv_lora_rank + qk_rope_head_dim floats per token) and the DSA indexer key
 * (index_head_dim floats). Tokens are appended (prefill for many, decode for one; the results do
 * not depend on how a sequence is split into calls), and the session can be truncated back.
 *
 * Attention is sparse as in DeepSeek Sparse Attention: a query whose context is longer than
 * index_topk reads only the index_topk keys its layer's lightning indexer selects.
 * Top-k rule (indexer and MoE router alike): higher score first; equal scores go to the lower
 * index (key position or expert id); NaN ranks last. Selections are therefore deterministic and
 * independent of the thread count.
 *
 * Many sessions can run in one forward pass (glm5_sample_batch, glm5_append_batch): each row of
 * the pass is one (session, position) and is computed exactly as it would be alone, so batching
 * never changes a result. A call reserves the cache room and scratch it needs before it changes
 * anything, so running out of memory is reported before the first token, with every session
 * unchanged. While a call uses a session, any other call on that session returns GLM5_ERR_BUSY
 * (glm5_session_cancel excepted).
 * ============================================================================================= */

typedef struct glm5_session glm5_session;

typedef struct glm5_session_params {
    uint32_t struct_size; /* sizeof(glm5_session_params), set by glm5_session_params_init */
    uint32_t max_tokens;  /* most tokens the session may hold; 0 (default) = the model's
                             max_position_embeddings, which is also the upper bound. Cache memory
                             grows with use, not with this number. */
    /* --- appended in 0.2 --- */
    uint32_t record;      /* 0 (default): no routing record. 1: record every token's DSA
                             selections and MoE routes (see "Routing record and replay") */
    uint32_t no_mtp;      /* 0 (default): when the model has an MTP layer, keep its cache current
                             on every append and sampling step, so that sampling can speculate
                             (glm5_sampling_params.speculative); it costs that one layer per
                             token. 1: do not (speculation is then GLM5_ERR_INVALID_ARGUMENT).
                             (Named reserved0, always 0, before 0.4.) */
    uint64_t record_max_bytes; /* bound on the record's memory; 0 = the default, 1 GiB. An append
                             or sampling call that would pass it fails with GLM5_ERR_RECORD_FULL
                             before anything changes */
} glm5_session_params;

/* Fill *params with the defaults. NULL is ignored. Inline. */
static inline void glm5_session_params_init(glm5_session_params *params) {
    if (!params) return;
    memset(params, 0, sizeof *params);
    params->struct_size = (uint32_t)sizeof *params;
}

/* Create an empty session on a model.
 *
 *   model        IN  a loaded model. The session keeps the model's weights alive: the model may
 *                    be freed before the session.
 *   params       IN  options, or NULL for defaults.
 *   out_session  OUT a new session; free it with glm5_session_free.
 *
 * Returns GLM5_OK; GLM5_ERR_INVALID_ARGUMENT (NULL or dead model, NULL out_session, bad
 * struct_size, max_tokens above max_position_embeddings); GLM5_ERR_OUT_OF_MEMORY. On failure
 * *out_session is not written. */
glm5_status glm5_session_new(glm5_model *model, const glm5_session_params *params, glm5_session **out_session);

/* Free a session and its caches. NULL is ignored. */
void glm5_session_free(glm5_session *session);

/* Which logits an append keeps for glm5_session_get_logits. Values are pinned. */
typedef enum glm5_logits {
    GLM5_LOGITS_NONE = 0, /* keep none (cheapest: the vocabulary projection is skipped) */
    GLM5_LOGITS_LAST = 1, /* the last appended position: [1, vocab_size] */
    GLM5_LOGITS_ALL = 2   /* every appended position: [n_tokens, vocab_size] (distillation) */
} glm5_logits;

/* Append tokens to a session: prefill for n_tokens > 1, decode for 1.
 *
 *   session   IN/OUT the session.
 *   tokens    IN     n_tokens ids, each in [0, vocab_size).
 *   n_tokens  IN     >= 1; the session must have room (glm5_session_params.max_tokens).
 *   keep      IN     which logits to keep for glm5_session_get_logits (replacing what an earlier
 *                    call kept).
 *   logprobs  OUT    NULL, or n_tokens floats: logprobs[i] = log p(tokens[i] | everything before
 *                    it in the session), temperature 1, raw distribution (as glm5_model_score);
 *                    NaN for the very first token of the session.
 *
 * Splitting a sequence into appends of any sizes gives bitwise the same logits, logprobs and
 * cache as one append, whatever the thread count: every query row is computed on its own, in a
 * fixed order (row-invariant kernels).
 *
 * Returns GLM5_OK; GLM5_ERR_INVALID_ARGUMENT (NULL or dead session, NULL tokens, n_tokens 0, an
 * id out of range: the message names its index and value); GLM5_ERR_CONTEXT_FULL (the tokens do
 * not fit); GLM5_ERR_BUSY (another thread is using the session); GLM5_ERR_OUT_OF_MEMORY. On
 * failure the session is exactly as it was (tokens, caches, kept logits) and stays usable. */
glm5_status glm5_session_append(glm5_session *session, const int32_t *tokens, size_t n_tokens,
                                glm5_logits keep, float *logprobs);

/* Copy the logits kept by the last successful append into a caller buffer.
 *
 *   out       OUT    capacity floats, row-major [n_rows, vocab_size]; may be NULL when capacity is 0.
 *   capacity  IN     floats available at out.
 *   n_rows    OUT    NULL, or the number of kept rows (0 after GLM5_LOGITS_NONE, generate or
 *                    truncate).
 *   n_floats  OUT    NULL, or the number of floats the logits take (n_rows * vocab_size), written
 *                    also when the buffer is too small, so that a first call with capacity 0
 *                    tells the size.
 *
 * Returns GLM5_OK; GLM5_ERR_BUFFER_TOO_SMALL (capacity < n_floats; nothing copied);
 * GLM5_ERR_INVALID_ARGUMENT (NULL or dead session, NULL out with capacity > 0); GLM5_ERR_BUSY. */
glm5_status glm5_session_get_logits(glm5_session *session, float *out, size_t capacity,
                                    size_t *n_rows, size_t *n_floats);

/* Greedy generation: n_new times, take the most likely next token (ties to the lower id, NaN
 * logits last), report it and its logprob (temperature 1, as glm5_model_score), and append it.
 * The same tokens as glm5_session_sample at temperature 0 with no stop ids.
 *
 *   tokens_out    OUT n_new ids.
 *   logprobs_out  OUT NULL, or n_new floats.
 *
 * The session must hold at least one token. It stops only after n_new tokens (stop ids and
 * sampling: glm5_session_sample).
 * Returns GLM5_OK; GLM5_ERR_INVALID_ARGUMENT (NULL or dead session, NULL tokens_out with n_new >
 * 0, an empty session); GLM5_ERR_CONTEXT_FULL (n_new tokens do not fit: checked before anything
 * is generated); GLM5_ERR_BUSY; GLM5_ERR_OUT_OF_MEMORY (the tokens generated so far stay
 * appended; glm5_session_n_tokens tells how many). Kept logits are cleared. */
glm5_status glm5_session_generate(glm5_session *session, size_t n_new, int32_t *tokens_out, float *logprobs_out);

/* The number of tokens the session holds. Returns GLM5_OK or GLM5_ERR_INVALID_ARGUMENT (NULL or
 * dead session, NULL out); GLM5_ERR_BUSY. */
glm5_status glm5_session_n_tokens(glm5_session *session, size_t *out);

/* The most tokens the session may hold (its max_tokens; for a restored session, the saved one).
 * Returns GLM5_OK or GLM5_ERR_INVALID_ARGUMENT (NULL or dead session, NULL out); GLM5_ERR_BUSY. */
glm5_status glm5_session_max_tokens(glm5_session *session, size_t *out);

/* Copy the session's token ids. Same two-call pattern as glm5_session_get_logits: *n_out (if not
 * NULL) receives the count; GLM5_ERR_BUFFER_TOO_SMALL when capacity is smaller. */
glm5_status glm5_session_get_tokens(glm5_session *session, int32_t *out, size_t capacity, size_t *n_out);

/* Shorten the session to its first n_tokens tokens (rolling back speculative or agentic steps).
 * Equivalent, for everything later appended, to a session that only ever held those tokens.
 * Kept logits are cleared.
 * Returns GLM5_OK; GLM5_ERR_INVALID_ARGUMENT (NULL or dead session, n_tokens greater than the
 * session holds); GLM5_ERR_BUSY; GLM5_ERR_OUT_OF_MEMORY (session unchanged). */
glm5_status glm5_session_truncate(glm5_session *session, size_t n_tokens);

/* =============================================================================================
 * Routing record and replay (Rollout Routing Replay, "R3")
 *
 * The MoE router and the DSA indexer make discrete choices that a few ulps can flip, and a
 * flipped choice is a different function. A trainer that recomputes logprobs can replay exactly
 * the choices the rollout made. A session created with glm5_session_params.record = 1 records,
 * for every token that passes through the model (appends, sampling, forks and truncation follow
 * the tokens), in flat arrays (row t = the token at position t):
 *
 *   top-k   int32 [n_tokens, n_layers, index_topk]       the keys each layer's attention read,
 *                                                        ascending, padded with -1 (fewer than
 *                                                        index_topk keys exist before position
 *                                                        index_topk - 1)
 *   routes  int32 [n_tokens, n_moe_layers, n_experts_per_tok]   the routed experts of each MoE
 *                                                        layer (in layer order), ascending
 *           float [n_tokens, n_moe_layers, n_experts_per_tok]   their combine weights, after
 *                                                        normalisation and routed_scaling_factor
 *
 * (n_layers, n_moe_layers, ... as glm5_model_info; the MTP layer is not recorded.) What a sampled
 * trajectory records equals what scoring it afterwards records, bit for bit. Recording costs
 * nothing when off, and its memory is bounded by record_max_bytes.
 *
 * Replay (glm5_session_append_replay, glm5_model_score_replay) uses given selections and/or
 * routes instead of computing them; the layouts are the record's, for the appended tokens only.
 * A replayed selection replaces the indexer's choice on every layer (the indexer's keys are still
 * computed and cached, so later tokens can run normally). Replayed expert ids replace the
 * router's choice; their weights are the host's if given, else the router computes them from its
 * current logits for those ids (sigmoid of the chosen experts' logits, normalised and scaled
 * exactly as usual). Replaying what was recorded, on the same weights, reproduces the recorded
 * logprobs bit for bit. Replay data is checked before anything changes: each selection strictly
 * ascending within [0, position], at least one key, -1 only as trailing padding; each route
 * n_experts_per_tok distinct ascending ids in [0, n_routed_experts); weights finite. A session
 * that records while replaying records what it replayed.
 * ============================================================================================= */

typedef struct glm5_record_info {
    uint32_t struct_size;        /* sizeof(glm5_record_info), set by glm5_record_info_init */
    uint32_t recording;          /* 1 if the session records */
    uint64_t n_tokens;           /* rows recorded (the session's tokens) */
    uint32_t n_layers;           /* L */
    uint32_t index_topk;         /* K */
    uint32_t n_moe_layers;       /* M */
    uint32_t n_experts_per_tok;  /* k */
    uint64_t bytes_per_token;    /* 4 L K + 8 M k */
    uint64_t bytes;              /* memory the record holds now */
    uint64_t max_bytes;          /* its bound */
} glm5_record_info;

static inline void glm5_record_info_init(glm5_record_info *info) {
    if (!info) return;
    memset(info, 0, sizeof *info);
    info->struct_size = (uint32_t)sizeof *info;
}

/* Describe a session's record (recording 0 and zero sizes if it has none).
 * Returns GLM5_OK, GLM5_ERR_INVALID_ARGUMENT (NULL or dead session, NULL info, bad struct_size),
 * GLM5_ERR_BUSY. */
glm5_status glm5_session_get_record_info(glm5_session *session, glm5_record_info *info);

/* Copy the recorded selections of tokens [first, first + n_tokens): out holds capacity ints and
 * receives [n_tokens, n_layers, index_topk]. Two-call pattern: *n_out (if not NULL) receives the
 * ints needed; GLM5_ERR_BUFFER_TOO_SMALL when capacity is smaller (nothing copied).
 * Returns GLM5_OK; GLM5_ERR_INVALID_ARGUMENT (NULL or dead session, a session that does not
 * record, first + n_tokens beyond the tokens recorded, NULL out with capacity > 0);
 * GLM5_ERR_BUFFER_TOO_SMALL; GLM5_ERR_BUSY. */
glm5_status glm5_session_get_recorded_topk(glm5_session *session, size_t first, size_t n_tokens,
                                           int32_t *out, size_t capacity, size_t *n_out);

/* Copy the recorded routes of tokens [first, first + n_tokens): expert_ids and expert_weights
 * each hold capacity entries and receive [n_tokens, n_moe_layers, n_experts_per_tok]; either may
 * be NULL (not both, unless capacity is 0). Two-call pattern and errors as
 * glm5_session_get_recorded_topk. */
glm5_status glm5_session_get_recorded_routes(glm5_session *session, size_t first, size_t n_tokens,
                                             int32_t *expert_ids, float *expert_weights, size_t capacity,
                                             size_t *n_out);

/* Selections and routes to replay for the tokens of one call (layouts as the record's). */
typedef struct glm5_replay {
    uint32_t struct_size;          /* sizeof(glm5_replay), set by glm5_replay_init */
    uint32_t reserved0;            /* 0 */
    const int32_t *topk;           /* NULL, or [n_tokens, n_layers, index_topk] */
    const int32_t *expert_ids;     /* NULL, or [n_tokens, n_moe_layers, n_experts_per_tok] */
    const float *expert_weights;   /* NULL (the router weighs the replayed ids), or the same shape
                                      as expert_ids; needs expert_ids */
} glm5_replay;

static inline void glm5_replay_init(glm5_replay *replay) {
    if (!replay) return;
    memset(replay, 0, sizeof *replay);
    replay->struct_size = (uint32_t)sizeof *replay;
}

/* glm5_session_append_scaled with replayed selections and/or routes (replay NULL, or with both
 * arrays NULL, is a plain append). logprobs and scaled_logprobs may each be NULL; temperature as
 * glm5_session_append_scaled (1 when only raw logprobs are wanted).
 * Returns the statuses of glm5_session_append_scaled; GLM5_ERR_INVALID_ARGUMENT also for replay
 * data out of range (the message names the token, layer and entry). On failure nothing changes. */
glm5_status glm5_session_append_replay(glm5_session *session, const int32_t *tokens, size_t n_tokens,
                                       glm5_logits keep, const glm5_replay *replay, float temperature,
                                       float *logprobs, float *scaled_logprobs);

/* glm5_model_score_scaled with replayed selections and/or routes: the trainer-side R3
 * recomputation. Thread-safe. */
glm5_status glm5_model_score_replay(const glm5_model *model, const int32_t *tokens, size_t n_tokens,
                                    const glm5_replay *replay, float temperature, float *logprobs,
                                    float *scaled_logprobs);

/* Recompute the session's caches (and record) from its tokens with the model's current weights,
 * as a new session appending the same tokens would (after a weight update; see "Weight
 * updates"). Kept logits are cleared. On failure the session is unchanged.
 * Returns GLM5_OK, GLM5_ERR_INVALID_ARGUMENT, GLM5_ERR_BUSY, GLM5_ERR_OUT_OF_MEMORY. */
glm5_status glm5_session_recompute(glm5_session *session);

/* Append to a session as glm5_session_append does, and also report the temperature-scaled
 * logprobs of the appended tokens (prompt logprobs for a sampled continuation; SGLang's
 * input_token_logprobs):
 *
 *   scaled_logprobs[i] = log-softmax(logits / temperature)[tokens[i]]   (NaN for the session's
 *                                                                        first token)
 *
 * computed exactly as glm5_session_sample reports scaled logprobs (see "Sampling" below), so a
 * sampled continuation and its later teacher-forced scoring give bitwise the same values.
 * temperature 0 gives the raw logprobs (SGLang's convention). logprobs and scaled_logprobs may
 * each be NULL. Errors as glm5_session_append, plus GLM5_ERR_INVALID_ARGUMENT for a temperature
 * that is negative, infinite or NaN. */
glm5_status glm5_session_append_scaled(glm5_session *session, const int32_t *tokens, size_t n_tokens,
                                       glm5_logits keep, float temperature, float *logprobs,
                                       float *scaled_logprobs);

/* A new session holding the same tokens, caches and sampler position as `session` (the draw of
 * a position depends only on the seed and the position, so a fork continues exactly as the
 * original would). Prefill a prompt once, fork it for a group of trajectories, and give each
 * trajectory its own seed. The fork has the original's max_tokens; kept logits are not copied.
 * Memory is proportional to the tokens held (the caches are copied).
 * Returns GLM5_OK; GLM5_ERR_INVALID_ARGUMENT (NULL or dead session, NULL out_session);
 * GLM5_ERR_BUSY (the session is in use by another call); GLM5_ERR_OUT_OF_MEMORY. */
glm5_status glm5_session_fork(glm5_session *session, glm5_session **out_session);

/* Ask the sampling call running on `session` (glm5_session_sample or a glm5_sample_batch that
 * includes it) to stop at the next token boundary. Tokens generated so far stay appended and are
 * reported, with finish_reason GLM5_FINISH_CANCELLED. This is the one session function that may
 * be called from another thread while a call runs on the session. A cancel that arrives while no
 * sampling call runs is kept and stops the next one before its first token (0 tokens, CANCELLED);
 * every sampling call that observes a cancel consumes it (one with max_new_tokens 0 has no token
 * boundary: it neither observes nor consumes a cancel).
 * Returns GLM5_OK or GLM5_ERR_INVALID_ARGUMENT (NULL or dead session). */
glm5_status glm5_session_cancel(glm5_session *session);

/* =============================================================================================
 * Sampling
 *
 * Each new token is drawn from the logits at the end of the session. What is computed, in this
 * order (all in double precision from the float32 logits l[0..V)):
 *
 *   1. temperature   s_i = l_i / temperature.  temperature 0 means greedy: the most likely token
 *                    (ties to the lower id, NaN logits last) and steps 2-6 are skipped.
 *   2. distribution  m = max_i s_i, w_i = exp(s_i - m), Z = sum_i w_i, p_i = w_i / Z (every sum
 *                    here runs in ascending id order). NaN logits get w_i = 0 (never drawn).
 *   3. rank order    tokens sorted by logit l_i descending (the order of s_i), equal logits by
 *                    lower id first, NaN last.
 *   4. top-k         (top_k > 0) keep the first top_k tokens of the rank order.
 *   5. top-p         (top_p < 1) walking the rank order and summing p_i, keep a token while the
 *                    sum of the tokens before it is < top_p: the smallest set of most likely
 *                    tokens of the temperature-scaled distribution whose probability reaches
 *                    top_p, the token that crosses it included.
 *   6. min-p         (min_p > 0) keep tokens with w_i >= min_p, that is p_i >= min_p * max_j p_j
 *                    (the most likely token has w = 1).
 *      The kept set K is the intersection of 4-6 (each is a prefix of the rank order).
 *   7. renormalise   W = sum over K of w_i (ascending id order); processed p'_i = w_i / W on K.
 *   8. draw          (x0, x1, x2, x3) = Philox4x32-10(counter = (pos & 0xffffffff, pos >> 32, 0, 0),
 *                                                     key = (seed & 0xffffffff, seed >> 32))
 *                    where pos is the absolute position the new token takes in the session
 *                    (the session's token count before it) and seed is glm5_sampling_params.seed;
 *                    u = ((x1 << 32 | x0) >> 11) * 2^-53, a double in [0, 1);
 *                    walking K in ascending id order with c += w_i, the token is the first i
 *                    with c > u * W (if rounding leaves none, the last i of K with w_i > 0).
 *
 * Philox4x32-10 is Salmon et al. (SC'11) as in Random123 and curand (numpy's Philox is the 4x64
 * variant, a different generator): 10 rounds of
 *   (hi0, lo0) = mulhilo32(0xD2511F53, c0), (hi1, lo1) = mulhilo32(0xCD9E8D57, c2),
 *   c = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0), then k0 += 0x9E3779B9, k1 += 0xBB67AE85
 * (the key is bumped after every round but the last; the output is c after round 10).
 * The draw is therefore a pure function of (seed, position) and the processed distribution: it
 * does not depend on the batch, the thread count or how the sequence was split into calls.
 *
 * Reported per token (each a float; the names are the semantics, use the one your trainer
 * recomputes):
 *   logprobs            raw: log-softmax of the unprocessed logits, as glm5_model_score: the
 *                       scaled logprob at temperature 1 (so the two are equal bit for bit when
 *                       temperature is 1).
 *   scaled_logprobs     log-softmax of logits / temperature: s_x - (m + log Z). SGLang's
 *                       output_token_logprobs and what slime's trainer recomputes. At
 *                       temperature 0 it equals the raw logprob.
 *   processed_logprobs  log p'_x in the distribution actually sampled from (after top-k, top-p,
 *                       min-p and renormalisation): (s_x - m) - log W. vLLM's
 *                       "processed_logprobs". 0 at temperature 0.
 *   top alternatives    the n_top_logprobs best tokens in rank order (step 3) with their scaled
 *                       logprobs.
 * The raw and scaled logprobs reported while sampling are bitwise equal to scoring the same
 * tokens afterwards (glm5_model_score, glm5_model_score_scaled, glm5_session_append_scaled)
 * with the same temperature, for any batch, split and thread count.
 *
 * Stopping: after each token, generation stops when max_new_tokens have been generated
 * (GLM5_FINISH_LENGTH, checked first, as SGLang does), or if the token is a stop id
 * (GLM5_FINISH_STOP; the id is kept in the output and in the session, as SGLang with
 * no_stop_trim). Stop ids are stop_token_ids plus, unless ignore_eos, the model's end-of-sequence
 * ids (glm5_model_eos_token_ids). Every generated token, the last included, is appended to the
 * session, so a later call continues after it.
 * ============================================================================================= */

/* Most alternatives that can be reported per token. */
#define GLM5_MAX_TOP_LOGPROBS 64

/* Bytes of a weight version with its NUL: versions are 1 to 127 bytes of UTF-8. */
#define GLM5_WEIGHT_VERSION_SIZE 128

typedef struct glm5_sampling_params {
    uint32_t struct_size;          /* sizeof(glm5_sampling_params), set by _init */
    float temperature;             /* 1.0; 0 = greedy; finite, >= 0 */
    int32_t top_k;                 /* 0 = off; >= 0 */
    float top_p;                   /* 1.0 = off; in (0, 1] */
    float min_p;                   /* 0 = off; in [0, 1) */
    uint32_t max_new_tokens;       /* 128 (SGLang's default); the tokens must fit in the session */
    uint64_t seed;                 /* 0; the draw at each position is a function of (seed, pos) */
    const int32_t *stop_token_ids; /* NULL, or n_stop_token_ids ids in [0, vocab_size) */
    size_t n_stop_token_ids;       /* 0 ..= GLM5_MAX_STOP_TOKEN_IDS (4096) */
    int32_t ignore_eos;            /* 0; non-zero: the model's end-of-sequence ids do not stop */
    uint32_t n_top_logprobs;       /* 0 ..= GLM5_MAX_TOP_LOGPROBS alternatives per token */
    /* --- appended in 0.4 --- */
    uint32_t speculative;          /* 0 = off; 1 ..= GLM5_MAX_SPECULATIVE tokens drafted per step
                                      by the MTP layer ("Speculative decoding"); changes no result */
} glm5_sampling_params;

static inline void glm5_sampling_params_init(glm5_sampling_params *params) {
    if (!params) return;
    memset(params, 0, sizeof *params);
    params->struct_size = (uint32_t)sizeof *params;
    params->temperature = 1.0f;
    params->top_p = 1.0f;
    params->max_new_tokens = 128;
}

/* Why a sampling call stopped. Values are pinned. */
typedef enum glm5_finish_reason {
    GLM5_FINISH_NONE = 0,      /* did not run (a batch that failed before its first token) */
    GLM5_FINISH_LENGTH = 1,    /* max_new_tokens were generated (also when the last is a stop id) */
    GLM5_FINISH_STOP = 2,      /* the last token is a stop id (stop_token_id), before max_new_tokens */
    GLM5_FINISH_CANCELLED = 3  /* glm5_session_cancel */
} glm5_finish_reason;

/* Where a sampling call writes its results. The host owns the arrays; each may be NULL except
 * tokens, and each non-NULL array holds `capacity` entries (top_* hold capacity *
 * n_top_logprobs, row-major [token, alternative]). The library writes the arrays' first
 * n_tokens entries and the OUT fields; nothing else. */
typedef struct glm5_sample_output {
    uint32_t struct_size;        /* sizeof(glm5_sample_output), set by _init */
    int32_t finish_reason;       /* OUT glm5_finish_reason */
    size_t capacity;             /* IN entries each array holds; >= max_new_tokens */
    int32_t *tokens;             /* IN/OUT the generated ids */
    float *logprobs;             /* IN/OUT NULL or raw logprobs */
    float *scaled_logprobs;      /* IN/OUT NULL or scaled logprobs */
    float *processed_logprobs;   /* IN/OUT NULL or processed logprobs */
    int32_t *top_ids;            /* IN/OUT NULL or [capacity, n_top_logprobs] ids */
    float *top_logprobs;         /* IN/OUT NULL or [capacity, n_top_logprobs] scaled logprobs */
    size_t n_tokens;             /* OUT tokens generated (and appended) */
    int32_t stop_token_id;       /* OUT the stop id that ended generation, or -1 */
    int32_t status;              /* OUT this session's glm5_status (batched calls; GLM5_OK when
                                    the call succeeded) */
    /* --- appended in 0.2 --- */
    char weight_version[GLM5_WEIGHT_VERSION_SIZE]; /* OUT the version of the weights every token of
                                    this call was produced with, NUL-terminated */
    /* --- appended in 0.4 --- */
    int32_t *accepted;           /* IN/OUT NULL or capacity entries: with speculation, the drafts
                                    accepted at each verification step (0 ..= speculative) */
    size_t n_steps;              /* OUT verification steps (entries of accepted); 0 without
                                    speculation */
} glm5_sample_output;

static inline void glm5_sample_output_init(glm5_sample_output *out) {
    if (!out) return;
    memset(out, 0, sizeof *out);
    out->struct_size = (uint32_t)sizeof *out;
    out->stop_token_id = -1;
}

/* Sample up to params->max_new_tokens tokens on one session (see "Sampling" for the exact
 * semantics), appending each.
 *
 *   session  IN/OUT a session holding at least one token.
 *   params   IN     NULL for the defaults (temperature 1, no filters, seed 0, 128 tokens).
 *   out      IN/OUT arrays to fill; finish_reason, n_tokens and stop_token_id are written.
 *
 * Everything is validated and the cache space for max_new_tokens is reserved before the first
 * token; after that only cancellation stops early. Kept logits are cleared.
 * Returns GLM5_OK; GLM5_ERR_INVALID_ARGUMENT (NULL or dead session or out, an empty session,
 * NULL out->tokens, capacity < max_new_tokens, a parameter out of range: the message names the
 * field); GLM5_ERR_CONTEXT_FULL (max_new_tokens do not fit: nothing is generated); GLM5_ERR_BUSY;
 * GLM5_ERR_OUT_OF_MEMORY (before the first token; the session is unchanged). */
glm5_status glm5_session_sample(glm5_session *session, const glm5_sampling_params *params,
                                glm5_sample_output *out);

/* Sample on many sessions at once: one forward pass per step advances every running session by
 * one token (the weights are read once per step for the whole batch). Each session has its own
 * length, parameters and seed, and gets bitwise the same tokens, logprobs and caches as
 * glm5_session_sample on it alone, in any batch order and composition and with any thread
 * count. A session leaves the batch when it stops; the call returns when all have.
 *
 *   sessions  IN  n distinct live sessions of the same model.
 *   n         IN  1 ..= GLM5_MAX_BATCH (4096).
 *   params    IN  NULL (defaults for all), or n pointers, each NULL (defaults) or a params struct.
 *   outs      IN  n pointers to output structs (see glm5_sample_output).
 *
 * All sessions and parameters are validated, and every session is claimed, before any token is
 * generated. If one fails, the call returns its status, the message names its index, each
 * out->status tells which session failed (GLM5_OK for the others; the failed status for all when
 * no one session is at fault, e.g. out of memory), every usable out gets n_tokens 0 and
 * finish_reason GLM5_FINISH_NONE, and no session changes.
 * A session that is part of a running batch is in use: any other call on it gets GLM5_ERR_BUSY
 * (glm5_session_cancel excepted). Returns the statuses of glm5_session_sample, plus
 * GLM5_ERR_INVALID_ARGUMENT for NULL arrays, n out of range, the same session twice, or sessions
 * of different models. */
glm5_status glm5_sample_batch(glm5_session *const *sessions, size_t n,
                              const glm5_sampling_params *const *params,
                              glm5_sample_output *const *outs);

/* Append a chunk of tokens to each of n sessions in one forward pass (batched prefill; chunks
 * may differ in length). Every session ends exactly as glm5_session_append of its chunk alone
 * would leave it, bitwise.
 *
 *   sessions   IN  n distinct live sessions of the same model; 1 ..= GLM5_MAX_BATCH (4096).
 *   tokens     IN  n pointers to the chunks.
 *   n_tokens   IN  n chunk lengths, each >= 1.
 *   keep       IN  which logits each session keeps (glm5_logits).
 *   logprobs   IN  NULL, or n pointers, each NULL or n_tokens[i] floats (raw logprobs as
 *                  glm5_session_append).
 *
 * Validation as glm5_sample_batch: on any failure the message names the session index and no
 * session changes. Returns GLM5_OK or the statuses of glm5_session_append. */
glm5_status glm5_append_batch(glm5_session *const *sessions, size_t n, const int32_t *const *tokens,
                              const size_t *n_tokens, glm5_logits keep, float *const *logprobs);

/* ---------------------------------------------------------------------------------------------
 * Speculative decoding (MTP)
 *
 * A checkpoint with GLM-5's multi-token-prediction layer (model.layers.{num_hidden_layers}.*,
 * glm5_model_info.has_mtp) can draft tokens ahead. With glm5_sampling_params.speculative = k, each
 * step of a sampling call:
 *   1. drafts d_1..d_k: d_1 from the MTP layer on the main model's final-normed hidden state at
 *      the last position and the token just drawn; d_s (s > 1) from the MTP layer's own output of
 *      step s-1 and d_{s-1}. Each draft is drawn with the call's own sampler (parameters, seed)
 *      at the position it would take, from the draft logits;
 *   2. appends the drawn token and the k drafts in one forward pass (k + 1 rows) and draws at
 *      each of those rows exactly as plain sampling does (same logits bits, same (seed, position)
 *      draw); a draft is kept while it equals the draw at its position, and the first draw that
 *      differs (or the one after the last draft) is the next step's token. Rejected rows are
 *      dropped without another forward pass.
 * Every reported token, logprob (all three kinds), alternative, finish reason and the session
 * left behind are therefore bit for bit those of the same call with speculative = 0, whatever k,
 * the batch, or how well the drafts agree: speculation only changes the speed. The session must
 * keep the MTP layer's cache (the default on a model with one: glm5_session_params.no_mtp) and be
 * current: a session restored from a file saved without MTP entries, or forked while the model's
 * weights had no MTP layer, samples normally but cannot speculate. glm5_sample_output.accepted
 * reports the drafts accepted at each step (each step makes accepted + 1 tokens, except that the
 * first token of a call is drawn before any draft, and a call that ends on an accepted draft
 * makes one fewer).
 * ------------------------------------------------------------------------------------------- */

/* Most tokens drafted per step. */
#define GLM5_MAX_SPECULATIVE 8

/* The MTP layer's first draft step over a sequence, teacher-forced, from an empty context: row i
 * reads the main model's final-normed hidden state at position i and tokens[i + 1] (RoPE
 * position i) and gives the logits of tokens[i + 2].
 *
 *   tokens    IN   n_tokens ids, n_tokens >= 2.
 *   out       OUT  capacity floats; (n_tokens - 1) * vocab_size are written, row-major.
 *
 * Returns GLM5_OK; GLM5_ERR_INVALID_ARGUMENT (NULL or dead model, NULL tokens or out, n_tokens
 * < 2, an id out of range, a model without an MTP layer); GLM5_ERR_BUFFER_TOO_SMALL (capacity <
 * (n_tokens - 1) * vocab_size; nothing written); GLM5_ERR_CONTEXT_FULL (longer than
 * max_position_embeddings); GLM5_ERR_OUT_OF_MEMORY. Thread-safe as glm5_model_score. */
glm5_status glm5_model_mtp_draft_logits(const glm5_model *model, const int32_t *tokens, size_t n_tokens,
                                        float *out, size_t capacity);

/* Raw and temperature-scaled logprobs of a sequence from an empty context (teacher-forced
 * scoring as a trainer does it): logprobs as glm5_model_score, scaled_logprobs[i] =
 * log-softmax(logits_{i-1} / temperature)[tokens[i]] (NaN for i = 0), computed exactly as the
 * sampler reports them. temperature 0 gives the raw values. Either output may be NULL (not both).
 * Errors as glm5_model_score, plus GLM5_ERR_INVALID_ARGUMENT for a bad temperature.
 * Thread-safe. */
glm5_status glm5_model_score_scaled(const glm5_model *model, const int32_t *tokens, size_t n_tokens,
                                    float temperature, float *logprobs, float *scaled_logprobs);

/* The model's end-of-sequence ids: generation_config.json's eos_token_id if that file has one,
 * else config.json's (one id or a list). Two-call pattern: *n_out (if not NULL) receives the
 * count; GLM5_ERR_BUFFER_TOO_SMALL when capacity is smaller (nothing copied).
 * Returns GLM5_OK, GLM5_ERR_INVALID_ARGUMENT (NULL or dead model, NULL out with capacity > 0),
 * GLM5_ERR_BUFFER_TOO_SMALL. Thread-safe. */
glm5_status glm5_model_eos_token_ids(const glm5_model *model, int32_t *out, size_t capacity, size_t *n_out);

/* =============================================================================================
 * Weight updates
 *
 * An RL loop pushes new weights every few steps while the model stays loaded and its sessions
 * stay alive. Every update carries a caller-set weight version (a string, as SGLang's
 * weight_version; "default" at load), reported by glm5_model_weight_version and stamped on every
 * sampling result (glm5_sample_output.weight_version). Three ways, all with these semantics:
 *
 *  - Atomic. Everything is read, checked (as a load checks: names, shapes, dtypes, finite scales)
 *    and converted before the weights change; a failed or partial update leaves the model exactly
 *    as it was, version included.
 *  - No waiting. A call in flight finishes on the weights it started with (they stay alive until
 *    it returns); calls that start after the update returns use the new ones. A sampling call
 *    therefore never straddles an update: all its tokens carry one version. Updates on one model
 *    are serialised.
 *  - Sessions continue. Sessions created before an update keep their caches (what the old
 *    weights computed, as asynchronous RL does) and compute new tokens with the new weights;
 *    glm5_session_recompute rebuilds a session's caches with the new ones.
 *  - The loaded format. Updated tensors live in owned memory in the format the model was loaded
 *    with: a float tensor sent for an INT4 module is quantized in memory with the loaded group
 *    size by the quantizer's own code (so it equals loading `glm5 quantize`'s output bit for
 *    bit); for an FP8 module it is block-encoded (scale = amax/448); float dtypes convert to the
 *    loaded one. Weights not updated stay memory-mapped. glm5_model_info reports the owned bytes.
 * ============================================================================================= */

/* The version of the weights in force. Two-call pattern: *n_out (if not NULL) receives the bytes
 * needed including the NUL; GLM5_ERR_BUFFER_TOO_SMALL when capacity is smaller. Thread-safe. */
glm5_status glm5_model_weight_version(const glm5_model *model, char *out, size_t capacity, size_t *n_out);

/* Replace every weight with those of a Hugging Face folder with the same configuration (every
 * key that shapes the model equal; the quantization scheme may differ) in any supported format.
 * When every tensor has the loaded dtype and shape the folder is adopted as it is (memory-mapped,
 * bit for bit a fresh load of it; it must then stay unchanged on disk, as a loaded folder must);
 * otherwise each tensor is converted to the loaded format.
 * Returns GLM5_OK; GLM5_ERR_INVALID_ARGUMENT (NULL or dead model, NULL path or version, a version
 * that is not 1..127 bytes); the load statuses for the folder (GLM5_ERR_IO, GLM5_ERR_BAD_FORMAT,
 * GLM5_ERR_UNSUPPORTED); GLM5_ERR_INCOMPATIBLE (another configuration: the message names the
 * first differing key); GLM5_ERR_OUT_OF_MEMORY. Thread-safe. */
glm5_status glm5_model_update_from_folder(glm5_model *model, const char *path, const char *version);

/* Apply a delta in the layout of slime's delta weight sync (--update-weight-mode delta, disk
 * transport): the folder slime passes to update_weights_from_disk (weight_vNNNNNN/), holding
 * rank*_flush*.safetensors files (each with __positions__ and __values__ and a metadata manifest;
 * encodings "indices", "deltas", "deltas_zstd") and the DONE marker. The changed elements of each
 * tensor overwrite the loaded bytes exactly (so a delta must be in the loaded dtype of each
 * tensor: for an INT4 module, a delta of its INT4 tensors). A manifest's prev_version, when
 * present, must be the loaded version; a checksum, when present, must match. version NULL takes
 * the delta's current_version.
 * Returns GLM5_OK; GLM5_ERR_INVALID_ARGUMENT; GLM5_ERR_IO; GLM5_ERR_BAD_FORMAT (no DONE, a
 * truncated or corrupt file, a position or offset out of range, a tensor the model does not have
 * or holds with another dtype or shape); GLM5_ERR_UNSUPPORTED (an unknown encoding; a float delta
 * for an INT4 module); GLM5_ERR_VERSION_MISMATCH; GLM5_ERR_OUT_OF_MEMORY. Thread-safe. */
glm5_status glm5_model_update_from_delta(glm5_model *model, const char *path, const char *version);

/* A tensor-by-tensor update as a trainer streams it: begin, add tensors, commit once. */
typedef struct glm5_weight_update glm5_weight_update;

/* Start an update of `model`. Free it with glm5_weight_update_free (after a commit or instead of
 * one). Returns GLM5_OK, GLM5_ERR_INVALID_ARGUMENT, GLM5_ERR_OUT_OF_MEMORY. */
glm5_status glm5_weight_update_begin(glm5_model *model, glm5_weight_update **out_update);

/* Add one tensor by its checkpoint name, checked and converted now (the data is copied; the
 * host's memory is not kept):
 *  - a tensor the model holds, in its dtype and shape, replaces it as given (an INT4 module's
 *    weight_packed / weight_scale / weight_zero_point included);
 *  - "<module>.weight" in F32, BF16 or F16 [out, in], for any Linear module, is encoded in the
 *    module's loaded format (INT4 with its group size, FP8 with its blocks, or its float dtype);
 *  - any other float tensor (norm, embedding) in another float dtype is converted.
 * Adding a name twice keeps the last. A failed add changes nothing (earlier adds stay staged).
 *   dtype   glm5_dtype of data;  shape  n_dims sizes (0 ..= 8);  data  n_bytes bytes.
 * Returns GLM5_OK; GLM5_ERR_INVALID_ARGUMENT (NULL or dead update, NULL name, a committed update,
 * n_bytes not the shape's size, a name the model does not have); GLM5_ERR_BAD_FORMAT (a dtype or
 * shape that cannot become the loaded tensor; the message says what is expected);
 * GLM5_ERR_OUT_OF_MEMORY. */
glm5_status glm5_weight_update_add(glm5_weight_update *update, const char *name, glm5_dtype dtype,
                                   const int64_t *shape, size_t n_dims, const void *data, size_t n_bytes);

/* Install every staged tensor as weight version `version`, checked as a load checks (e.g. a
 * non-finite scale is refused). The update is spent either way; on failure nothing changes.
 * Returns GLM5_OK; GLM5_ERR_INVALID_ARGUMENT (nothing staged, a bad version, already committed);
 * GLM5_ERR_BAD_FORMAT; GLM5_ERR_OUT_OF_MEMORY. */
glm5_status glm5_weight_update_commit(glm5_weight_update *update, const char *version);

/* Free an update (its staged tensors are dropped if it was not committed). NULL is ignored. */
void glm5_weight_update_free(glm5_weight_update *update);

/* =============================================================================================
 * Saving sessions
 *
 * A session (tokens, caches, kept hidden rows, routing record) saved to bytes and restored into a
 * new session on the same model, here or on another replica: a versioned header with the model's
 * configuration fingerprint and the weight version in force, a zstd-compressed payload and a
 * checksum. A restored session continues bit for bit as the original would (the sampler needs
 * no state: a draw depends on the seed and the position). Restoring refuses, each with its own
 * message: a truncated or corrupt file (GLM5_ERR_BAD_FORMAT), a future format version
 * (GLM5_ERR_UNSUPPORTED), another configuration (GLM5_ERR_INCOMPATIBLE), another weight version
 * (GLM5_ERR_VERSION_MISMATCH, unless GLM5_RESTORE_ANY_WEIGHT_VERSION); no byte string crashes.
 * ============================================================================================= */

/* glm5_session_restore flags. */
#define GLM5_RESTORE_ANY_WEIGHT_VERSION 1u /* accept a file saved under another weight version */

/* Save a session into a buffer the library allocates: *out_data (free it with glm5_free) holds
 * *out_size bytes. Returns GLM5_OK, GLM5_ERR_INVALID_ARGUMENT, GLM5_ERR_BUSY,
 * GLM5_ERR_OUT_OF_MEMORY. */
glm5_status glm5_session_save(glm5_session *session, void **out_data, size_t *out_size);

/* Save a session to a file (created or replaced); *out_size (if not NULL) receives its bytes.
 * Returns the statuses of glm5_session_save, plus GLM5_ERR_IO. */
glm5_status glm5_session_save_file(glm5_session *session, const char *path, size_t *out_size);

/* A new session from bytes written by glm5_session_save; free it with glm5_session_free.
 *   flags  0 or GLM5_RESTORE_ANY_WEIGHT_VERSION.
 * Returns GLM5_OK or one of the statuses above (and GLM5_ERR_INVALID_ARGUMENT for NULL
 * arguments); *out_session is written only on success. */
glm5_status glm5_session_restore(glm5_model *model, const void *data, size_t size, uint32_t flags,
                                 glm5_session **out_session);

/* glm5_session_restore from a file; GLM5_ERR_IO when it cannot be read. */
glm5_status glm5_session_restore_file(glm5_model *model, const char *path, uint32_t flags,
                                      glm5_session **out_session);

/* Free memory the library allocated for the host (glm5_session_save). NULL is ignored. */
void glm5_free(void *p);

/* =============================================================================================
 * Tokenizer (since 0.3)
 *
 * A Hugging Face tokenizer.json (with its folder's tokenizer_config.json), run as the
 * `tokenizers` library (PyPI) runs it, id for id: the BPE model (merges as "a b" strings or
 * ["a", "b"] pairs, ignore_merges, byte_fallback, unk_token and fuse_unk,
 * continuing_subword_prefix, end_of_word_suffix), the pre-tokenizers GLM- and DeepSeek-family
 * files use (Sequence; Split with a regex or a literal, every behavior, invert; ByteLevel with
 * add_prefix_space and use_regex; Digits), added tokens (special or not, single_word, lstrip,
 * rstrip, normalized: matched before pre-tokenization and never split) and the decoders
 * ByteLevel, ByteFallback, Fuse, Strip, Replace and Sequence. Split regexes run on a built-in
 * engine with Oniguruma's semantics (what `tokenizers` uses: `\s` is Unicode White_Space,
 * `\p{L}` the letter categories, leftmost match with Perl priority); a pattern using syntax it
 * does not implement (lookbehind, backreferences, scripts such as \p{Han}) is refused when
 * loading. The normalizer must be null, an empty Sequence (GLM-5's and DeepSeek-V3's files) or
 * NFC (Qwen's), alone or in a Sequence; any other is refused (GLM5_ERR_UNSUPPORTED), so that a
 * file is never encoded differently from `tokenizers` without notice. The post_processor is read and ignored: encoding adds no special
 * tokens (GLM-5's `tokenizer(text)` adds none).
 *
 * A tokenizer is immutable once loaded; every function below may be called from any number of
 * threads at once on the same tokenizer. A streaming detokenizer is one handle per stream.
 *
 * Sample usage (error handling shortened):
 *
 *     glm5_tokenizer *tok = NULL;
 *     glm5_tokenizer_load("models/glm5-tiny", &tok);
 *     size_t n = 0;
 *     const char *text = "def f(x):\n    return x";
 *     glm5_tokenize(tok, text, strlen(text), GLM5_TOKENIZE_PARSE_SPECIAL, NULL, 0, &n);
 *     int32_t *ids = malloc(n * sizeof *ids);                 // first call: the count
 *     glm5_tokenize(tok, text, strlen(text), GLM5_TOKENIZE_PARSE_SPECIAL, ids, n, &n);
 *     char buf[256]; size_t len = 0;
 *     glm5_detokenize(tok, ids, n, 0, buf, sizeof buf, &len);  // buf == text, NUL-terminated
 *     glm5_tokenizer_free(tok);
 * ============================================================================================= */

typedef struct glm5_tokenizer glm5_tokenizer;
typedef struct glm5_detokenizer glm5_detokenizer;

/* glm5_tokenize flags. */
#define GLM5_TOKENIZE_PARSE_SPECIAL 1u /* special added tokens written in the text ("<|user|>")
                                          become their ids; without it they are encoded as plain
                                          text (HF: encode_special_tokens = True). Non-special
                                          added tokens are always matched. */
/* glm5_detokenize / glm5_detokenizer_new flags. */
#define GLM5_DETOKENIZE_SKIP_SPECIAL 1u /* special added tokens produce no text */

/* Load a tokenizer.
 *
 *   path           IN  a folder holding tokenizer.json (or tokenizer.json.zst), or the path of a
 *                      tokenizer.json file; a file that starts with the zstd magic is decompressed
 *                      first. tokenizer_config.json in the same folder, when present, gives the
 *                      special tokens (eos_token, bos_token, pad_token, unk_token: a string or
 *                      {"content": ...}).
 *   out_tokenizer  OUT on success, a new tokenizer; free it with glm5_tokenizer_free.
 *
 * Returns GLM5_OK; GLM5_ERR_INVALID_ARGUMENT (NULL argument); GLM5_ERR_IO (no such file or
 * folder, no tokenizer.json in the folder, unreadable); GLM5_ERR_BAD_FORMAT (invalid JSON, a
 * missing or mistyped key, a merge naming a token not in the vocabulary, two tokens with one id,
 * a special token of tokenizer_config.json that is not in tokenizer.json: the message names the
 * file and the key path, e.g. "tokenizer.json: model.merges[17]: ..."); GLM5_ERR_UNSUPPORTED (a
 * model, normalizer, pre-tokenizer or decoder type, or regex syntax, this version does not run;
 * named with its key path). On failure *out_tokenizer is not written. */
glm5_status glm5_tokenizer_load(const char *path, glm5_tokenizer **out_tokenizer);

/* The tokenizer of a model's folder (its tokenizer.json), loaded at the first call and kept by
 * the model; later calls return the same tokenizer at no cost.
 *
 *   out_tokenizer  OUT a new reference to the model's tokenizer, to free with
 *                      glm5_tokenizer_free (each call returns its own handle; the tokenizer lives
 *                      until the model and every handle are freed, so a handle stays valid after
 *                      glm5_model_free), or NULL when the folder has no tokenizer.json (the model
 *                      itself needs none: token ids in, token ids out).
 *
 * Returns GLM5_OK (also when there is no tokenizer: *out_tokenizer = NULL);
 * GLM5_ERR_INVALID_ARGUMENT (NULL or dead model, NULL out_tokenizer); the errors of
 * glm5_tokenizer_load for a tokenizer.json that cannot be loaded (reported by every call).
 * Thread-safe. */
glm5_status glm5_model_tokenizer(const glm5_model *model, glm5_tokenizer **out_tokenizer);

/* Release a tokenizer handle. NULL is ignored. Detokenizers made from it keep it alive. */
void glm5_tokenizer_free(glm5_tokenizer *tokenizer);

/* Facts about a tokenizer. Fill with glm5_tokenizer_info_init before glm5_tokenizer_get_info. */
typedef struct glm5_tokenizer_info {
    uint32_t struct_size;   /* sizeof(glm5_tokenizer_info), set by glm5_tokenizer_info_init */
    uint32_t n_ids;         /* one more than the largest id (vocabulary and added tokens); every
                               id below it that names a token is accepted by the functions below */
    uint32_t n_vocab;       /* tokens of the BPE vocabulary */
    uint32_t n_added;       /* added tokens (special or not) */
    int32_t eos_id;         /* tokenizer_config.json's eos_token, or -1 */
    int32_t bos_id;         /* bos_token, or -1 */
    int32_t pad_id;         /* pad_token, or -1 */
    int32_t unk_id;         /* unk_token, or -1 */
    uint32_t byte_level;    /* 1 if the pre-tokenizer is byte-level (any byte string has ids) */
    uint32_t reserved0;     /* 0 */
} glm5_tokenizer_info;

/* Fill *info with zeros and set struct_size = sizeof(glm5_tokenizer_info) of this header. */
static inline void glm5_tokenizer_info_init(glm5_tokenizer_info *info) {
    if (!info) return;
    memset(info, 0, sizeof *info);
    info->struct_size = (uint32_t)sizeof *info;
}

/* Write the tokenizer's facts into *info (only the first info->struct_size bytes).
 * Returns GLM5_OK or GLM5_ERR_INVALID_ARGUMENT (NULL or dead tokenizer, NULL info, struct_size
 * too small). */
glm5_status glm5_tokenizer_get_info(const glm5_tokenizer *tokenizer, glm5_tokenizer_info *info);

/* Encode UTF-8 text into token ids. No special tokens are added around the text.
 *
 *   text      IN  text_len bytes of UTF-8 (may hold NUL bytes; need not be NUL-terminated);
 *                 may be NULL when text_len is 0. At most GLM5_MAX_TEXT_BYTES (2^28 bytes, 256
 *                 MiB) per call.
 *   flags     IN  0 or GLM5_TOKENIZE_PARSE_SPECIAL.
 *   ids       OUT capacity ids; may be NULL when capacity is 0.
 *   n_ids     OUT NULL, or the number of ids of the text, written also when the buffer is too
 *                 small (two-call pattern: a first call with capacity 0 tells the count; for a
 *                 byte-level tokenizer without add_prefix_space it is at most text_len).
 *
 * Returns GLM5_OK; GLM5_ERR_BUFFER_TOO_SMALL (capacity < *n_ids; nothing copied);
 * GLM5_ERR_INVALID_ARGUMENT (NULL or dead tokenizer, NULL text with text_len > 0, NULL ids with
 * capacity > 0, text_len above 2^28, text that is not valid UTF-8: the message names the byte
 * offset, unknown flag bits); GLM5_ERR_OUT_OF_MEMORY. */
glm5_status glm5_tokenize(const glm5_tokenizer *tokenizer, const char *text, size_t text_len, uint32_t flags,
                          int32_t *ids, size_t capacity, size_t *n_ids);

/* Decode token ids into UTF-8 text, as `tokenizers`' decode: each id's token string through the
 * decoder, invalid UTF-8 replaced by U+FFFD (maximal subparts). Decoding the ids of a text gives
 * the text back for a byte-level tokenizer.
 *
 *   ids       IN  n_ids ids (NULL when n_ids is 0); n_ids at most GLM5_MAX_DETOKENIZE_IDS.
 *   flags     IN  0 or GLM5_DETOKENIZE_SKIP_SPECIAL.
 *   text      OUT capacity bytes: the text and a terminating NUL; may be NULL when capacity is 0.
 *   n_bytes   OUT NULL, or the text's length in bytes without the NUL, written also when the
 *                 buffer is too small (capacity must be at least *n_bytes + 1).
 *
 * Returns GLM5_OK; GLM5_ERR_BUFFER_TOO_SMALL (nothing copied); GLM5_ERR_INVALID_ARGUMENT (NULL or
 * dead tokenizer, NULL ids with n_ids > 0, n_ids above GLM5_MAX_DETOKENIZE_IDS, NULL text with
 * capacity > 0, an id that names no token (the message gives its index), unknown flag bits);
 * GLM5_ERR_OUT_OF_MEMORY. */
glm5_status glm5_detokenize(const glm5_tokenizer *tokenizer, const int32_t *ids, size_t n_ids, uint32_t flags,
                            char *text, size_t capacity, size_t *n_bytes);

/* The bytes one token decodes to on its own (llama.cpp's token_to_piece): for a byte-level
 * token possibly part of a UTF-8 sequence, so not NUL-terminated text but bytes.
 *
 *   piece     OUT capacity bytes (may be NULL when capacity is 0).
 *   n_bytes   OUT NULL, or the piece's length, written also when the buffer is too small.
 *
 * Returns GLM5_OK; GLM5_ERR_BUFFER_TOO_SMALL (nothing copied); GLM5_ERR_INVALID_ARGUMENT (NULL or
 * dead tokenizer, an id that names no token, NULL piece with capacity > 0). */
glm5_status glm5_token_to_piece(const glm5_tokenizer *tokenizer, int32_t id, char *piece, size_t capacity,
                                size_t *n_bytes);

/* The vocabulary string of a token as tokenizer.json spells it ("Ġthe", "<|user|>"), NUL-
 * terminated, and *is_special (if not NULL) 1 for a special added token, else 0. Same two-call
 * pattern as glm5_detokenize (capacity >= *n_bytes + 1).
 * Returns GLM5_OK; GLM5_ERR_BUFFER_TOO_SMALL; GLM5_ERR_INVALID_ARGUMENT (as glm5_token_to_piece). */
glm5_status glm5_tokenizer_token_text(const glm5_tokenizer *tokenizer, int32_t id, char *text, size_t capacity,
                                      size_t *n_bytes, int32_t *is_special);

/* The id of a token string (added tokens first, then the vocabulary), or -1 in *id when there
 * is none. text is text_len bytes, at most GLM5_MAX_TEXT_BYTES. Returns GLM5_OK or
 * GLM5_ERR_INVALID_ARGUMENT (NULL argument, dead tokenizer, text_len above GLM5_MAX_TEXT_BYTES,
 * text that is not valid UTF-8). */
glm5_status glm5_tokenizer_token_id(const glm5_tokenizer *tokenizer, const char *text, size_t text_len, int32_t *id);

/* A streaming detokenizer: push ids as they are generated, get the text they complete. A UTF-8
 * sequence split across tokens (an emoji is often 2-4 byte-level tokens) is held back until it is
 * complete, so every chunk returned is valid UTF-8; the concatenated chunks (and
 * glm5_detokenizer_finish's rest) equal glm5_detokenize of all ids for a byte-level tokenizer.
 *
 *   flags           IN  0 or GLM5_DETOKENIZE_SKIP_SPECIAL.
 *   out_detokenizer OUT a new detokenizer; free it with glm5_detokenizer_free. It keeps the
 *                       tokenizer alive.
 * Returns GLM5_OK or GLM5_ERR_INVALID_ARGUMENT (NULL or dead tokenizer, NULL out, unknown flag
 * bits). */
glm5_status glm5_detokenizer_new(const glm5_tokenizer *tokenizer, uint32_t flags, glm5_detokenizer **out_detokenizer);

/* Push n_ids ids and receive the text they complete (possibly empty): *n_bytes bytes of valid
 * UTF-8 and a NUL in text. Same two-call pattern as glm5_detokenize; when the buffer is too small
 * (GLM5_ERR_BUFFER_TOO_SMALL) or an id names no token (GLM5_ERR_INVALID_ARGUMENT), the ids are
 * not consumed and the stream is unchanged, so the call can be repeated. A chunk is at most
 * 3 x (3 + the ids' piece bytes) bytes long (held-back bytes, invalid bytes as U+FFFD).
 * Returns GLM5_OK, GLM5_ERR_BUFFER_TOO_SMALL, GLM5_ERR_INVALID_ARGUMENT (NULL or dead
 * detokenizer, NULL ids with n_ids > 0, n_ids above GLM5_MAX_DETOKENIZE_IDS, NULL text with
 * capacity > 0, an id that names no token: the message gives its index), GLM5_ERR_BUSY (another
 * thread is using the detokenizer). */
glm5_status glm5_detokenizer_push(glm5_detokenizer *detokenizer, const int32_t *ids, size_t n_ids,
                                  char *text, size_t capacity, size_t *n_bytes);

/* End the stream: the bytes still held back (an incomplete UTF-8 sequence), as U+FFFD, into text
 * (two-call pattern; 0 bytes when nothing is held). On GLM5_OK the detokenizer is empty and may
 * start a new stream. Returns GLM5_OK, GLM5_ERR_BUFFER_TOO_SMALL (unchanged),
 * GLM5_ERR_INVALID_ARGUMENT, GLM5_ERR_BUSY. */
glm5_status glm5_detokenizer_finish(glm5_detokenizer *detokenizer, char *text, size_t capacity, size_t *n_bytes);

/* Release a detokenizer. NULL is ignored. */
void glm5_detokenizer_free(glm5_detokenizer *detokenizer);

#ifdef __cplusplus
}
#endif

#endif /* GLM5_H */
