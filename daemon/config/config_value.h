/*
 * Value syntax shared by configuration keys (config_value.c). config_endpoint_parse() is
 * declared in config.h, since other folders parse endpoints too.
 */
#ifndef DAEMON_CONFIG_VALUE_H
#define DAEMON_CONFIG_VALUE_H

/* config_parse_uint - s as a decimal number of at most max: 0 with *out set, or -1. */
int config_parse_uint(const char *s, unsigned long max, unsigned long *out);

/*
 * config_parse_duration - a number with an optional unit ms, s, m or h (a bare number is
 * seconds) into *ms: 0, or -1 with a reason in *why.
 */
int config_parse_duration(const char *s, unsigned *ms, const char **why);

#endif
