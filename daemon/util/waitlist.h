/*
 * The askers waiting for one piece of work (a DNS answer, a probe, an MTA-STS discovery):
 * an intrusive singly linked list whose members can leave at any time, including while the
 * list is being answered, because each knows the pointer that points at it. The work takes
 * the whole list out (waitlist_take) before answering, so askers that arrive during the
 * answers wait for the next result, and an answer's callback may cancel any other asker.
 * Nothing here allocates; waitlist_entry() gets from a link back to its asker.
 */
#ifndef DAEMON_WAITLIST_H
#define DAEMON_WAITLIST_H

#include <stddef.h>

struct waitlist_link {
    struct waitlist_link *next;
    struct waitlist_link **pprev; /* the pointer that points at this link */
};

/* The asker of type that holds link as its member; NULL for a NULL link. */
#define waitlist_entry(link, type, member)                                                         \
    ((link) ? (type *)(void *)((char *)(link)-offsetof(type, member)) : (type *)NULL)

/* waitlist_push - add w, which must not be on a list, at the front of the list *head. */
static inline void waitlist_push(struct waitlist_link **head, struct waitlist_link *w)
{
    w->next = *head;
    if (w->next)
        w->next->pprev = &w->next;
    w->pprev = head;
    *head = w;
}

/* waitlist_remove - take w out of whatever list holds it (a taken one too). */
static inline void waitlist_remove(struct waitlist_link *w)
{
    *w->pprev = w->next;
    if (w->next)
        w->next->pprev = w->pprev;
}

/*
 * waitlist_take - move the whole list *head to *taken (a variable of the caller's that
 * lives until the list is empty) and leave *head empty.
 */
static inline void waitlist_take(struct waitlist_link **head, struct waitlist_link **taken)
{
    *taken = *head;
    *head = NULL;
    if (*taken)
        (*taken)->pprev = taken;
}

/* waitlist_pop - take the first asker off the list *head; NULL when it is empty. */
static inline struct waitlist_link *waitlist_pop(struct waitlist_link **head)
{
    struct waitlist_link *w = *head;

    if (w != NULL)
        waitlist_remove(w);
    return w;
}

#endif
