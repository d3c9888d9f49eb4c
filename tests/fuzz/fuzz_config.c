/*
 * Fuzzer for configuration values (daemon/config/config.c): each input line is given as a
 * "-o key=value" argument, which runs the same setters as the file (endpoints, modes,
 * durations, numbers, words). Invariants: success leaves a usable configuration with at
 * least one endpoint and bounded numbers; failure leaves a one-line message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz_check.h"

#define MAX_OPTS 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1), *opts[MAX_OPTS], *save = NULL, *line;
    size_t n = 0;
    struct config cfg;
    char err[512] = "";

    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    for (line = strtok_r(text, "\n", &save); line && n < MAX_OPTS;
         line = strtok_r(NULL, "\n", &save))
        opts[n++] = line;

    if (config_load(&cfg, NULL, opts, n, err, sizeof(err)) == 0) {
        if (cfg.nlisten == 0 || cfg.listen == NULL || cfg.max_connections == 0 ||
            cfg.max_pipeline == 0 || cfg.max_pipeline > 1024 || cfg.socket_mode > 0777 ||
            cfg.idle_timeout_ms < 100 || cfg.user == NULL || cfg.overrides == NULL)
            abort();
        for (size_t i = 0; i < cfg.nlisten; i++) {
            const struct endpoint *ep = &cfg.listen[i];

            if (ep->kind == ENDPOINT_UNIX ? ep->path[0] == '\0'
                                          : (ep->port < 1 || ep->port > 65535))
                abort();
        }
        config_free(&cfg);
    } else if (err[0] == '\0' || strchr(err, '\n') != NULL) {
        abort();
    }
    free(text);
    return 0;
}
