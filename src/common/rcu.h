/*
 * Epoch-based read-side sections.
 *
 * Classification runs on many threads without locks; management and
 * registration change what it reads. Readers mark themselves active with the
 * epoch they started in; a writer that unpublishes something waits (or defers
 * the free) until every reader that could still see it has left. This is what
 * makes spec R8 hold: once unregister returns, no thread is inside the callout.
 */
#ifndef OPENWFP_COMMON_RCU_H
#define OPENWFP_COMMON_RCU_H

#include <stdbool.h>

/* Nestable; cheap (two thread-local stores and a fence). Never blocks. */
void owfp_rcu_read_lock(void);
void owfp_rcu_read_unlock(void);
bool owfp_rcu_in_read(void);

/* Waits until every read section that began before the call has ended.
 * Must not be called from inside a read section (it would wait on itself). */
void owfp_rcu_synchronize(void);

/* Frees `ptr` with `release` once no reader can hold it, without waiting.
 * The caller must already have unpublished it. */
struct owfp_rcu_head {
    struct owfp_rcu_head *next;
    unsigned long long epoch;
    void (*release)(struct owfp_rcu_head *head);
};
void owfp_rcu_retire(struct owfp_rcu_head *head, void (*release)(struct owfp_rcu_head *));
/* Releases whatever is safe now; with `wait`, waits for readers and releases all. */
void owfp_rcu_reclaim(bool wait);

#endif
