/*
 * Configuration (daemon/config.c): endpoint syntax, each key's checks, the order defaults
 * < file < -o, one-line errors with file and line, and that -p prints every known key.
 */
#include "check.h"
#include "config.h"

#include <stdlib.h>
#include <fcntl.h>
#include <unistd.h>

struct ep_row {
    const char *label;
    const char *text;
    int rc;
    enum endpoint_kind kind;
    const char *path_or_host;
    int port;
};

static const struct ep_row ep_rows[] = {
    {"unix", "unix:/run/tlspolicyd/sock", 0, ENDPOINT_UNIX, "/run/tlspolicyd/sock", 0},
    {"unix relative", "unix:run/t.sock", 0, ENDPOINT_UNIX, "run/t.sock", 0},
    {"unix empty", "unix:", -1, 0, NULL, 0},
    {"unix too long",
     "unix:/"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaa",
     -1, 0, NULL, 0},
    {"inet v4", "inet:127.0.0.1:9462", 0, ENDPOINT_INET, "127.0.0.1", 9462},
    {"inet localhost", "inet:localhost:9462", 0, ENDPOINT_INET, "127.0.0.1", 9462},
    {"inet v6", "inet:[::1]:9462", 0, ENDPOINT_INET, "::1", 9462},
    {"inet v6 without brackets", "inet:::1:9462", 0, ENDPOINT_INET, "::1", 9462},
    {"inet v6 unclosed", "inet:[::1:9462", -1, 0, NULL, 0},
    {"inet no port", "inet:127.0.0.1", -1, 0, NULL, 0},
    {"inet port 0", "inet:127.0.0.1:0", -1, 0, NULL, 0},
    {"inet port 65536", "inet:127.0.0.1:65536", -1, 0, NULL, 0},
    {"inet port junk", "inet:127.0.0.1:95x", -1, 0, NULL, 0},
    {"inet host name", "inet:mail.example:25", -1, 0, NULL, 0},
    {"inet empty host", "inet::25", -1, 0, NULL, 0},
    {"other scheme", "tcp:127.0.0.1:25", -1, 0, NULL, 0},
};

static void check_ep(const struct ep_row *r)
{
    struct endpoint ep;
    const char *why = NULL;
    int rc = config_endpoint_parse(r->text, &ep, &why);

    check_int(r->label, "rc", rc, r->rc);
    if (rc < 0 || r->rc < 0) {
        check_true(r->label, "why", rc == 0 || (why && *why));
        return;
    }
    check_int(r->label, "kind", ep.kind, r->kind);
    check_str(r->label, "address", r->kind == ENDPOINT_UNIX ? ep.path : ep.host, r->path_or_host);
    check_int(r->label, "port", ep.port, r->port);
    check_str(r->label, "text kept", ep.text, r->text);
}

/* (label, -o value, want error prefix or NULL) */
struct opt_row {
    const char *label;
    const char *opt;
    const char *want_err;
};

static const struct opt_row opt_rows[] = {
    {"listen list", "listen=unix:/a.sock, inet:127.0.0.1:1 inet:[::1]:2", NULL},
    {"listen empty", "listen=", "-o listen=: listen needs at least one endpoint"},
    {"listen duplicate", "listen=unix:/a unix:/a", "-o listen=unix:/a unix:/a: endpoint listed"},
    {"mode", "socket_mode=0600", NULL},
    {"mode not octal", "socket_mode=0689", "-o socket_mode=0689: expected an octal mode"},
    {"mode too big", "socket_mode=01777", "-o socket_mode=01777: expected an octal mode"},
    {"duration ms", "idle_timeout=500ms", NULL},
    {"duration m", "idle_timeout=5m", NULL},
    {"duration bare", "request_timeout=3", NULL},
    {"duration too short", "request_timeout=10ms", "-o request_timeout=10ms: duration too short"},
    {"duration unit", "idle_timeout=5d", "-o idle_timeout=5d: expected a duration"},
    {"duration negative", "idle_timeout=-5", "-o idle_timeout=-5: expected a duration"},
    {"duration huge", "idle_timeout=99999h", "-o idle_timeout=99999h: duration longer"},
    {"connections", "max_connections=10", NULL},
    {"connections zero", "max_connections=0", "-o max_connections=0: expected a number"},
    {"connections junk", "max_connections=10k", "-o max_connections=10k: expected a number"},
    {"pipeline too big", "max_pipeline=5000", "-o max_pipeline=5000: expected a number"},
    {"log level", "log_level=debug", NULL},
    {"log level bad", "log_level=verbose", "-o log_level=verbose: expected error"},
    {"syslog", "syslog=yes", NULL},
    {"syslog bad", "syslog=true", "-o syslog=true: expected yes or no"},
    {"spaces around =", " user = mail ", NULL},
    {"no =", "user", "-o user: expected key=value"},
    {"unknown", "colour=blue", "-o colour=blue: unknown parameter"},
};

static void check_opt(const struct opt_row *r)
{
    struct config cfg;
    char err[512] = "";
    char *opts[1] = {(char *)r->opt};
    int rc = config_load(&cfg, NULL, opts, 1, err, sizeof(err));

    if (r->want_err == NULL) {
        check_int(r->label, "accepted", rc, 0);
        if (rc < 0)
            printf("  error: %s\n", err);
        else
            config_free(&cfg);
        return;
    }
    check_int(r->label, "rejected", rc, -1);
    if (!check_true(r->label, "message", strncmp(err, r->want_err, strlen(r->want_err)) == 0))
        printf("  got \"%s\", want prefix \"%s\"\n", err, r->want_err);
}

static void check_defaults_file_and_opts(void)
{
    char path[] = "/tmp/test_config_XXXXXX";
    int fd = mkstemp(path);
    const char text[] = "# a comment\n"
                        "listen = unix:/tmp/a.sock,\n"
                        "         inet:127.0.0.1:9462\n"
                        "\n"
                        "max_connections = 100\n"
                        "user =\n"
                        "idle_timeout = 2m\n";
    char *opts[] = {"max_connections=200"};
    struct config cfg;
    char err[512];

    if (write(fd, text, sizeof(text) - 1) != (ssize_t)(sizeof(text) - 1))
        perror("write");
    close(fd);

    check_int("defaults", "load", config_load(&cfg, NULL, NULL, 0, err, sizeof(err)), 0);
    check_str("defaults", "listen", cfg.listen[0].text, "unix:run/tlspolicyd.sock");
    check_int("defaults", "socket_mode", cfg.socket_mode, 0660);
    check_str("defaults", "user", cfg.user, "tlspolicyd");
    check_int("defaults", "idle above Postfix's 100 s", cfg.idle_timeout_ms > 100000, 1);
    config_free(&cfg);

    check_int("file + -o", "load", config_load(&cfg, path, opts, 1, err, sizeof(err)), 0);
    check_int("file + -o", "two endpoints", (long long)cfg.nlisten, 2);
    check_str("file + -o", "continuation", cfg.listen[1].text, "inet:127.0.0.1:9462");
    check_int("file + -o", "-o wins over the file", cfg.max_connections, 200);
    check_str("file + -o", "empty value", cfg.user, "");
    check_int("file + -o", "minutes", cfg.idle_timeout_ms, 120000);
    config_free(&cfg);

    /* An error names the file and the line the logical line starts on. */
    fd = open(path, O_WRONLY | O_TRUNC);
    {
        const char bad[] = "max_connections = 5\n\n# x\nlisten = unix:/a,\n  bogus:x\n";

        if (write(fd, bad, sizeof(bad) - 1) != (ssize_t)(sizeof(bad) - 1))
            perror("write");
    }
    close(fd);
    check_int("bad file", "rejected", config_load(&cfg, path, NULL, 0, err, sizeof(err)), -1);
    {
        char want[600];

        snprintf(want, sizeof(want), "%s:4: listen = unix:/a, bogus:x: endpoint must start", path);
        if (!check_true("bad file", "message", strncmp(err, want, strlen(want)) == 0))
            printf("  got \"%s\"\n", err);
    }
    unlink(path);
}

/* Every key the parser knows appears in -p output, so the two cannot drift apart. */
static void check_print_covers_keys(void)
{
    struct config cfg;
    char err[512], *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    const struct config_key_doc *k;

    config_load(&cfg, NULL, NULL, 0, err, sizeof(err));
    config_print(&cfg, fp);
    fclose(fp);
    for (k = config_keys(); k->name; k++) {
        char want[128];

        snprintf(want, sizeof(want), "\n%s = ", k->name);
        check_true(k->name, "printed by -p",
                   strstr(buf, want) != NULL || strncmp(buf, want + 1, strlen(want + 1)) == 0);
        check_true(k->name, "documented", k->description && *k->description);
    }
    free(buf);
    config_free(&cfg);
}

int main(void)
{
    for (size_t i = 0; i < sizeof(ep_rows) / sizeof(ep_rows[0]); i++)
        check_ep(&ep_rows[i]);
    for (size_t i = 0; i < sizeof(opt_rows) / sizeof(opt_rows[0]); i++)
        check_opt(&opt_rows[i]);
    check_defaults_file_and_opts();
    check_print_covers_keys();
    return check_summary("test_config");
}
