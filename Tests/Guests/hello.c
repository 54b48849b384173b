/* hello: the smallest smoke test — one line on stdout through the libc's normal path
 * (musl: writev; glibc: write), exit status 0. */
#include <stdio.h>

int main(void) {
    printf("Hello from Apus!\n");
    return 0;
}
