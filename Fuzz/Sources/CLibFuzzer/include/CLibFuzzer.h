#ifndef APUS_CLIBFUZZER_H
#define APUS_CLIBFUZZER_H

#include <stddef.h>
#include <stdint.h>

/// libFuzzer's driver, for programs that have their own main (compiler-rt's FuzzerDriver.cpp).
/// Parses libFuzzer's flags from argc/argv and runs `callback` on every input; returns the
/// process exit status libFuzzer chose.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
