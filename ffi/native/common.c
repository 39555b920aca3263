#include "common.h"

#include <time.h>

int64_t wv_monotonic_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ABI version: TypeScript refuses a shim built from other sources. Bump on any ABI change. */
WV_EXPORT int32_t wavry_abi_version(void) { return 1; }

/* The capture clock, exposed so the host can stamp other events on the same timeline. */
WV_EXPORT int64_t wavry_monotonic_us(void) { return wv_monotonic_us(); }
