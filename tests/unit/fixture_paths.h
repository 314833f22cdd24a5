/* fixture_paths.h -- where the fixture plugins (tests/fixtures/) are, and
 * whether one is mapped: for the tests that dlopen them. */
#ifndef FIXTURE_PATHS_H
#define FIXTURE_PATHS_H

#include <stdbool.h>

/* The full path of a fixture, e.g. fx("good/good.so"), under $BH_FIXTURES
 * (ctest sets it; the test fails without it). A few rotating buffers, so one
 * call's result survives the next ones in an expression. */
const char *fx(const char *rel);

/* Whether the file at path, or a private copy of a file of its name
 * (loader.h), is still mapped in this process. */
bool fx_loaded(const char *path);

#endif
