/*
 * What every fuzzer in tests/fuzz/fuzz_<name>.c shares: the libFuzzer entry point's
 * prototype (defined by the fuzzer, called by libFuzzer or by replay.c) and CHECK(), which
 * names the failed invariant and its line on stderr and aborts, so both libFuzzer and the
 * corpus replay report it as a crash. Header-only: every fuzzer includes it once.
 */
#ifndef TESTS_FUZZ_CHECK_H
#define TESTS_FUZZ_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
