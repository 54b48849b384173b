/* ipc: System V message queues and semaphores, robust mutexes and priority-inheritance
 * mutexes, between processes and threads, by Linux's rules:
 *   msgget/msgsnd/msgrcv/msgctl — message types 0, > 0, < 0 and MSG_EXCEPT, MSG_NOERROR and
 *   E2BIG, IPC_NOWAIT, IPC_STAT/IPC_SET/IPC_RMID, a receiver and a sender blocked until
 *   another process acts, EINTR from a signal, EIDRM when the queue goes;
 *   semget/semop/semtimedop/semctl — GETVAL/SETVAL/GETALL/SETALL/GETPID/GETNCNT/GETZCNT,
 *   IPC_STAT, all-or-nothing operations, ERANGE/EFBIG/E2BIG, timeouts, waits other
 *   processes end, SEM_UNDO applied when a process exits, EINTR, EIDRM;
 *   robust mutexes (set_robust_list) whose owner — a thread or a process — dies holding
 *   them: the next lock gets EOWNERDEAD, also when it was already waiting;
 *   PTHREAD_PRIO_INHERIT mutexes (FUTEX_LOCK_PI/UNLOCK_PI/TRYLOCK_PI) contended by threads
 *   and processes, and the futex calls themselves.
 *
 * One line per check, "NAME: yes|no", the same natively and in Apus (no id, pid or time is
 * printed); exits 0 when all pass. alarm(60) turns a hang into a failure. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "common.h"

/* <linux/futex.h>, which musl's headers lack. */
#define FUTEX_LOCK_PI_PRIVATE (6 | 128)
#define FUTEX_UNLOCK_PI_PRIVATE (7 | 128)
#define FUTEX_TRYLOCK_PI_PRIVATE (8 | 128)
#define FUTEX_WAITERS 0x80000000u
#define FUTEX_OWNER_DIED 0x40000000u
struct robust_list { struct robust_list *next; };
struct robust_list_head { struct robust_list list; long futex_offset; struct robust_list *list_op_pending; };

static int fails_with(long result, int error) { return result == -1 && errno == error; }

struct message { long type; char text[64]; };

static int send_text(int q, long type, const char *text, int flags) {
    struct message m = {.type = type};
    strcpy(m.text, text);
    return msgsnd(q, &m, strlen(text), flags);
}

/* Receives into m; returns the length or -1. */
static long receive(int q, struct message *m, size_t size, long type, int flags) {
    memset(m, 0, sizeof *m);
    return msgrcv(q, m, size, type, flags);
}

static void on_alarm(int sig) { (void)sig; }

/* SIGALRM with a handler that does not restart calls, in 50 ms. */
static void interrupt_soon(void) {
    struct sigaction sa = {.sa_handler = on_alarm};
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval t = {.it_value = {.tv_usec = 50000}};
    setitimer(ITIMER_REAL, &t, NULL);
}

static int child_status(pid_t child) {
    int status = 0;
    if (waitpid(child, &status, 0) != child) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void test_message_queues(void) {
    struct message m;
    int q = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    check("msgget(IPC_PRIVATE)", q >= 0);
    key_t key = 0x41707573;
    int old = msgget(key, 0);
    if (old >= 0) msgctl(old, IPC_RMID, NULL);
    errno = 0;
    check("msgget of a missing key without IPC_CREAT: ENOENT", fails_with(msgget(key, 0600), ENOENT));
    int keyed = msgget(key, IPC_CREAT | 0600);
    check("msgget(key, IPC_CREAT)", keyed >= 0);
    check("msgget of the same key: the same queue", msgget(key, 0600) == keyed);
    errno = 0;
    check("msgget(key, IPC_CREAT | IPC_EXCL) of an existing key: EEXIST", fails_with(msgget(key, IPC_CREAT | IPC_EXCL | 0600), EEXIST));
    check("msgctl(IPC_RMID) of the keyed queue", msgctl(keyed, IPC_RMID, NULL) == 0);
    errno = 0;
    check("msgsnd to a removed queue: EINVAL", fails_with(send_text(keyed, 1, "x", 0), EINVAL));

    check("msgsnd type 3", send_text(q, 3, "c", 0) == 0);
    check("msgsnd type 1", send_text(q, 1, "a1", 0) == 0);
    check("msgsnd type 2", send_text(q, 2, "b", 0) == 0);
    check("msgsnd type 1 again", send_text(q, 1, "a2", 0) == 0);
    struct msqid_ds ds;
    check("IPC_STAT: 4 messages of 6 bytes, sent by this process", msgctl(q, IPC_STAT, &ds) == 0 && ds.msg_qnum == 4
          && ds.msg_cbytes == 6 && ds.msg_lspid == getpid() && (ds.msg_perm.mode & 0777) == 0600 && ds.msg_qbytes > 0);
    check("msgrcv type 0: the oldest", receive(q, &m, sizeof m.text, 0, 0) == 1 && m.type == 3 && strcmp(m.text, "c") == 0);
    check("msgrcv type 2: the oldest of type 2", receive(q, &m, sizeof m.text, 2, 0) == 1 && strcmp(m.text, "b") == 0);
    check("msgrcv type -2: the lowest type up to 2", receive(q, &m, sizeof m.text, -2, 0) == 2 && m.type == 1 && strcmp(m.text, "a1") == 0);
    check("msgsnd type 5", send_text(q, 5, "e", 0) == 0);
    check("msgrcv type 1 with MSG_EXCEPT: another type", receive(q, &m, sizeof m.text, 1, MSG_EXCEPT) == 1 && m.type == 5);
    errno = 0;
    check("msgrcv into 1 byte of a 2-byte message: E2BIG", fails_with(receive(q, &m, 1, 0, 0), E2BIG));
    check("IPC_STAT: the message is still queued", msgctl(q, IPC_STAT, &ds) == 0 && ds.msg_qnum == 1 && ds.msg_lrpid == getpid());
    check("msgrcv with MSG_NOERROR: cut to 1 byte", receive(q, &m, 1, 0, MSG_NOERROR) == 1 && strcmp(m.text, "a") == 0);
    errno = 0;
    check("msgrcv of an empty queue with IPC_NOWAIT: ENOMSG", fails_with(receive(q, &m, sizeof m.text, 0, IPC_NOWAIT), ENOMSG));
    errno = 0;
    check("msgsnd of type 0: EINVAL", fails_with(send_text(q, 0, "x", 0), EINVAL));
    static struct { long type; char text[9000]; } big = {.type = 1};
    errno = 0;
    check("msgsnd beyond MSGMAX: EINVAL", fails_with(msgsnd(q, &big, 9000, 0), EINVAL));
    check("msgsnd of an empty message", send_text(q, 9, "", 0) == 0 && receive(q, &m, sizeof m.text, 9, 0) == 0);

    msgctl(q, IPC_STAT, &ds);
    ds.msg_qbytes = 16;
    check("IPC_SET msg_qbytes 16", msgctl(q, IPC_SET, &ds) == 0 && msgctl(q, IPC_STAT, &ds) == 0 && ds.msg_qbytes == 16);
    check("msgsnd of 10 bytes", send_text(q, 1, "0123456789", 0) == 0);
    errno = 0;
    check("msgsnd of 10 more into a full queue with IPC_NOWAIT: EAGAIN", fails_with(send_text(q, 1, "0123456789", IPC_NOWAIT), EAGAIN));

    /* A sender blocked on the full queue until this process receives. */
    pid_t child = fork();
    if (child == 0) _exit(send_text(q, 2, "waited!!!!", 0) == 0 ? 0 : 1);
    usleep(100000);
    check("a full queue keeps the sender waiting", msgctl(q, IPC_STAT, &ds) == 0 && ds.msg_qnum == 1);
    check("receiving makes room", receive(q, &m, sizeof m.text, 1, 0) == 10);
    check("the blocked sender's message arrives", child_status(child) == 0 && receive(q, &m, sizeof m.text, 0, 0) == 10
          && m.type == 2 && strcmp(m.text, "waited!!!!") == 0);

    /* A receiver blocked until another process sends what it waits for. */
    child = fork();
    if (child == 0) {
        struct message r;
        _exit(receive(q, &r, sizeof r.text, 7, 0) == 4 && strcmp(r.text, "wake") == 0 ? 0 : 1);
    }
    usleep(100000);
    send_text(q, 6, "not", 0);
    usleep(50000);
    send_text(q, 7, "wake", 0);
    check("a receiver waiting for type 7 gets it from another process", child_status(child) == 0);
    check("the type-6 message is left", receive(q, &m, sizeof m.text, 0, IPC_NOWAIT) == 3 && m.type == 6);

    child = fork();
    if (child == 0) {
        struct message r;
        interrupt_soon();
        errno = 0;
        _exit(fails_with(receive(q, &r, sizeof r.text, 0, 0), EINTR) ? 0 : 1);
    }
    check("a signal interrupts a waiting msgrcv: EINTR", child_status(child) == 0);
    child = fork();
    if (child == 0) {
        struct message r;
        errno = 0;
        _exit(fails_with(receive(q, &r, sizeof r.text, 0, 0), EIDRM) ? 0 : 1);
    }
    usleep(100000);
    check("msgctl(IPC_RMID)", msgctl(q, IPC_RMID, NULL) == 0);
    check("a receiver waiting on a removed queue: EIDRM", child_status(child) == 0);
}

union semun { int val; struct semid_ds *buf; unsigned short *array; };

static int sem(int set, unsigned short number, short op, short flags) {
    struct sembuf b = {.sem_num = number, .sem_op = op, .sem_flg = flags};
    return semop(set, &b, 1);
}

static void test_semaphores(void) {
    int set = semget(IPC_PRIVATE, 3, IPC_CREAT | 0600);
    check("semget(IPC_PRIVATE, 3)", set >= 0);
    errno = 0;
    check("semget of no semaphores: EINVAL", fails_with(semget(IPC_PRIVATE, 0, IPC_CREAT | 0600), EINVAL));
    check("a new semaphore is 0", semctl(set, 0, GETVAL) == 0);
    check("SETVAL 5", semctl(set, 0, SETVAL, (union semun){.val = 5}) == 0 && semctl(set, 0, GETVAL) == 5);
    check("GETPID: the setter", semctl(set, 0, GETPID) == getpid());
    errno = 0;
    check("SETVAL 40000: ERANGE", fails_with(semctl(set, 0, SETVAL, (union semun){.val = 40000}), ERANGE));
    unsigned short values[3] = {1, 2, 3}, read_back[3] = {0};
    check("SETALL", semctl(set, 0, SETALL, (union semun){.array = values}) == 0);
    check("GETALL", semctl(set, 0, GETALL, (union semun){.array = read_back}) == 0 && read_back[0] == 1 && read_back[1] == 2
          && read_back[2] == 3);
    struct semid_ds ds;
    check("IPC_STAT: 3 semaphores, mode 0600", semctl(set, 0, IPC_STAT, (union semun){.buf = &ds}) == 0 && ds.sem_nsems == 3
          && (ds.sem_perm.mode & 0777) == 0600);
    errno = 0;
    check("GETVAL of semaphore 3 of 3: EINVAL", fails_with(semctl(set, 3, GETVAL), EINVAL));
    check("semop -1", sem(set, 0, -1, 0) == 0 && semctl(set, 0, GETVAL) == 0);
    errno = 0;
    check("semop -1 of 0 with IPC_NOWAIT: EAGAIN", fails_with(sem(set, 0, -1, IPC_NOWAIT), EAGAIN));
    struct sembuf two[2] = {{.sem_num = 1, .sem_op = -1}, {.sem_num = 2, .sem_op = -10, .sem_flg = IPC_NOWAIT}};
    errno = 0;
    check("semop of two where the second cannot: EAGAIN", fails_with(semop(set, two, 2), EAGAIN));
    check("... and the first was not applied", semctl(set, 1, GETVAL) == 2);
    two[1].sem_op = -3;
    check("semop of two that can", semop(set, two, 2) == 0 && semctl(set, 1, GETVAL) == 1 && semctl(set, 2, GETVAL) == 0);
    check("semop wait-for-zero of a zero semaphore", sem(set, 2, 0, 0) == 0);
    errno = 0;
    check("semop wait-for-zero of 1 with IPC_NOWAIT: EAGAIN", fails_with(sem(set, 1, 0, IPC_NOWAIT), EAGAIN));
    errno = 0;
    check("semop of semaphore 5: EFBIG", fails_with(sem(set, 5, 1, 0), EFBIG));
    errno = 0;
    check("semop of no operations: EINVAL", fails_with(semop(set, two, 0), EINVAL));
    errno = 0;
    check("semop past SEMVMX: ERANGE", fails_with(sem(set, 1, 32767, 0), ERANGE));
    struct timespec wait = {.tv_nsec = 50000000};
    struct sembuf down = {.sem_num = 0, .sem_op = -1};
    errno = 0;
    check("semtimedop that times out: EAGAIN", fails_with(semtimedop(set, &down, 1, &wait), EAGAIN));

    /* A process waiting for a semaphore until this one raises it. */
    pid_t child = fork();
    if (child == 0) _exit(sem(set, 0, -1, 0) == 0 ? 0 : 1);
    usleep(100000);
    check("GETNCNT: one process waits for it to grow", semctl(set, 0, GETNCNT) == 1);
    check("semop +1 by this process", sem(set, 0, 1, 0) == 0);
    check("the waiting process took it", child_status(child) == 0 && semctl(set, 0, GETVAL) == 0 && semctl(set, 0, GETNCNT) == 0);
    child = fork();
    if (child == 0) _exit(sem(set, 1, 0, 0) == 0 ? 0 : 1);
    usleep(100000);
    check("GETZCNT: one process waits for zero", semctl(set, 1, GETZCNT) == 1);
    semctl(set, 1, SETVAL, (union semun){.val = 0});
    check("SETVAL 0 ends the wait for zero", child_status(child) == 0);

    /* SEM_UNDO: what an exiting process did is undone. */
    semctl(set, 1, SETVAL, (union semun){.val = 5});
    child = fork();
    if (child == 0) _exit(sem(set, 1, -3, SEM_UNDO) == 0 && sem(set, 2, 2, SEM_UNDO) == 0 && semctl(set, 1, GETVAL) == 2 ? 0 : 1);
    check("SEM_UNDO operations in a child", child_status(child) == 0);
    check("its exit undid them", semctl(set, 1, GETVAL) == 5 && semctl(set, 2, GETVAL) == 0);
    /* A waiter woken by an exit's undo. */
    child = fork();
    if (child == 0) {
        if (sem(set, 1, -5, SEM_UNDO) != 0) _exit(1);
        usleep(100000);
        _exit(0);
    }
    usleep(30000);
    pid_t waiter = fork();
    if (waiter == 0) _exit(sem(set, 1, -5, 0) == 0 ? 0 : 1);
    check("a process holding it with SEM_UNDO exits", child_status(child) == 0);
    check("the undo wakes a process waiting for it", child_status(waiter) == 0 && semctl(set, 1, GETVAL) == 0);

    child = fork();
    if (child == 0) {
        interrupt_soon();
        errno = 0;
        _exit(fails_with(sem(set, 0, -1, 0), EINTR) ? 0 : 1);
    }
    check("a signal interrupts a waiting semop: EINTR", child_status(child) == 0);
    child = fork();
    if (child == 0) {
        errno = 0;
        _exit(fails_with(sem(set, 0, -1, 0), EIDRM) ? 0 : 1);
    }
    usleep(100000);
    check("semctl(IPC_RMID)", semctl(set, 0, IPC_RMID) == 0);
    check("a process waiting on a removed set: EIDRM", child_status(child) == 0);
    errno = 0;
    check("semop on a removed set: EINVAL", fails_with(sem(set, 0, 1, 0), EINVAL));
}

/* Robust and PI mutexes. */
static pthread_mutex_t *shared_mutex(int robust, int protocol) {
    pthread_mutex_t *m = mmap(NULL, sizeof *m, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    if (robust) pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutexattr_setprotocol(&attr, protocol);
    pthread_mutex_init(m, &attr);
    pthread_mutexattr_destroy(&attr);
    return m;
}

static pthread_mutex_t *thread_mutex;
static void *lock_and_exit(void *arg) {
    (void)arg;
    pthread_mutex_lock(thread_mutex);
    return NULL;  /* ends holding it */
}

static int pi_counter;
static void *pi_worker(void *arg) {
    pthread_mutex_t *m = arg;
    for (int i = 0; i < 2000; i++) {
        pthread_mutex_lock(m);
        int seen = pi_counter;
        if (i % 100 == 0) sched_yield();  /* others contend while it is held */
        pi_counter = seen + 1;
        pthread_mutex_unlock(m);
    }
    return NULL;
}

static long futex(uint32_t *word, int op, uint32_t value) {
    return syscall(SYS_futex, word, op, value, NULL, NULL, 0);
}

static void robust_case(const char *what, int protocol) {
    char name[160];
    /* A process dies holding it; the lock comes later. */
    pthread_mutex_t *m = shared_mutex(1, protocol);
    pid_t child = fork();
    if (child == 0) {
        pthread_mutex_lock(m);
        _exit(0);
    }
    child_status(child);
    snprintf(name, sizeof name, "%s: a process died holding it: EOWNERDEAD", what);
    check(name, pthread_mutex_lock(m) == EOWNERDEAD);
    snprintf(name, sizeof name, "%s: pthread_mutex_consistent, unlock, lock again", what);
    check(name, pthread_mutex_consistent(m) == 0 && pthread_mutex_unlock(m) == 0 && pthread_mutex_lock(m) == 0
          && pthread_mutex_unlock(m) == 0);

    /* A process already waits when the owner dies. */
    int ready[2];
    pipe(ready);
    child = fork();
    if (child == 0) {
        pthread_mutex_lock(m);
        write(ready[1], "l", 1);
        usleep(150000);
        _exit(0);
    }
    char c;
    read(ready[0], &c, 1);
    snprintf(name, sizeof name, "%s: a waiter is woken when the owner dies: EOWNERDEAD", what);
    check(name, pthread_mutex_lock(m) == EOWNERDEAD);
    pthread_mutex_consistent(m);
    pthread_mutex_unlock(m);
    child_status(child);
    close(ready[0]);
    close(ready[1]);

    /* A process killed by SIGKILL holding it. */
    child = fork();
    if (child == 0) {
        pthread_mutex_lock(m);
        raise(SIGKILL);
        _exit(1);
    }
    snprintf(name, sizeof name, "%s: a process killed by SIGKILL holding it: EOWNERDEAD", what);
    check(name, child_status(child) == 128 + SIGKILL && pthread_mutex_lock(m) == EOWNERDEAD);
    pthread_mutex_consistent(m);
    pthread_mutex_unlock(m);

    /* A thread ends holding it. */
    thread_mutex = m;
    pthread_t thread;
    pthread_create(&thread, NULL, lock_and_exit, NULL);
    pthread_join(thread, NULL);
    snprintf(name, sizeof name, "%s: a thread ended holding it: EOWNERDEAD", what);
    check(name, pthread_mutex_lock(m) == EOWNERDEAD);
    pthread_mutex_consistent(m);
    pthread_mutex_unlock(m);
    munmap(m, sizeof *m);
}

static void test_mutexes(void) {
    struct robust_list_head *head = NULL;
    size_t length = 0;
    check("get_robust_list: the head glibc/musl registered", syscall(SYS_get_robust_list, 0, &head, &length) == 0
          && length == sizeof(struct robust_list_head));
    errno = 0;
    check("get_robust_list of no such thread: ESRCH", fails_with(syscall(SYS_get_robust_list, 999999, &head, &length), ESRCH));
    robust_case("robust mutex", PTHREAD_PRIO_NONE);
    robust_case("robust PI mutex", PTHREAD_PRIO_INHERIT);

    pthread_mutex_t *pi = shared_mutex(0, PTHREAD_PRIO_INHERIT);
    pthread_t threads[3];
    for (int i = 0; i < 3; i++) pthread_create(&threads[i], NULL, pi_worker, pi);
    for (int i = 0; i < 3; i++) pthread_join(threads[i], NULL);
    check("PI mutex: three threads, 6000 increments, none lost", pi_counter == 6000);
    check("PI mutex: trylock of a free one", pthread_mutex_trylock(pi) == 0);
    pid_t child = fork();
    if (child == 0) _exit(pthread_mutex_trylock(pi) == EBUSY ? 0 : 1);
    check("PI mutex: trylock of one held by another process: EBUSY", child_status(child) == 0);
    child = fork();
    if (child == 0) {
        if (pthread_mutex_lock(pi) != 0) _exit(1);  /* waits in FUTEX_LOCK_PI */
        pthread_mutex_unlock(pi);
        _exit(0);
    }
    usleep(100000);
    /* The lock word is glibc's first int, musl's second. */
    volatile uint32_t *words = (volatile uint32_t *)pi;
    check("PI mutex: another process waits; the word has FUTEX_WAITERS", ((words[0] | words[1]) & FUTEX_WAITERS) != 0);
    check("PI mutex: unlock hands it over", pthread_mutex_unlock(pi) == 0 && child_status(child) == 0);

    uint32_t word = 0;
    uint32_t tid = (uint32_t)syscall(SYS_gettid);
    check("FUTEX_LOCK_PI of a free word takes it", futex(&word, FUTEX_LOCK_PI_PRIVATE, 0) == 0 && word == tid);
    errno = 0;
    check("FUTEX_LOCK_PI of one's own lock: EDEADLK", fails_with(futex(&word, FUTEX_LOCK_PI_PRIVATE, 0), EDEADLK));
    check("FUTEX_UNLOCK_PI frees it", futex(&word, FUTEX_UNLOCK_PI_PRIVATE, 0) == 0 && word == 0);
    errno = 0;
    check("FUTEX_UNLOCK_PI of a lock not held: EPERM", fails_with(futex(&word, FUTEX_UNLOCK_PI_PRIVATE, 0), EPERM));
    check("FUTEX_TRYLOCK_PI of a free word", futex(&word, FUTEX_TRYLOCK_PI_PRIVATE, 0) == 0 && word == tid);
    word = FUTEX_OWNER_DIED;
    check("FUTEX_LOCK_PI of a dead owner's word keeps FUTEX_OWNER_DIED", futex(&word, FUTEX_LOCK_PI_PRIVATE, 0) == 0
          && word == (tid | FUTEX_OWNER_DIED));
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    alarm(60);
    test_message_queues();
    test_semaphores();
    test_mutexes();
    return finish();
}
