/*
 * An intrusive doubly linked list kept in order of use, for caches that evict the least
 * recently used entry: an entry embeds a struct lru_link and the cache owns a struct lru.
 * Nothing here allocates; lru_entry() gets from a link back to its entry (container_of).
 * The head is the most recently used end, the tail the least recently used one.
 */
#ifndef DAEMON_LRU_H
#define DAEMON_LRU_H

#include <stddef.h>

struct lru_link {
    struct lru_link *prev; /* towards the head (more recently used); NULL at the head */
    struct lru_link *next; /* towards the tail (less recently used); NULL at the tail */
};

struct lru {
    struct lru_link *head; /* most recently used, or NULL when empty */
    struct lru_link *tail; /* least recently used, or NULL when empty */
};

/* The entry of type that holds link as its member; NULL for a NULL link. */
#define lru_entry(link, type, member)                                                              \
    ((link) ? (type *)(void *)((char *)(link)-offsetof(type, member)) : (type *)NULL)

/* lru_unlink - take n, which must be on l, out of l. */
static inline void lru_unlink(struct lru *l, struct lru_link *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        l->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        l->tail = n->prev;
    n->prev = n->next = NULL;
}

/* lru_push_front - put n, which must not be on a list, at the head of l (most recent). */
static inline void lru_push_front(struct lru *l, struct lru_link *n)
{
    n->prev = NULL;
    n->next = l->head;
    if (l->head)
        l->head->prev = n;
    else
        l->tail = n;
    l->head = n;
}

/* lru_touch - n, which must be on l, was just used: it moves to the head. */
static inline void lru_touch(struct lru *l, struct lru_link *n)
{
    if (l->head == n)
        return;
    lru_unlink(l, n);
    lru_push_front(l, n);
}

#endif
