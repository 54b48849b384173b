/* preempt: two threads that never make a syscall while they wait for each other — each spins
 * on a flag the other sets — finish only if the kernel preempts a thread spinning in user
 * code (the native platform's timer slice; on pvm the VMM's redirect at the slice's end). */
#include "common.h"
#include <pthread.h>
#include <stdatomic.h>

static atomic_int turn;

static void *player(void *arg) {
    int me = (int)(long)arg;
    for (int round = 0; round < 20; round++) {
        while (atomic_load_explicit(&turn, memory_order_acquire) % 2 != me) {}
        atomic_fetch_add_explicit(&turn, 1, memory_order_release);
    }
    return NULL;
}

int main(void) {
    pthread_t a, b;
    pthread_create(&a, NULL, player, (void *)0L);
    pthread_create(&b, NULL, player, (void *)1L);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    check("two spinning threads took 40 turns", atomic_load(&turn) == 40);
    return finish();
}
