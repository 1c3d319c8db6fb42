/*
 * libonnxdeconv.so: the library hosts load. It holds no kernel: at the first RegisterCustomOps it reads the CPU
 * (cpuid + xgetbv, so the OS must also save the wide registers) and loads, from its own folder, the NativeAOT build of
 * the plugin compiled for the widest x86-64 level this CPU runs:
 *
 *   libonnxdeconv-avx512.so    x86-64-v4 (AVX-512 F/BW/CD/DQ/VL)    kernel variant Avx512
 *   libonnxdeconv-avx2.so      x86-64-v3 (AVX2, FMA, BMI1/2, ...)   kernel variant Avx2
 *   libonnxdeconv-baseline.so  x86-64-v2 (SSE4.2, POPCNT)           kernel variant Vector (128-bit)
 *
 * Why: NativeAOT fixes the instruction set at compile time (Avx2.IsSupported is a constant there), so one build is
 * either slow everywhere (baseline) or crashes on older CPUs. A variant is never loaded on a CPU that lacks its level:
 * NativeAOT would abort the process at start-up.
 *
 * ONNXDECONV_ISA=avx512|avx2|vector|scalar asks for a narrower variant (vector and scalar run the baseline build,
 * whose kernel honours the same variable); a variant the CPU cannot run is refused in favour of the widest it can.
 * ONNXDECONV_VERBOSE=1 prints one line on stderr saying which build was loaded and why.
 *
 * This library may be dlclosed and loaded again (ONNX Runtime and Python do that); the variant it loaded stays
 * (linked with -z nodelete: a NativeAOT runtime does not survive unloading), so a reload finds the same one.
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

typedef struct OrtStatus OrtStatus;
typedef struct OrtSessionOptions OrtSessionOptions;
/* Order must match struct OrtApiBase in onnxruntime_c_api.h. */
typedef struct OrtApiBase {
  const void* (*GetApi)(uint32_t version);
  const char* (*GetVersionString)(void);
} OrtApiBase;
/* OrtApi slot 0 in every API version: OrtStatus* CreateStatus(OrtErrorCode code, const char* msg). */
typedef OrtStatus* (*CreateStatusFn)(int code, const char* msg);
typedef OrtStatus* (*RegisterFn)(OrtSessionOptions* options, const OrtApiBase* api);
typedef int (*KernelIsaFn)(void);

enum { ORT_FAIL = 1 };
enum Level { LEVEL_NONE = 0, LEVEL_V2 = 2, LEVEL_V3 = 3, LEVEL_V4 = 4 };

static const char* variant_file(int level) {
  switch (level) {
    case LEVEL_V4: return "libonnxdeconv-avx512.so";
    case LEVEL_V3: return "libonnxdeconv-avx2.so";
    default: return "libonnxdeconv-baseline.so";
  }
}

static const char* level_name(int level) {
  switch (level) {
    case LEVEL_V4: return "x86-64-v4";
    case LEVEL_V3: return "x86-64-v3";
    case LEVEL_V2: return "x86-64-v2";
    default: return "below x86-64-v2";
  }
}

static uint64_t xgetbv0(void) {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((uint64_t)hi << 32) | lo;
}

#define BIT(r, n) (((r) >> (n)) & 1u)

/* The x86-64 micro-architecture levels as .NET's NativeAOT defines them (each includes the one below). */
static int cpu_level(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return LEVEL_NONE;
  unsigned c1 = c;
  unsigned ext_c = 0;
  if (__get_cpuid(0x80000001u, &a, &b, &c, &d)) ext_c = c;
  unsigned b7 = 0;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) b7 = b;

  int v2 = BIT(c1, 0) && BIT(c1, 9) && BIT(c1, 13) && BIT(c1, 19) && BIT(c1, 20) && BIT(c1, 23) && BIT(ext_c, 0);
  if (!v2) return LEVEL_NONE;
  uint64_t xcr0 = BIT(c1, 27) ? xgetbv0() : 0; /* OSXSAVE: the OS saves the registers xgetbv names */
  int ymm_os = (xcr0 & 0x6) == 0x6;
  int zmm_os = (xcr0 & 0xE6) == 0xE6;
  int v3 = ymm_os && BIT(c1, 12) && BIT(c1, 22) && BIT(c1, 28) && BIT(c1, 29) /* FMA MOVBE AVX F16C */
           && BIT(b7, 3) && BIT(b7, 5) && BIT(b7, 8) && BIT(ext_c, 5);      /* BMI1 AVX2 BMI2 LZCNT */
  if (!v3) return LEVEL_V2;
  int v4 = zmm_os && BIT(b7, 16) && BIT(b7, 17) && BIT(b7, 28) && BIT(b7, 30) && BIT(b7, 31); /* F DQ CD BW VL */
  return v4 ? LEVEL_V4 : LEVEL_V3;
}

/* The level ONNXDECONV_ISA asks for (0 = none), as the managed KernelIsaSelector reads the same variable. */
static int requested_level(const char* value) {
  if (value == NULL || value[0] == '\0') return 0;
  if (strcasecmp(value, "avx512") == 0) return LEVEL_V4;
  if (strcasecmp(value, "avx2") == 0) return LEVEL_V3;
  if (strcasecmp(value, "vector") == 0 || strcasecmp(value, "scalar") == 0) return LEVEL_V2;
  return 0; /* unknown: the managed side notes it and uses the widest */
}

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static void* g_variant;
static RegisterFn g_register;
static KernelIsaFn g_kernel_isa;
static char g_description[2048];
static char g_error[2560];

/* Loads the variant once per load of this library; on failure g_error says why. Call with g_lock held. */
static int ensure_loaded(void) {
  if (g_variant != NULL) return 1;
  if (g_error[0] != '\0') return 0;
  int cpu = cpu_level();
  if (cpu == LEVEL_NONE) {
    snprintf(g_error, sizeof g_error,
             "onnxdeconv: this CPU lacks x86-64-v2 (SSE4.2, POPCNT, CMPXCHG16B, LAHF), which every build of the plugin needs");
    return 0;
  }
  const char* env = getenv("ONNXDECONV_ISA");
  int want = requested_level(env);
  int level = cpu;
  const char* why = "widest level this CPU runs";
  if (want != 0 && want <= cpu) { level = want; why = "ONNXDECONV_ISA"; }
  else if (want != 0) why = "ONNXDECONV_ISA asks for more than this CPU runs; using the widest it runs";

  Dl_info self;
  if (dladdr((void*)&cpu_level, &self) == 0 || self.dli_fname == NULL) {
    snprintf(g_error, sizeof g_error, "onnxdeconv: cannot find the folder of libonnxdeconv.so (dladdr failed)");
    return 0;
  }
  char path[1024];
  const char* slash = strrchr(self.dli_fname, '/');
  int dir_len = slash ? (int)(slash - self.dli_fname) + 1 : 0;
  snprintf(path, sizeof path, "%.*s%s", dir_len, self.dli_fname, variant_file(level));
  void* handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (handle == NULL) {
    const char* err = dlerror();
    snprintf(g_error, sizeof g_error, "onnxdeconv: cannot load %s (%s build for this CPU; ship it beside libonnxdeconv.so): %s",
             path, level_name(level), err ? err : "unknown error");
    return 0;
  }
  RegisterFn reg = (RegisterFn)dlsym(handle, "RegisterCustomOps");
  KernelIsaFn isa = (KernelIsaFn)dlsym(handle, "OnnxDeconvKernelIsa");
  if (reg == NULL || isa == NULL) {
    snprintf(g_error, sizeof g_error, "onnxdeconv: %s does not export RegisterCustomOps and OnnxDeconvKernelIsa", path);
    return 0;
  }
  static const char* const kernel_names[] = {"Scalar", "Vector", "Avx2", "Avx512"};
  int k = isa();
  snprintf(g_description, sizeof g_description, "%s (%s; CPU %s; %s), kernel %s", path, level_name(level),
           level_name(cpu), why, (k >= 0 && k <= 3) ? kernel_names[k] : "unknown");
  const char* verbose = getenv("ONNXDECONV_VERBOSE");
  if (verbose != NULL && verbose[0] != '\0' && strcmp(verbose, "0") != 0)
    fprintf(stderr, "onnxdeconv: loaded %s\n", g_description);
  g_register = reg;
  g_kernel_isa = isa;
  g_variant = handle;
  return 1;
}

/* OrtStatus* RegisterCustomOps(OrtSessionOptions*, const OrtApiBase*): what ONNX Runtime calls after dlopen. */
EXPORT OrtStatus* RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* api) {
  pthread_mutex_lock(&g_lock);
  int ok = ensure_loaded();
  RegisterFn reg = g_register;
  pthread_mutex_unlock(&g_lock);
  if (ok) return reg(options, api);
  /* Every OrtApi version has CreateStatus in slot 0; version 1 is offered by every ONNX Runtime. */
  const void* table = api != NULL && api->GetApi != NULL ? api->GetApi(1) : NULL;
  if (table == NULL) {
    fprintf(stderr, "%s\n", g_error);
    return NULL;
  }
  CreateStatusFn create = *(CreateStatusFn const*)table;
  return create(ORT_FAIL, g_error);
}

/* Which build this host got, e.g. ".../libonnxdeconv-avx512.so (x86-64-v4; CPU x86-64-v4; ...), kernel Avx512", or
 * the reason none could be loaded. Loads the variant if nothing has yet. */
EXPORT const char* OnnxDeconvVariant(void) {
  pthread_mutex_lock(&g_lock);
  int ok = ensure_loaded();
  pthread_mutex_unlock(&g_lock);
  return ok ? g_description : g_error;
}

/* The loaded build's kernel variant (KernelIsa: 0 Scalar, 1 Vector, 2 Avx2, 3 Avx512), or -1 if none loads. */
EXPORT int OnnxDeconvKernelIsa(void) {
  pthread_mutex_lock(&g_lock);
  int ok = ensure_loaded();
  KernelIsaFn isa = g_kernel_isa;
  pthread_mutex_unlock(&g_lock);
  return ok ? isa() : -1;
}
