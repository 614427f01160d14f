/* Every oneDNN implementation of the paper CNN's convolutions, pass by pass and layout by
   layout, timed on one thread: the measurement behind MapLayoutChoice's AVX2 ranking
   (RESULTS.md, "Layouts by instruction set"). It walks oneDNN's primitive-descriptor iterator,
   so it also shows the implementations oneDNN would take after its first choice (gemm:jit,
   jit:sse41); reference ones are skipped.

     gcc -O2 bench/onednn_conv_passes.c -o /tmp/conv-passes -ldnnl && OMP_NUM_THREADS=1 /tmp/conv-passes
     FIRST=1 OMP_NUM_THREADS=1 /tmp/conv-passes        # the first layer, 1 -> 32 channels at 28x28
     ONEDNN_MAX_CPU_ISA=AVX2 ...                        # the AVX2 path of an AVX-512 machine

   pass 0 is forward, 1 backward weights, 2 backward data; inputs are zeros (the time of these
   kernels does not depend on the values). */
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHECK(call)                                                                                          \
    do {                                                                                                     \
        dnnl_status_t status_ = (call);                                                                      \
        if (status_ != dnnl_success) {                                                                       \
            fprintf(stderr, "%s failed: status %d\n", #call, status_);                                       \
            exit(1);                                                                                         \
        }                                                                                                    \
    } while (0)

enum pass { FORWARD, BACKWARD_WEIGHTS, BACKWARD_DATA };
static const char *const pass_names[] = {"forward", "backward weights", "backward data"};

static dnnl_engine_t engine;
static dnnl_stream_t stream;

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static const char *layout_name(dnnl_format_tag_t tag) {
    return tag == dnnl_nhwc ? "nhwc" : tag == dnnl_nChw8c ? "nChw8c" : tag == dnnl_nChw16c ? "nChw16c" : "nchw";
}

/* Times every non-reference implementation of one pass of a 3x3, stride-1, padding-1 convolution
   of `batch` maps of `in` -> `out` channels at `side` x `side`, with maps in `layout`. */
static void time_pass(int batch, int in, int out, int side, dnnl_format_tag_t layout, enum pass pass) {
    dnnl_dims_t source_dims = {batch, in, side, side}, weight_dims = {out, in, 3, 3}, bias_dims = {out};
    dnnl_dims_t output_dims = {batch, out, side, side}, strides = {1, 1}, padding = {1, 1};
    dnnl_memory_desc_t source, weights, bias, output;
    CHECK(dnnl_memory_desc_init_by_tag(&source, 4, source_dims, dnnl_f32, layout));
    CHECK(dnnl_memory_desc_init_by_tag(&weights, 4, weight_dims, dnnl_f32, dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_init_by_tag(&bias, 1, bias_dims, dnnl_f32, dnnl_x));
    CHECK(dnnl_memory_desc_init_by_tag(&output, 4, output_dims, dnnl_f32, layout));
    dnnl_convolution_desc_t forward, description;
    CHECK(dnnl_convolution_forward_desc_init(&forward, dnnl_forward_training, dnnl_convolution_direct, &source,
                                             &weights, &bias, &output, strides, padding, padding));
    dnnl_primitive_desc_t hint;
    CHECK(dnnl_primitive_desc_create(&hint, &forward, NULL, engine, NULL));
    if (pass == FORWARD)
        description = forward;
    else if (pass == BACKWARD_WEIGHTS)
        CHECK(dnnl_convolution_backward_weights_desc_init(&description, dnnl_convolution_direct, &source, &weights,
                                                          &bias, &output, strides, padding, padding));
    else
        CHECK(dnnl_convolution_backward_data_desc_init(&description, dnnl_convolution_direct, &source, &weights,
                                                       &output, strides, padding, padding));
    /* The tensors each pass reads and writes, and the queries for the layouts it wants them in. */
    const int arguments[3][4] = {{DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST, DNNL_ARG_BIAS},
                                 {DNNL_ARG_SRC, DNNL_ARG_DIFF_WEIGHTS, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_BIAS},
                                 {DNNL_ARG_DIFF_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_DST, 0}};
    const dnnl_query_t queries[3][4] = {
        {dnnl_query_src_md, dnnl_query_weights_md, dnnl_query_dst_md, dnnl_query_weights_md},
        {dnnl_query_src_md, dnnl_query_diff_weights_md, dnnl_query_diff_dst_md, dnnl_query_diff_weights_md},
        {dnnl_query_diff_src_md, dnnl_query_weights_md, dnnl_query_diff_dst_md, 0}};
    const double flops = 2.0 * batch * out * side * side * in * 9;

    dnnl_primitive_desc_iterator_t implementations;
    CHECK(dnnl_primitive_desc_iterator_create(&implementations, &description, NULL, engine,
                                              pass == FORWARD ? NULL : hint));
    do {
        dnnl_primitive_desc_t chosen = dnnl_primitive_desc_iterator_fetch(implementations);
        const char *name = "unknown";
        dnnl_primitive_desc_query(chosen, dnnl_query_impl_info_str, 0, &name);
        if (strstr(name, "ref") == NULL) {
            dnnl_exec_arg_t bound[4];
            int count = 0;
            for (int k = 0; k < 4 && arguments[pass][k] != 0; k++) {
                /* The bias is the weights' second tensor (index 1). */
                const dnnl_memory_desc_t *wanted = dnnl_primitive_desc_query_md(chosen, queries[pass][k], k == 3);
                dnnl_memory_t memory;
                CHECK(dnnl_memory_create(&memory, wanted, engine, DNNL_MEMORY_ALLOCATE));
                void *data;
                CHECK(dnnl_memory_get_data_handle(memory, &data));
                memset(data, 0, dnnl_memory_desc_get_size(wanted));
                bound[count].arg = arguments[pass][k];
                bound[count].memory = memory;
                count++;
            }
            dnnl_primitive_t primitive;
            CHECK(dnnl_primitive_create(&primitive, chosen));
            for (int r = 0; r < 3; r++) CHECK(dnnl_primitive_execute(primitive, stream, count, bound));
            CHECK(dnnl_stream_wait(stream));
            const int repeats = 10;
            double start = seconds();
            for (int r = 0; r < repeats; r++) CHECK(dnnl_primitive_execute(primitive, stream, count, bound));
            CHECK(dnnl_stream_wait(stream));
            double each = (seconds() - start) / repeats;
            printf("%-7s %3d -> %3d at %2dx%-2d %-16s %-22s %8.3f ms %6.1f GFLOP/s\n", layout_name(layout), in, out,
                   side, side, pass_names[pass], name, each * 1e3, flops / each / 1e9);
            dnnl_primitive_destroy(primitive);
            for (int k = 0; k < count; k++) dnnl_memory_destroy(bound[k].memory);
        }
        dnnl_primitive_desc_destroy(chosen);
    } while (dnnl_primitive_desc_iterator_next(implementations) == dnnl_success);
    dnnl_primitive_desc_iterator_destroy(implementations);
    dnnl_primitive_desc_destroy(hint);
}

int main(void) {
    CHECK(dnnl_engine_create(&engine, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags));
    const dnnl_format_tag_t layouts[] = {dnnl_nhwc, dnnl_nChw8c, dnnl_nChw16c, dnnl_nchw};
    for (int l = 0; l < 4; l++) {
        if (getenv("FIRST")) {
            for (int p = FORWARD; p <= BACKWARD_WEIGHTS; p++) time_pass(128, 1, 32, 28, layouts[l], p);
            continue;
        }
        for (int p = FORWARD; p <= BACKWARD_DATA; p++) {
            time_pass(128, 32, 64, 14, layouts[l], p);
            time_pass(128, 64, 128, 7, layouts[l], p);
        }
    }
    dnnl_stream_destroy(stream);
    dnnl_engine_destroy(engine);
    return 0;
}
