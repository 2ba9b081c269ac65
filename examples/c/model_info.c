/*
 * model_info — load a GLM-5 checkpoint folder and print what it holds.
 *
 *   make -C examples/c && examples/c/model_info Tests/Fixtures/tiny-dsa
 *
 * The smallest complete use of the glm5 C API: init params, load, query, free. Every glm5 call
 * that can fail returns a glm5_status; glm5_last_error() says what went wrong.
 */
#include "glm5.h"

#include <stdio.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s <model-folder>\n", argv[0]);
        return 2;
    }
    const char *path = argv[1];

    /* Refuse a library built for another ABI than the header we were compiled with. */
    if (glm5_abi_version() != GLM5_ABI_VERSION) {
        fprintf(stderr, "libglm5 ABI %u, but this program was built for ABI %u\n", glm5_abi_version(), GLM5_ABI_VERSION);
        return 1;
    }

    /* Load: params filled with defaults (n_threads 0 = one per CPU). */
    glm5_model_params mp;
    glm5_model_params_init(&mp);
    glm5_model *model = NULL;
    glm5_status st = glm5_model_load(path, &mp, &model);
    if (st != GLM5_OK) {
        fprintf(stderr, "error: %s: %s\n", glm5_status_string(st), glm5_last_error());
        return 1;
    }

    /* Query the model's facts. */
    glm5_model_info info;
    glm5_model_info_init(&info);
    st = glm5_model_get_info(model, &info);
    if (st != GLM5_OK) {
        fprintf(stderr, "error: %s: %s\n", glm5_status_string(st), glm5_last_error());
        glm5_model_free(model);
        return 1;
    }

    /* Weight dtypes: one name per bit of the mask. */
    char dtypes[256] = "";
    size_t used = 0;
    for (int d = 0; d < 32; d++) {
        if (!(info.weight_dtypes & (1u << d))) continue;
        int n = snprintf(dtypes + used, sizeof dtypes - used, "%s%s", used ? " " : "", glm5_dtype_name((glm5_dtype)d));
        if (n < 0 || (size_t)n >= sizeof dtypes - used) break;
        used += (size_t)n;
    }

    printf("glm5 %s (ABI %u)\n", glm5_version_string(), glm5_abi_version());
    printf("model:            %s\n", path);
    printf("vocab:            %u\n", info.vocab_size);
    printf("hidden:           %u\n", info.hidden_size);
    printf("layers:           %u (%u dense, %u MoE)\n", info.n_layers, info.n_dense_layers, info.n_moe_layers);
    printf("attention heads:  %u\n", info.n_heads);
    printf("q / kv lora rank: %u / %u\n", info.q_lora_rank, info.kv_lora_rank);
    printf("head dims:        qk_nope %u, qk_rope %u, v %u\n", info.qk_nope_head_dim, info.qk_rope_head_dim,
           info.v_head_dim);
    printf("experts:          %u routed, %u per token, %u shared\n", info.n_routed_experts, info.n_experts_per_tok,
           info.n_shared_experts);
    printf("indexer:          %u heads x %u, top-%u keys\n", info.index_n_heads, info.index_head_dim, info.index_topk);
    printf("max positions:    %u\n", info.max_position_embeddings);
    printf("MTP:              %s (%u layer%s)\n", info.has_mtp ? "yes" : "no", info.n_mtp_layers,
           info.n_mtp_layers == 1 ? "" : "s");
    printf("weight dtypes:    %s\n", dtypes);
    printf("parameters:       %llu\n", (unsigned long long)info.n_parameters);
    printf("weight bytes:     %llu (%.2f MiB)\n", (unsigned long long)info.weight_file_bytes,
           (double)info.weight_file_bytes / (1024.0 * 1024.0));
    printf("linear formats:  %s%s%s\n", (info.weight_formats & GLM5_FORMAT_FLOAT) ? " float" : "",
           (info.weight_formats & GLM5_FORMAT_FP8_BLOCK) ? " fp8-block" : "",
           (info.weight_formats & GLM5_FORMAT_INT4_GROUP) ? " int4-group" : "");
    printf("resident weights: %.2f MiB once all are used\n", (double)info.resident_weight_bytes / (1024.0 * 1024.0));

    glm5_model_free(model);
    return 0;
}
