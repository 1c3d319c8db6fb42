/*
 * A minimal non-.NET host for libonnxdeconv.so, doing what C/C++ and Python hosts do: loads the ONNX Runtime library
 * it is given (dlopen, so one binary tests every ORT release), registers the plugin, runs a model that uses
 * ai.onnxdeconv:TransposedConv and checks the output against expected values, in several rounds. Even rounds use
 * RegisterCustomOpsLibrary_V2 (ONNX Runtime owns the handle and dlcloses it with the session options); odd rounds use
 * RegisterCustomOpsLibrary and dlclose the returned handle after releasing the options, as Python's SessionOptions
 * does when it is garbage-collected. So the plugin must survive being unloaded and loaded again.
 *
 * usage: host ORT_LIB.so PLUGIN.so MODEL.onnx INPUT.bin EXPECTED.bin ROUNDS INPUT_NAME OUTPUT_NAME DIM...
 *   INPUT.bin / EXPECTED.bin: raw little-endian float32. Exit 0 = all rounds matched, 1 = mismatch, 2 = usage/IO, 3 = ORT error.
 * Prints the ONNX Runtime version and which build of the plugin this CPU got (its OnnxDeconvVariant export).
 * Tolerance: |y - e| <= 1e-5 + 1e-4*|e| (the project's float32 rule).
 */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "onnxruntime_c_api.h"

/* The host asks for the same OrtApi version as the plugin: every entry it calls is at least that old. */
#define HOST_API_VERSION 17
static const OrtApi* g_ort;

#define ORT_CHECK(expr)                                                                   \
  do {                                                                                    \
    OrtStatus* status_ = (expr);                                                          \
    if (status_ != NULL) {                                                                \
      fprintf(stderr, "ORT error in %s: %s\n", #expr, g_ort->GetErrorMessage(status_)); \
      g_ort->ReleaseStatus(status_);                                                      \
      return 3;                                                                           \
    }                                                                                     \
  } while (0)

static float* read_floats(const char* path, size_t* count) {
  FILE* f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long bytes = ftell(f);
  fseek(f, 0, SEEK_SET);
  float* data = (float*)malloc(bytes > 0 ? (size_t)bytes : 1);
  size_t got = fread(data, 1, (size_t)bytes, f);
  fclose(f);
  if (got != (size_t)bytes) { free(data); return NULL; }
  *count = (size_t)bytes / sizeof(float);
  return data;
}

static int run_round(OrtEnv* env, const char* plugin, const char* model, float* x, size_t x_count, const int64_t* dims,
                     size_t rank, const float* expected, size_t expected_count, const char* in_name, const char* out_name,
                     int round) {
  OrtSessionOptions* options = NULL;
  ORT_CHECK(g_ort->CreateSessionOptions(&options));
  ORT_CHECK(g_ort->SetIntraOpNumThreads(options, 2));
  ORT_CHECK(g_ort->SetSessionGraphOptimizationLevel(options, ORT_DISABLE_ALL));
  void* legacy_handle = NULL;
  if (round % 2 == 0)
    ORT_CHECK(g_ort->RegisterCustomOpsLibrary_V2(options, plugin));
  else
    ORT_CHECK(g_ort->RegisterCustomOpsLibrary(options, plugin, &legacy_handle));
  OrtSession* session = NULL;
  ORT_CHECK(g_ort->CreateSession(env, model, options, &session));

  OrtMemoryInfo* memory = NULL;
  ORT_CHECK(g_ort->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &memory));
  OrtValue* input = NULL;
  ORT_CHECK(g_ort->CreateTensorWithDataAsOrtValue(memory, x, x_count * sizeof(float), dims, rank,
                                                  ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &input));
  const char* input_names[] = {in_name};
  const char* output_names[] = {out_name};
  OrtValue* output = NULL;
  ORT_CHECK(g_ort->Run(session, NULL, input_names, (const OrtValue* const*)&input, 1, output_names, 1, &output));

  OrtTensorTypeAndShapeInfo* info = NULL;
  size_t y_count = 0;
  ORT_CHECK(g_ort->GetTensorTypeAndShape(output, &info));
  ORT_CHECK(g_ort->GetTensorShapeElementCount(info, &y_count));
  g_ort->ReleaseTensorTypeAndShapeInfo(info);
  float* y = NULL;
  ORT_CHECK(g_ort->GetTensorMutableData(output, (void**)&y));

  int result = 0;
  if (y_count != expected_count) {
    fprintf(stderr, "round %d: %zu output values, expected %zu\n", round, y_count, expected_count);
    result = 1;
  } else {
    double max_abs = 0;
    for (size_t i = 0; i < y_count; i++) {
      double diff = fabs((double)y[i] - (double)expected[i]);
      if (diff > max_abs) max_abs = diff;
      if (!(diff <= 1e-5 + 1e-4 * fabs((double)expected[i]))) {
        fprintf(stderr, "round %d: element %zu is %g, expected %g\n", round, i, y[i], expected[i]);
        result = 1;
        break;
      }
    }
    printf("round %d: %zu values, max abs error %g\n", round, y_count, max_abs);
  }
  g_ort->ReleaseValue(output);
  g_ort->ReleaseValue(input);
  g_ort->ReleaseMemoryInfo(memory);
  g_ort->ReleaseSession(session);
  g_ort->ReleaseSessionOptions(options); /* V2: ONNX Runtime dlcloses the plugin here */
  if (legacy_handle != NULL) dlclose(legacy_handle); /* legacy: the caller owns the handle, as Python does */
  return result;
}

/* Which build of the plugin this CPU gets: the dispatcher's OnnxDeconvVariant export (loaded, asked, closed). */
static void print_plugin_variant(const char* plugin) {
  void* h = dlopen(plugin, RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) { printf("plugin: cannot dlopen %s: %s\n", plugin, dlerror()); return; }
  const char* (*variant)(void) = (const char* (*)(void))dlsym(h, "OnnxDeconvVariant");
  printf("plugin: %s\n", variant ? variant() : "(no OnnxDeconvVariant export)");
  dlclose(h);
}

int main(int argc, char** argv) {
  if (argc < 10) {
    fprintf(stderr, "usage: %s ORT_LIB.so PLUGIN.so MODEL.onnx INPUT.bin EXPECTED.bin ROUNDS INPUT_NAME OUTPUT_NAME DIM...\n", argv[0]);
    return 2;
  }
  void* ort_lib = dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL);
  if (ort_lib == NULL) { fprintf(stderr, "cannot load ONNX Runtime %s: %s\n", argv[1], dlerror()); return 2; }
  const OrtApiBase* (*get_base)(void) = (const OrtApiBase* (*)(void))dlsym(ort_lib, "OrtGetApiBase");
  if (get_base == NULL) { fprintf(stderr, "%s exports no OrtGetApiBase\n", argv[1]); return 2; }
  const OrtApiBase* base = get_base();
  g_ort = base->GetApi(HOST_API_VERSION);
  if (g_ort == NULL) { fprintf(stderr, "ONNX Runtime %s does not offer API version %d\n", base->GetVersionString(), HOST_API_VERSION); return 3; }
  printf("onnxruntime: %s\n", base->GetVersionString());
  print_plugin_variant(argv[2]);
  argv++; /* the rest as before: PLUGIN MODEL INPUT EXPECTED ROUNDS IN OUT DIM... */
  argc--;
  size_t x_count = 0, expected_count = 0;
  float* x = read_floats(argv[3], &x_count);
  float* expected = read_floats(argv[4], &expected_count);
  if (!x || !expected) { fprintf(stderr, "cannot read %s or %s\n", argv[3], argv[4]); return 2; }
  int rounds = atoi(argv[5]);
  size_t rank = (size_t)(argc - 8);
  int64_t dims[8];
  if (rank > 8) { fprintf(stderr, "rank %zu too large\n", rank); return 2; }
  for (size_t i = 0; i < rank; i++) dims[i] = atoll(argv[8 + i]);

  OrtEnv* env = NULL;
  ORT_CHECK(g_ort->CreateEnv(ORT_LOGGING_LEVEL_WARNING, "onnxdeconv-host", &env));
  int result = 0;
  for (int round = 0; round < rounds && result == 0; round++)
    result = run_round(env, argv[1], argv[2], x, x_count, dims, rank, expected, expected_count, argv[6], argv[7], round);
  g_ort->ReleaseEnv(env);
  free(x);
  free(expected);
  if (result == 0) printf("ok: %d rounds matched\n", rounds);
  return result;
}
