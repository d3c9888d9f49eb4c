/*
 * Configuration (daemon/config/config.c): endpoint syntax, each key's checks, the order defaults
 * < file < -o, one-line errors with file and line, and that -p prints every known key.
 * Also the CA files start-up loads (cafile_check_config, what "tlspolicyd -t" runs).
 */
#include "cafile.h"
#include "check.h"
#include "config.h"

#include <stdlib.h>
#include <fcntl.h>
#include <sys/stat.h>
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

/*
 * Reload (config_keep_restart_only): a restart-only key keeps the value in force and is
 * named; any other key takes the new value. Each row loads "now" from defaults and "want"
 * from one -o.
 */
struct keep_row {
    const char *label;
    const char *opt;
    const char *want_changed; /* "": nothing kept */
};

static const struct keep_row keep_rows[] = {
    {"keep: same value, other spelling", "probe_timeout=10000ms", ""},
    {"keep: scalar", "probe_timeout=3s", "probe_timeout"},
    {"keep: string", "state_dir=/var/lib/other", "state_dir"},
    {"keep: endpoints", "listen=unix:/tmp/other.sock", "listen"},
    {"keep: endpoint and its text", "metrics_listen=inet:127.0.0.1:9999", "metrics_listen"},
    {"reload: not restart-only", "log_level=debug", ""},
};

/* What -p prints for cfg, to compare whole configurations; the caller frees it. */
static char *printed(const struct config *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);

    config_print(cfg, fp);
    fclose(fp);
    return buf;
}

static void check_keep(const struct keep_row *r)
{
    struct config now, want;
    char err[512], changed[256], *opts[1] = {(char *)r->opt};
    char *in_force, *asked, *shown, *released;
    int kept = r->want_changed[0] != '\0';

    config_load(&now, NULL, NULL, 0, err, sizeof(err));
    config_load(&want, NULL, opts, 1, err, sizeof(err));
    in_force = printed(&now);
    asked = printed(&want);
    check_int(r->label, "count",
              (long long)config_keep_restart_only(&want, &now, changed, sizeof(changed)), kept);
    check_str(r->label, "named", changed, r->want_changed);
    /* Kept: the configuration that replaces now shows what stays in force. */
    shown = printed(&want);
    released = printed(&now);
    check_str(r->label, "shown", shown, kept ? in_force : asked);
    check_str(r->label, "released", released, kept ? asked : in_force);
    free(in_force);
    free(asked);
    free(shown);
    free(released);
    config_free(&now);
    config_free(&want);
}

/*
 * CA files (issue 10 section 3): -t must refuse what start-up cannot use, with one line
 * naming the key and the file. "@" in opt and want stands for a scratch directory.
 */
struct ca_row {
    const char *label;
    const char *opt;
    const char *want_err; /* prefix; NULL: accepted */
};

static const struct ca_row ca_rows[] = {
    {"CA: the system bundle by default", "log_level=info", NULL},
    {"CA: a bundle of one certificate", "sts_ca_file=@/one.pem", NULL},
    {"CA: one good, one corrupt block: mbedTLS keeps the good one", "probe_ca_file=@/mixed.pem",
     NULL},
    {"CA: sts_ca_file missing", "sts_ca_file=@/nonexistent",
     "sts_ca_file: CA file @/nonexistent: cannot open: No such file or directory"},
    {"CA: probe_ca_file missing", "probe_ca_file=@/nonexistent",
     "probe_ca_file: CA file @/nonexistent: cannot open: No such file or directory"},
    {"CA: empty file", "sts_ca_file=@/empty.pem",
     "sts_ca_file: CA file @/empty.pem: holds no PEM certificate"},
    {"CA: text without a certificate", "probe_ca_file=@/text.pem",
     "probe_ca_file: CA file @/text.pem: holds no PEM certificate"},
    {"CA: a PEM block that is not a certificate", "sts_ca_file=@/garbage.pem",
     "sts_ca_file: CA file @/garbage.pem: holds no usable certificate"},
    {"CA: a directory", "sts_ca_file=@", "sts_ca_file: CA file @: not a regular file"},
    {"CA: a FIFO does not hang -t", "probe_ca_file=@/fifo.pem",
     "probe_ca_file: CA file @/fifo.pem: not a regular file"},
    {"CA: a NUL byte", "sts_ca_file=@/nul.pem",
     "sts_ca_file: CA file @/nul.pem: holds no PEM certificate"},
};

static void subst(char *out, size_t n, const char *in, const char *dir)
{
    size_t len = 0;

    for (; *in && len + 1 < n; in++) {
        if (*in == '@')
            len += (size_t)snprintf(out + len, n - len, "%s", dir);
        else
            out[len++] = *in;
        if (len >= n)
            len = n - 1;
    }
    out[len] = '\0';
}

static void write_file(const char *dir, const char *name, const char *data, size_t len)
{
    char path[512];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fp = fopen(path, "w");
    if (fp == NULL || fwrite(data, 1, len, fp) != len)
        perror(path);
    if (fp)
        fclose(fp);
}

/*
 * The OpenSSL store fetches use: built once, the same one at every call; a bundle with one
 * block OpenSSL cannot read (mixed.pem, written by the caller) gives none and says why.
 */
static void check_ca_store(struct cafile *sys, const char *dir)
{
    const char *why = "unset";
    X509_STORE *st = cafile_x509_store(sys, &why);
    char path[512], err[512];
    struct cafile *mixed;

    check_true("CA store: system bundle", "built", st != NULL && why == NULL);
    check_true("CA store: system bundle", "built once", cafile_x509_store(sys, &why) == st);
    snprintf(path, sizeof(path), "%s/mixed.pem", dir);
    mixed = cafile_load(path, err, sizeof(err));
    if (!check_true("CA store: one corrupt block", "mbedTLS accepts the bundle", mixed != NULL))
        return;
    check_true("CA store: one corrupt block", "OpenSSL refuses the whole bundle",
               cafile_x509_store(mixed, &why) == NULL);
    check_true("CA store: one corrupt block", "the reason names the file",
               why != NULL && strstr(why, "mixed.pem: OpenSSL cannot use it") != NULL);
    check_true("CA store: one corrupt block", "not tried again",
               cafile_x509_store(mixed, &why) == NULL);
    cafile_unref(mixed);
}

static void check_ca_files(void)
{
    char dir[] = "/tmp/test_config_ca_XXXXXX", *one = NULL;
    static const char garbage[] = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n"
                                  "-----END CERTIFICATE-----\n";
    static const char nul[] = "-----BEGIN CERTIFICATE-----\n\0\n-----END CERTIFICATE-----\n";
    char err[512];
    struct cafile *sys;
    size_t len;
    const char *pem, *end;

    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return;
    }
    /* One real certificate: the first of the system bundle. */
    sys = cafile_load(NULL, err, sizeof(err));
    if (!check_true("CA: system bundle", "loads", sys != NULL)) {
        printf("  %s\n", err);
        return;
    }
    pem = cafile_pem(sys, &len);
    end = strstr(pem, "-----END CERTIFICATE-----\n");
    if (end != NULL) {
        size_t n = (size_t)(end - pem) + 26;

        one = malloc(n + sizeof(garbage));
        memcpy(one, pem, n);
        write_file(dir, "one.pem", one, n);
        memcpy(one + n, garbage, sizeof(garbage) - 1);
        write_file(dir, "mixed.pem", one, n + sizeof(garbage) - 1);
    }
    check_true("CA: system bundle", "holds certificates", cafile_count(sys) > 0);
    check_ca_store(sys, dir);
    cafile_unref(sys);
    write_file(dir, "empty.pem", "", 0);
    write_file(dir, "text.pem", "not a bundle\n", 13);
    write_file(dir, "garbage.pem", garbage, sizeof(garbage) - 1);
    write_file(dir, "nul.pem", nul, sizeof(nul) - 1);
    {
        char fifo[512];

        snprintf(fifo, sizeof(fifo), "%s/fifo.pem", dir);
        if (mkfifo(fifo, 0600) < 0)
            perror(fifo);
    }

    for (size_t i = 0; i < sizeof(ca_rows) / sizeof(ca_rows[0]); i++) {
        const struct ca_row *r = &ca_rows[i];
        char opt[600], want[600];
        char *opts[1] = {opt};
        struct config cfg;
        int rc;

        subst(opt, sizeof(opt), r->opt, dir);
        if (!check_int(r->label, "config loads", config_load(&cfg, NULL, opts, 1, err, sizeof(err)),
                       0))
            continue;
        err[0] = '\0';
        rc = cafile_check_config(&cfg, err, sizeof(err));
        config_free(&cfg);
        if (r->want_err == NULL) {
            if (!check_int(r->label, "accepted", rc, 0))
                printf("  error: %s\n", err);
            continue;
        }
        subst(want, sizeof(want), r->want_err, dir);
        check_int(r->label, "rejected", rc, -1);
        if (!check_true(r->label, "message", strncmp(err, want, strlen(want)) == 0))
            printf("  got \"%s\", want prefix \"%s\"\n", err, want);
        check_true(r->label, "one line", strchr(err, '\n') == NULL);
    }
    free(one);
    {
        const char *names[] = {"one.pem",     "mixed.pem", "empty.pem", "text.pem",
                               "garbage.pem", "nul.pem",   "fifo.pem"};
        char path[600];

        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
            unlink(path);
        }
        rmdir(dir);
    }
}

int main(void)
{
    for (size_t i = 0; i < sizeof(ep_rows) / sizeof(ep_rows[0]); i++)
        check_ep(&ep_rows[i]);
    for (size_t i = 0; i < sizeof(opt_rows) / sizeof(opt_rows[0]); i++)
        check_opt(&opt_rows[i]);
    check_defaults_file_and_opts();
    check_print_covers_keys();
    check_ca_files();
    for (size_t i = 0; i < sizeof(keep_rows) / sizeof(keep_rows[0]); i++)
        check_keep(&keep_rows[i]);
    return check_summary("test_config");
}
