/* signalport PORT SIGNAL PROGRAM [ARGS...]: a tiny init for server tests.
 *
 * Runs PROGRAM as its child and waits on TCP PORT (all addresses). The first connection
 * and its first bytes (any request: `curl --http0.9` works) make it send SIGNAL (a number)
 * to the child and wait for the child to end; it then answers that connection, and prints
 * to stdout, one line: "exited N" or "killed N", and exits with the child's status (N, or
 * 128+N for a signal). The request is read before the answer so that closing sends a FIN,
 * not the reset that unread data would cause.
 *
 * Why: a test on the host cannot signal a process inside the VM, but it can connect to a
 * published port. So `apus run -p H:PORT image` with this program as pid 1 lets the test
 * stop a server (nginx's master, SIGQUIT) after its load, and see both the server's own exit
 * status and that the VM then exits with it.
 *
 * Lines on stdout: "signalport: child PID" once the child runs (PID: the child's pid, which
 * the test compares with what the server reports), then the final line above. The child
 * ending before any connection prints "early exited N" (or "early killed N") and exits 125.
 * Its own failures (bad arguments, socket, fork, exec) exit 125/127 with a message on
 * stderr. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* "exited N" / "killed N" for a wait status, and the status to exit with. */
static int describe(int status, char *out, size_t size) {
    if (WIFEXITED(status)) {
        snprintf(out, size, "exited %d", WEXITSTATUS(status));
        return WEXITSTATUS(status);
    }
    snprintf(out, size, "killed %d", WTERMSIG(status));
    return 128 + WTERMSIG(status);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: signalport PORT SIGNAL PROGRAM [ARGS...]\n");
        return 125;
    }
    char *port_end, *sig_end;
    long port = strtol(argv[1], &port_end, 10);
    long sig = strtol(argv[2], &sig_end, 10);
    if (*port_end != 0 || *sig_end != 0 || port <= 0 || port > 65535 || sig <= 0 || sig >= 65) {
        fprintf(stderr, "signalport: bad PORT or SIGNAL: %s %s\n", argv[1], argv[2]);
        return 125;
    }

    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 4) != 0) {
        fprintf(stderr, "signalport: port %ld: %s\n", port, strerror(errno));
        return 125;
    }

    pid_t child = fork();
    if (child < 0) {
        fprintf(stderr, "signalport: fork: %s\n", strerror(errno));
        return 125;
    }
    if (child == 0) {
        execv(argv[3], argv + 3);
        fprintf(stderr, "signalport: exec %s: %s\n", argv[3], strerror(errno));
        _exit(127);
    }
    printf("signalport: child %d\n", (int)child);
    fflush(stdout);

    char line[64];
    int status;
    int connection;
    /* Waits for a connection, looking every 100 ms whether the child ended early (a poll
     * timeout rather than SIGCHLD, which could come before the wait began). */
    for (;;) {
        if (waitpid(child, &status, WNOHANG) == child) {
            describe(status, line, sizeof line);
            printf("early %s\n", line);
            return 125;
        }
        struct pollfd ready = {.fd = listener, .events = POLLIN};
        if (poll(&ready, 1, 100) <= 0) continue;
        connection = accept(listener, NULL, NULL);
        if (connection >= 0) break;
        if (errno != EINTR && errno != EAGAIN) {
            fprintf(stderr, "signalport: accept: %s\n", strerror(errno));
            kill(child, SIGKILL);
            waitpid(child, &status, 0);
            return 125;
        }
    }

    char request[512];
    while (read(connection, request, sizeof request) < 0 && errno == EINTR) {}

    if (kill(child, (int)sig) != 0) {
        fprintf(stderr, "signalport: kill %d: %s\n", (int)child, strerror(errno));
        return 125;
    }
    while (waitpid(child, &status, 0) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "signalport: waitpid: %s\n", strerror(errno));
            return 125;
        }
    }
    int code = describe(status, line, sizeof line);
    dprintf(connection, "%s\n", line);
    shutdown(connection, SHUT_WR);
    close(connection);
    printf("%s\n", line);
    fflush(stdout);
    return code;
}
