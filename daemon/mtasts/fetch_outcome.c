/*
 * What a fetch's outcome is called: its metrics and log name, the prefix of its log line,
 * and the outcome of a libcurl result code (whose fault it is: the policy host's, or ours).
 * Pure mappings, apart from fetch.c's transfers.
 */
#include <curl/curl.h>

#include "fetch.h"

const char *fetch_outcome_name(enum fetch_outcome o)
{
    switch (o) {
    case FETCH_OK:
        return "ok";
    case FETCH_HTTP_STATUS:
        return "http-status";
    case FETCH_CONTENT_TYPE:
        return "content-type";
    case FETCH_TOO_BIG:
        return "too-big";
    case FETCH_TLS:
        return "tls";
    case FETCH_CONNECT:
        return "connect";
    case FETCH_TIMEOUT:
        return "timeout";
    case FETCH_ERROR:
        return "error";
    case FETCH_LOCAL:
        return "local";
    }
    return "error";
}

enum fetch_outcome fetch_curl_outcome(int rc)
{
    switch (rc) {
    /*
     * Ours, whatever the policy host does: the CA bundle libcurl could not read (a PEM
     * block OpenSSL refuses makes the whole blob fail), memory, libcurl's own set-up.
     */
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_OUT_OF_MEMORY:
    case CURLE_FAILED_INIT:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_NOT_BUILT_IN:
    case CURLE_UNKNOWN_OPTION:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return FETCH_LOCAL;
    case CURLE_OPERATION_TIMEDOUT:
        return FETCH_TIMEOUT;
    case CURLE_COULDNT_CONNECT:
        return FETCH_CONNECT;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CLIENTCERT:
    case CURLE_USE_SSL_FAILED:
        return FETCH_TLS;
    case CURLE_FILESIZE_EXCEEDED:
        return FETCH_TOO_BIG;
    default:
        /* Local trouble (a bad CA file, out of memory), a broken reply, a reset stream. */
        return FETCH_ERROR;
    }
}

const char *fetch_outcome_prefix(enum fetch_outcome o)
{
    switch (o) {
    case FETCH_TIMEOUT:
        return "timed out";
    case FETCH_CONNECT:
        return "no connection";
    case FETCH_TLS:
        return "TLS failed";
    case FETCH_TOO_BIG:
        return "body too big";
    case FETCH_LOCAL:
        return "local fault";
    default:
        return "fetch failed";
    }
}
