/* driver.c -- the regression driver: feeds every file of the directories
 * given to LLVMFuzzerTestOneInput, in name order, so a harness runs as an
 * ordinary test without clang or libFuzzer (tests/fuzz/CMakeLists.txt). A
 * harness that finds a bug aborts; this fails when no input was found. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long n;
    if (!f) return -1;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return -1;
    }
    /* Exactly n bytes, so ASan sees a read past the input. */
    buf = malloc(n ? (size_t)n : 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, (size_t)n);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    size_t total = 0;
    for (int a = 1; a < argc; a++) {
        struct dirent **names;
        int n = scandir(argv[a], &names, NULL, by_name);
        if (n < 0) continue; /* a harness may have no regress/ folder yet */
        for (int i = 0; i < n; i++) {
            char path[4096];
            struct stat st;
            snprintf(path, sizeof path, "%s/%s", argv[a], names[i]->d_name);
            if (names[i]->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                if (run_file(path) != 0) {
                    fprintf(stderr, "driver: cannot read %s\n", path);
                    return 1;
                }
                total++;
            }
            free(names[i]);
        }
        free(names);
    }
    if (!total) {
        fprintf(stderr, "driver: no input in any of the %d folders given\n", argc - 1);
        return 1;
    }
    printf("driver: %zu inputs, no crash\n", total);
    return 0;
}
