// The bundled example: scripts/build.sh compiles it with musl-gcc -static and runs it with
// `apus run`, so a fresh checkout shows a program booting in its own VM.
#include <stdio.h>
#include <sys/utsname.h>

int main(int argc, char **argv) {
    struct utsname u;
    uname(&u);
    printf("Hello from %s, running on %s %s (%s)\n", argv[0], u.sysname, u.release, u.machine);
    for (int i = 1; i < argc; i++) printf("  argv[%d] = %s\n", i, argv[i]);
    return 0;
}
