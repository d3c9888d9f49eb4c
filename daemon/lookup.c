/*
 * The path of one lookup: map name, key, facts, decision, and the decision's log line.
 * Answers that need no facts (unknown map, parent probe, invalid key) are given here,
 * before any work, as SPEC section 4 requires.
 */
#include "lookup.h"

#include <stdio.h>
#include <string.h>

#include "escape.h"
#include "log.h"
#include "overrides.h"

static void log_decision(const struct sockmap_request *req, const struct lookup_result *res)
{
    char key[300];

    if (!log_enabled(LOG_DEBUG))
        return;
    escape_log(key, sizeof(key), req->key, req->keylen);
    log_debug("lookup map=%s key=%s answer=\"%s%s%s\" rule=%s%s%s", engine_map_name(res->map), key,
              sockmap_status_word(res->ans.status), res->ans.text[0] ? " " : "", res->ans.text,
              res->ans.rule, res->detail ? " detail=" : "", res->detail ? res->detail : "");
}

void lookup_start(struct lookup_svc *svc, const struct sockmap_request *req, lookup_done_fn done,
                  void *arg)
{
    struct lookup_result res;
    struct engine_facts *facts = &res.facts;
    struct overrides_hit hit;
    const char *why = NULL;
    int d;

    /* Not a memset: the answer text alone is 4 KiB, and this is the hot path. */
    res.domain[0] = '\0';
    res.ans.text[0] = '\0';
    res.detail = NULL;
    memset(&res.facts, 0, sizeof(res.facts));
    res.map = engine_map_from_name(req->name, req->namelen);

    /* SPEC 4: an unknown map name is a configuration error on the client's side. */
    if (res.map == ENGINE_MAP_UNKNOWN) {
        char name[SOCKMAP_MAX_NAME * 4 + 4];

        escape_log(name, sizeof(name), req->name, req->namelen);
        res.ans.status = SOCKMAP_PERM;
        res.ans.rule = "request/unknown-map";
        snprintf(res.ans.text, sizeof(res.ans.text), "unknown map %s", name);
        goto answer;
    }

    /* SPEC 4: parent-domain probes and keys that are not domains get "NOTFOUND " at once. */
    d = domain_normalize(req->key, req->keylen, res.domain, &why);
    if (d != DOMAIN_OK) {
        res.domain[0] = '\0';
        res.ans.status = SOCKMAP_NOTFOUND;
        res.ans.rule = d == DOMAIN_PARENT ? "request/parent-probe" : "request/not-a-domain";
        res.detail = d == DOMAIN_PARENT ? "parent-domain probe keys are not looked up" : why;
        goto answer;
    }

    /* Gather the facts. */
    facts->domain = res.domain;
    if (overrides_find(svc->overrides, res.domain, &hit)) {
        facts->has_override = 1;
        facts->override_key = hit.key;
        facts->override_value = hit.value;
        facts->override_level = hit.level;
        res.detail = hit.key;
    }
    engine_decide(res.map, facts, &res.ans);

answer:
    log_decision(req, &res);
    done(arg, &res);
}
